-- Registered workers with their running jobs and whether each holds the maintenance lead.
SELECT w.id, w.host, w.pid, w.queues, w.kinds, w.started_at, w.heartbeat_at, w.expires_at,
       w.expires_at > now() AS alive,
       (SELECT count(*) FROM bosun.jobs AS j
        WHERE j.state = 'running' AND j.attempted_by = w.id) AS running,
       EXISTS (SELECT 1 FROM bosun.leaders AS l
               WHERE l.worker_id = w.id AND l.expires_at > now()) AS leader
FROM bosun.workers AS w
ORDER BY w.started_at, w.id
