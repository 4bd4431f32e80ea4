-- The Rust client's single-job enqueue: a plain INSERT, checked by the table's trigger and
-- constraints, so it costs what any single-row INSERT costs. NULL inputs mean the defaults
-- bosun.enqueue_arrays gives. A unique_key that is taken inserts nothing (no row comes back):
-- the caller then asks bosun.enqueue_arrays, which returns the job that holds it.
INSERT INTO bosun.jobs (kind, args, queue, priority, max_attempts, scheduled_at,
                        unique_key, target, tags, meta)
VALUES ($1, coalesce($2, '{}'), coalesce($3, 'default'), coalesce($4, 0), coalesce($6, 20),
        coalesce($5, now()), $7, $8, $9, coalesce($10, '{}'))
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
RETURNING id
