-- The database's now, and when the oldest job running from $1 on (NULL: of all) was
-- claimed (NULL if none is).
SELECT now(), min(j.attempted_at)
FROM bosun.jobs AS j
WHERE j.state = 'running' AND j.attempted_at IS NOT NULL
  AND j.attempted_at >= coalesce($1::timestamptz, '-infinity')
