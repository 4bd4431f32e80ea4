-- Bosun 0003 down: removes the worker registry and leader election.
DROP TABLE IF EXISTS bosun.leaders;
DROP TABLE IF EXISTS bosun.workers;
