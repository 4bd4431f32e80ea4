-- Delete up to $3 jobs in final state $1 that finished more than $2 seconds ago, and not
-- before $4 (the pruner's last pass took everything older, so the walk of
-- jobs_finalized_idx starts there, past the entries of the rows it deleted). Rows another
-- transaction holds are skipped (SKIP LOCKED), and each batch is its own short statement, so
-- pruning never holds long locks on a busy table. No ORDER BY: every row past its retention
-- goes within the pass, and an order would let the planner pick a bitmap scan plus a sort of
-- every eligible row under the row locks, for each batch: a pass that grows with the
-- backlog rather than with the batch.
DELETE FROM bosun.jobs
WHERE id IN (
    SELECT id FROM bosun.jobs
    WHERE state = $1::bosun.job_state
      AND finalized_at < now() - make_interval(secs => $2)
      AND finalized_at >= coalesce($4::timestamptz, '-infinity')
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
