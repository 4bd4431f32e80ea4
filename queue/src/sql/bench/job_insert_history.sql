-- W2r: $1 jobs completed an hour ago, the history a table under a day's retention keeps.
INSERT INTO bosun.jobs (kind, state, attempt, attempted_at, finalized_at, created_at)
SELECT 'echo', 'completed', 1, now() - interval '1 hour', now() - interval '1 hour',
       now() - interval '1 hour'
FROM generate_series(1, $1)
