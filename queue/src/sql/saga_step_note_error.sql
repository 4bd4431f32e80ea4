-- Note retryable error $3 of step $2 of saga $1 on the ledger.
SELECT bosun.saga_step_note_error($1, $2, $3)
