-- W0: claim up to $1 ready rows of the yardstick table, the plain-SQL way.
WITH picked AS (
    SELECT id FROM bench_ceiling WHERE state = 0
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE bench_ceiling AS t SET state = 1
FROM picked WHERE t.id = picked.id
RETURNING t.id
