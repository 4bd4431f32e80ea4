-- Operators' listing, newest first; every filter is optional.
SELECT *
FROM bosun.jobs
WHERE ($1::bosun.job_state IS NULL OR state = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR kind = $3)
  AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
