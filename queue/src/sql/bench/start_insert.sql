-- W3: the handler of job $1 began at $2, by the worker's clock.
INSERT INTO bosun_bench_handler_starts (job_id, started_at) VALUES ($1, $2)
