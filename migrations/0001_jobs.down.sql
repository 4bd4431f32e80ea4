-- Bosun 0001 down: removes the jobs table and everything it needs.
DROP TABLE IF EXISTS bosun.queues;
DROP TABLE IF EXISTS bosun.jobs;
DROP FUNCTION IF EXISTS bosun.jobs_notify_insert();
DROP FUNCTION IF EXISTS bosun.notify_queues(text[]);
DROP FUNCTION IF EXISTS bosun.jobs_mark_scheduled();
DROP FUNCTION IF EXISTS bosun.valid_queue(text);
DROP FUNCTION IF EXISTS bosun.valid_kind(text);
DROP TYPE IF EXISTS bosun.job_state;
