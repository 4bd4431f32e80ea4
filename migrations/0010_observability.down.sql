-- Bosun 0010 down: removes what the metrics sampler reads.
DROP FUNCTION IF EXISTS bosun.sample_oldest_available();
DROP FUNCTION IF EXISTS bosun.sample_queues(bigint);
DROP TRIGGER IF EXISTS sagas_count_outcome ON bosun.sagas;
DROP FUNCTION IF EXISTS bosun.saga_count_outcome();
DROP TABLE IF EXISTS bosun.saga_outcomes;
