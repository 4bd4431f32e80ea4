-- Bosun 0013 down: the index of running jobs by claim time as 0012 made it.
DROP INDEX bosun.jobs_running_since_idx;
CREATE INDEX jobs_running_since_idx ON bosun.jobs (attempted_at) WHERE state = 'running';
