-- Of the held jobs ($1 ids, $2 attempts, pairwise), those no longer held: the worker
-- protocol's bosun.lost_jobs.
SELECT id FROM bosun.lost_jobs($1::bigint[], $2::integer[]) AS id
