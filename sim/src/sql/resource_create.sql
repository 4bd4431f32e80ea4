-- Create resource $1 of kind $2 unless it exists, listed from $3 seconds on; log the call as
-- process $4's 'create', or 'exists'. Whether it was made by this call.
WITH made AS (
    INSERT INTO bosun_example.resources (name, kind, listed_from)
    VALUES ($1, $2, clock_timestamp() + $3::float8 * interval '1 second')
    ON CONFLICT (name) DO NOTHING
    RETURNING name
), logged AS (
    INSERT INTO bosun_example.calls (name, call, pid)
    SELECT $1, CASE WHEN EXISTS (SELECT FROM made) THEN 'create' ELSE 'exists' END, $4
)
SELECT EXISTS (SELECT FROM made)
