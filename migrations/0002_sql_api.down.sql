-- Bosun 0002 down: removes the SQL API.
DROP VIEW IF EXISTS bosun.queue_stats;
DROP FUNCTION IF EXISTS bosun.resume_queue(text);
DROP FUNCTION IF EXISTS bosun.pause_queue(text);
DROP FUNCTION IF EXISTS bosun.queue_set_paused(text, text, boolean);
DROP FUNCTION IF EXISTS bosun.reschedule_job(bigint, timestamptz);
DROP FUNCTION IF EXISTS bosun.cancel_job(bigint);
DROP FUNCTION IF EXISTS bosun.retry_jobs(text, text, bosun.job_state);
DROP FUNCTION IF EXISTS bosun.retry_job(bigint);
DROP FUNCTION IF EXISTS bosun.job_lock_for(text, bigint);
DROP FUNCTION IF EXISTS bosun.is_timestamptz(text);
DROP FUNCTION IF EXISTS bosun.enqueue_many(jsonb);
DROP FUNCTION IF EXISTS bosun.enqueue(text, jsonb, text, integer, timestamptz, integer, text, text, text[], jsonb);
DROP FUNCTION IF EXISTS bosun.enqueue_arrays(text[], jsonb[], text[], integer[], timestamptz[], integer[], text[], text[], jsonb[], jsonb[], text, boolean);
DROP FUNCTION IF EXISTS bosun.job_input_error(text, text, jsonb, text, integer, integer, text, text, jsonb, jsonb);
