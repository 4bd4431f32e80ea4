-- Bosun 0004 down.
DROP INDEX IF EXISTS bosun.jobs_finalized_idx;
