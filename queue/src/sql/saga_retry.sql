-- Resume saga $1 that is not moving; see bosun.retry_saga.
SELECT * FROM bosun.retry_saga($1)
