-- Forget workers whose lease ran out more than $1 seconds ago and that hold no running job.
DELETE FROM bosun.workers AS w
WHERE w.expires_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM bosun.jobs AS j
                  WHERE j.state = 'running' AND j.attempted_by = w.id)
