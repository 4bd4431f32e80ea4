-- Bosun 0013: fenced writes that stay on the primary key whatever the statistics say.
--
-- Every fenced write names its job by id and says `state = 'running'`. That condition is
-- the predicate of both indexes of running jobs, so the planner may use either. Keyed by id,
-- jobs_running_idx serves such a write with one probe. jobs_running_since_idx (0012), keyed
-- by claim time, cannot: the planner walks all of it, and during a drain it holds an entry
-- for every job claimed since its pages were last cleaned. Measured with the batched
-- completion prepared as the worker runs it: the generic plan walked the claim-time index
-- and rescanned the list of completed ids for every row it found, 1.4 ms for 64 jobs
-- against 0.8 ms on the id index.
--
-- The claim-time index now also says `attempted_at IS NOT NULL`. Every running job has a
-- claim time, so it holds the same rows; the rescuers' `attempted_at < ...` implies the
-- added condition and still uses it, and a fenced write, which says nothing of
-- attempted_at, cannot.
DROP INDEX bosun.jobs_running_since_idx;
CREATE INDEX jobs_running_since_idx ON bosun.jobs (attempted_at)
    WHERE state = 'running' AND attempted_at IS NOT NULL;
