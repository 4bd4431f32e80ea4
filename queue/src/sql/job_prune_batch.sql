-- Delete up to $3 jobs in final state $1 that finished more than $2 seconds ago. Rows another
-- transaction holds are skipped (SKIP LOCKED), and each batch is its own short statement, so
-- pruning never holds long locks on a busy table.
DELETE FROM bosun.jobs
WHERE id IN (
    SELECT id FROM bosun.jobs
    WHERE state = $1::bosun.job_state
      AND finalized_at < now() - make_interval(secs => $2)
    ORDER BY finalized_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
