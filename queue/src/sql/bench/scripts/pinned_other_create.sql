-- W5, pin kind `other`: a table of the application's own, read by the transaction that
-- holds the vacuum horizon back.
DROP TABLE IF EXISTS bosun_bench_other;
CREATE TABLE bosun_bench_other (x integer);
INSERT INTO bosun_bench_other VALUES (1);
