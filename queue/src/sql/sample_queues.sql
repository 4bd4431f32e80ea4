-- Jobs per queue and state: exact for unfinished states, estimated for finished ones once the
-- table holds $1 rows or more; see bosun.sample_queues.
SELECT * FROM bosun.sample_queues($1)
