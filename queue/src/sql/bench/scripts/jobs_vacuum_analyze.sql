-- W2r: vacuum the history in and refresh the planner's statistics before the drain.
VACUUM ANALYZE bosun.jobs
