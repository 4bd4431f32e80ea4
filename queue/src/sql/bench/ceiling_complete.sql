-- W0: complete the claimed rows $1 of the yardstick table.
UPDATE bench_ceiling SET state = 2 WHERE id = ANY($1)
