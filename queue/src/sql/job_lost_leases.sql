-- Of the (id, attempt) pairs a worker is running, those it no longer holds: the row was
-- cancelled, retried, deleted or claimed again by someone else.
SELECT h.id
FROM unnest($1::bigint[], $2::int[]) AS h(id, attempt)
WHERE NOT EXISTS (
    SELECT 1 FROM bosun.jobs AS j
    WHERE j.id = h.id AND j.state = 'running' AND j.attempt = h.attempt
)
