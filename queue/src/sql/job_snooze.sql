-- A handler snoozed for $3 milliseconds (at most about a hundred years), through the worker
-- protocol's bosun.snooze_job. Returns the new state and the seconds until it is due; no row
-- if $2 is no longer the running attempt.
SELECT state, due_in
FROM bosun.snooze_job($1, $2, make_interval(secs => $3::float8 / 1000.0))
