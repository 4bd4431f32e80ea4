-- Finished sagas by kind and outcome, ever.
SELECT kind, outcome, sum(total)::bigint AS total
FROM bosun.saga_outcomes GROUP BY kind, outcome
