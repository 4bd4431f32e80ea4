-- Take or renew leadership $1 for worker $2 until now() + $3 seconds. Succeeds (returns a
-- row) when nobody holds it, this worker holds it, or the holder's term has run out.
INSERT INTO bosun.leaders AS l (name, worker_id, elected_at, expires_at)
VALUES ($1, $2, now(), now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
SET worker_id = EXCLUDED.worker_id,
    elected_at = CASE WHEN l.worker_id = EXCLUDED.worker_id THEN l.elected_at ELSE now() END,
    expires_at = EXCLUDED.expires_at
WHERE l.worker_id = EXCLUDED.worker_id OR l.expires_at <= now()
RETURNING l.worker_id
