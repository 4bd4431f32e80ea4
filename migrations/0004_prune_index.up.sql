-- Bosun 0004: the pruner deletes finished jobs by state and age; this index finds the oldest
-- ones without scanning every retained row. Only finished rows are in it.
CREATE INDEX jobs_finalized_idx ON bosun.jobs (state, finalized_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
