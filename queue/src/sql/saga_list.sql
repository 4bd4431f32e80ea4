-- Up to $3 sagas, newest first, of state $1 and kind $2 when given.
SELECT * FROM bosun.sagas
WHERE ($1::bosun.saga_state IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2)
ORDER BY created_at DESC, id LIMIT $3
