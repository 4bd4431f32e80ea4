-- An attempt failed ($5: message, $6: what kind of failure; $3: permanent), through the
-- worker protocol's bosun.fail_job, with the backoff $4 in milliseconds (at most about a
-- hundred years: the caller saturates it). Returns the new state and, for a retry, the
-- seconds until it is due; no row if $2 is no longer the running attempt.
SELECT state, due_in
FROM bosun.fail_job($1, $2, $5, $3, make_interval(secs => $4::float8 / 1000.0), $6)
