-- Claim up to $2 due jobs of queue $1 whose kind is one of $3, for worker $4, in the order
-- the worker starts them; with $5, mark the worker as waiting if fewer were due. See
-- bosun.claim_jobs for why the statement lives in a function.
SELECT * FROM bosun.claim_jobs($1, $2, $3, $4, $5)
