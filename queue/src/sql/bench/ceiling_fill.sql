-- W0: $1 ready rows in the yardstick table.
INSERT INTO bench_ceiling (state) SELECT 0 FROM generate_series(1, $1)
