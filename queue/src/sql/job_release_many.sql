-- Hand held jobs back at shutdown ($1 ids, $2 attempts, pairwise), through the worker
-- protocol's bosun.give_back_jobs. Returns the ids handed back.
SELECT id FROM bosun.give_back_jobs($1::bigint[], $2::integer[]) AS id
