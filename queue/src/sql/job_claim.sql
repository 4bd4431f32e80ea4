-- Claim up to $2 due jobs of queue $1 whose kind is one of $3, for worker $4, in the order
-- the worker starts them; with $5, mark the worker as waiting if fewer were due. Each row
-- also says whether the claim waited for another claim of the worker on the queue (which
-- then took the due jobs first). See bosun.claim_jobs for why the statement lives in a
-- function.
SELECT j.*, current_setting('bosun.claim_waited', true) = 'on' AS claim_waited
FROM bosun.claim_jobs($1, $2, $3, $4, $5) AS j
