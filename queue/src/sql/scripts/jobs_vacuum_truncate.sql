-- Vacuum bosun.jobs and give back the empty pages at its end. The truncation takes the
-- table's ACCESS EXCLUSIVE lock only when nobody holds a lock on it, and lets go within
-- about 20 ms of anyone waiting; the compactor asks for it only once the end is empty.
VACUUM (TRUNCATE true) bosun.jobs
