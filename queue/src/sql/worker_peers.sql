-- Whether a live worker other than $1 serves queue $2 (by the database clock).
SELECT EXISTS (
    SELECT 1 FROM bosun.workers AS w
    WHERE w.id <> $1 AND w.expires_at > now() AND $2 = ANY(w.queues)
)
