-- W5, pin kind `other`: the pin's one read, of a table that is not Bosun's.
SELECT count(*) FROM bosun_bench_other
