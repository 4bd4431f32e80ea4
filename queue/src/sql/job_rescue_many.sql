-- Rescue up to $1 running jobs claimed more than $2 seconds ago whose worker is gone or does
-- not know it holds them. Two cases:
--   $3 IS NULL: the holder's lease expired, or it never registered. The age guard keeps a
--     claim that races its worker's first heartbeat from being taken for an orphan.
--   $3 = a worker id: that worker is asking about jobs under its own id that it does not hold
--     (all but the ids in $4). At start it holds nothing, so they belong to an earlier
--     incarnation that died; later they are claims whose reply never reached it (the
--     connection dropped after the commit).
-- A rescued job is retryable at once, or failed when it has used its attempts, with an error
-- entry naming the worker. A saga's step job is never failed here (its saga would be left
-- with nothing to run): it is handed back with one more attempt, and the saga runner ends
-- the step through the saga when it sees that the rescued attempt was the step's last. The
-- old holder's late writes are fenced out: the row is no longer `running` at its attempt.
-- With $5, only jobs claimed from $5 on: the rescuer starts its walk of
-- jobs_running_since_idx at the oldest running job, past the entries of jobs that ran since.
WITH orphaned AS (
    SELECT j.id
    FROM bosun.jobs AS j
    WHERE j.state = 'running'
      AND j.attempted_at < now() - make_interval(secs => $2)
      AND j.attempted_at >= coalesce($5::timestamptz, '-infinity')
      AND CASE WHEN $3::text IS NULL THEN
              NOT EXISTS (
                  SELECT 1 FROM bosun.workers AS w
                  WHERE w.id = j.attempted_by AND w.expires_at > now())
          ELSE j.attempted_by = $3 AND j.id <> ALL($4::bigint[])
          END
    ORDER BY j.attempted_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE bosun.jobs AS j
    SET state = CASE WHEN j.attempt >= j.max_attempts
                          AND (j.kind NOT LIKE 'saga:%' OR j.attempt >= 1000000000) THEN 'failed'
                     ELSE 'retryable' END::bosun.job_state,
        max_attempts = CASE WHEN j.kind LIKE 'saga:%'
                            THEN least(greatest(j.max_attempts, j.attempt + 1), 1000000000)
                            ELSE j.max_attempts END,
        scheduled_at = now(),
        finalized_at = CASE WHEN j.attempt >= j.max_attempts
                                 AND (j.kind NOT LIKE 'saga:%' OR j.attempt >= 1000000000) THEN now() END,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(),
            'error', CASE WHEN $3::text IS NULL
                          THEN format('rescued: worker %s stopped heartbeating', coalesce(j.attempted_by, '(none)'))
                          ELSE format('rescued: worker %s no longer holds the job (it restarted, or the reply to its claim was lost)', j.attempted_by)
                     END,
            'worker', j.attempted_by, 'kind', 'rescued'))
    FROM orphaned
    WHERE j.id = orphaned.id
    RETURNING j.id, j.state, j.queue
), woken AS (
    SELECT bosun.notify_queues(ARRAY(
        SELECT DISTINCT queue FROM rescued WHERE state = 'retryable'))
)
SELECT rescued.id, rescued.state FROM rescued, woken
