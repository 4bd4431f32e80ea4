-- Handlers succeeded: complete each job ($1 ids, $2 attempts, pairwise) whose attempt is
-- still the running one, in one statement. Fenced per row, like job_complete.sql; returns the
-- ids completed now (the others were cancelled or taken over meanwhile).
--
-- The rows are found by `id = ANY($1)` alone, and each row's attempt is looked up by its
-- position in $1. A join with unnest($1, $2) reads the same, but a prepared statement's
-- generic plan puts the jobs on the outside of a nested loop and rescans the whole list for
-- every row, which costs more than this lookup (linear in the batch, which the completer
-- keeps to a few hundred jobs).
UPDATE bosun.jobs AS j
SET state = 'completed', finalized_at = now()
WHERE j.id = ANY($1::bigint[])
  AND j.state = 'running'
  AND j.attempt = ($2::integer[])[array_position($1::bigint[], j.id)]
RETURNING j.id
