-- The runner, holding attempt $2 of job $1: list the steps $4 of saga $3 (with undo where $6)
-- and begin step $4 with at most $7 attempts; no row when fenced out or the saga no longer runs
-- forward. See bosun.saga_step_begin.
SELECT * FROM bosun.saga_step_begin($1, $2, $3, $4, $5, $6, $7) WHERE id IS NOT NULL
