-- Seconds from $1 to the last job's finish, by the database's clock.
SELECT extract(epoch FROM max(finalized_at) - $1)::float8 FROM bosun.jobs
