-- Bosun 0009 down: removes periodic jobs (the jobs they enqueued stay).
DROP FUNCTION IF EXISTS bosun.periodic_note(text, timestamptz, text);
DROP FUNCTION IF EXISTS bosun.periodic_fire(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS bosun.unschedule_periodic(text);
DROP FUNCTION IF EXISTS bosun.resume_periodic(text);
DROP FUNCTION IF EXISTS bosun.pause_periodic(text);
DROP FUNCTION IF EXISTS bosun.periodic_lock_for(text, text);
DROP FUNCTION IF EXISTS bosun.schedule_periodic(text, text, text, jsonb, text, integer, integer, text);
DROP TABLE IF EXISTS bosun.periodic_jobs;
