-- W3: where the kind bench.started writes the moment its handler began (made afresh for
-- every run).
DROP TABLE IF EXISTS bosun_bench_handler_starts;
CREATE TABLE bosun_bench_handler_starts (
    job_id bigint PRIMARY KEY,
    started_at timestamptz NOT NULL
);
