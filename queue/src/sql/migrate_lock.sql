-- Taken first by every migration run, up or down, so that replicas starting together take
-- turns; released when the run's transaction ends.
SELECT pg_advisory_xact_lock($1)
