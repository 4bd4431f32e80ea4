-- Where a test's drain of queue $1 stands (bosun_workers::testing::drain_queue), over the jobs
-- of the kinds $3 its pool runs: how many run or are due now (work left), and those attempted
-- since $2, by the state they were left in; a job attempted and then snoozed is `scheduled`.
SELECT count(*) FILTER (WHERE state IN ('running', 'available')
                           OR (state IN ('scheduled', 'retryable') AND scheduled_at <= now()))
           AS due_or_running,
       count(*) FILTER (WHERE state = 'completed' AND attempted_at >= $2) AS completed,
       count(*) FILTER (WHERE state = 'retryable' AND attempted_at >= $2) AS retryable,
       count(*) FILTER (WHERE state = 'failed' AND attempted_at >= $2) AS failed,
       count(*) FILTER (WHERE state = 'cancelled' AND attempted_at >= $2) AS cancelled,
       count(*) FILTER (WHERE state = 'scheduled' AND attempted_at >= $2) AS snoozed
FROM bosun.jobs
WHERE queue = $1 AND kind = ANY($3)
