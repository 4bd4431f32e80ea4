-- Request a cancel of saga $1; see bosun.cancel_saga.
SELECT * FROM bosun.cancel_saga($1)
