-- The jobs waiting to run (scheduled, available, or retryable), oldest first, each with
-- whether it matches a test's filter (bosun_queue::testing): every filter is optional; kind
-- and queue compare equal, args by JSON containment (the job's args hold every key given).
SELECT j.*,
       ($1::text IS NULL OR j.kind = $1)
       AND ($2::text IS NULL OR j.queue = $2)
       AND ($3::jsonb IS NULL OR j.args @> $3) AS matches
FROM bosun.jobs AS j
WHERE j.state IN ('scheduled', 'available', 'retryable')
ORDER BY j.id
