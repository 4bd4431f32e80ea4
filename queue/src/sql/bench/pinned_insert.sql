-- W5: the producer's plain INSERT of $1 no-op jobs in one statement.
INSERT INTO bosun.jobs (kind) SELECT 'echo' FROM generate_series(1, $1)
