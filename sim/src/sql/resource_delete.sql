-- Delete resource $1; log the call as process $2's 'delete', or 'missing'. Whether it existed.
WITH gone AS (
    DELETE FROM bosun_example.resources WHERE name = $1 RETURNING name
), logged AS (
    INSERT INTO bosun_example.calls (name, call, pid)
    SELECT $1, CASE WHEN EXISTS (SELECT FROM gone) THEN 'delete' ELSE 'missing' END, $2
)
SELECT EXISTS (SELECT FROM gone)
