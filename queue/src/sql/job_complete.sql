-- A handler succeeded: complete job $1 if $2 is still its running attempt (the worker
-- protocol's bosun.complete_job). A row (the new state, no due time) only if it was.
SELECT 'completed'::bosun.job_state, NULL::float8
WHERE bosun.complete_job($1, $2)
