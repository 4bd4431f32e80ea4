-- Make the space of bosun.jobs' dead row versions reusable and drop the index entries that
-- lead to them. Takes no lock that claims, enqueues or completions wait on. VACUUM cannot run
-- in a transaction block, nor be prepared: it runs as a simple query.
VACUUM bosun.jobs
