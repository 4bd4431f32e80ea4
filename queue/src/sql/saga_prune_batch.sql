-- Delete up to $2 sagas that finished (succeeded or compensated) more than $1 seconds ago,
-- with their ledgers (ON DELETE CASCADE). Stuck sagas have not finished and are kept. Rows
-- another transaction holds are skipped, so each batch is a short statement.
DELETE FROM bosun.sagas
WHERE id IN (
    SELECT id FROM bosun.sagas
    WHERE state IN ('succeeded', 'compensated')
      AND finished_at < now() - make_interval(secs => $1)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
