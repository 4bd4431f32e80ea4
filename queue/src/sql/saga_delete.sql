-- Delete saga $1 that never started a step, with its waiting job; see bosun.delete_saga.
SELECT * FROM bosun.delete_saga($1)
