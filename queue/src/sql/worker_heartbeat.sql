-- Register worker $1 or renew its lease: alive until now() + $6 seconds (database clock).
-- An upsert, so a worker whose row was pruned while it was paused registers again.
INSERT INTO bosun.workers AS w (id, host, pid, queues, kinds, started_at, heartbeat_at, expires_at)
VALUES ($1, $2, $3, $4, $5, now(), now(), now() + make_interval(secs => $6))
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = now(),
    expires_at = EXCLUDED.expires_at,
    queues = EXCLUDED.queues,
    kinds = EXCLUDED.kinds
RETURNING (w.xmax = 0) AS inserted
