-- Handlers succeeded: complete each job ($1 ids, $2 attempts, pairwise) whose attempt is
-- still the running one, in one statement. Fenced per row, like job_complete.sql; returns the
-- ids completed now (the others were cancelled or taken over meanwhile). `j.id = ANY($1)`
-- keeps the plan on the primary key whatever the statistics say.
UPDATE bosun.jobs AS j
SET state = 'completed', finalized_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS done(id, attempt)
WHERE j.id = ANY($1) AND j.id = done.id AND j.state = 'running' AND j.attempt = done.attempt
RETURNING j.id
