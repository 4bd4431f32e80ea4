-- The calls made on resource $1, oldest first.
SELECT call FROM bosun_example.calls WHERE name = $1 ORDER BY id
