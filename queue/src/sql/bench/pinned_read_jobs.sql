-- W5, pin kind `jobs`: the pin's one read, of bosun.jobs (it then holds a lock on the table
-- besides its snapshot, as a report or pg_dump would).
SELECT count(*) FROM (SELECT 1 FROM bosun.jobs LIMIT 1) AS one
