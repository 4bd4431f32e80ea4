-- The runner, holding attempt $2 of job $1: begin the undo of step $4 of saga $3, with at most
-- $5 attempts; no row when fenced out. See bosun.saga_undo_begin.
SELECT * FROM bosun.saga_undo_begin($1, $2, $3, $4, $5) WHERE id IS NOT NULL
