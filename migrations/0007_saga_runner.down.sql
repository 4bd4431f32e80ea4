-- Bosun 0007 down: removes the saga runner's transitions.
DROP FUNCTION IF EXISTS bosun.saga_step_progress(uuid, integer, real, text);
DROP FUNCTION IF EXISTS bosun.saga_step_note_error(uuid, integer, text);
DROP FUNCTION IF EXISTS bosun.saga_undo_fail(bigint, integer, uuid, integer, text);
DROP FUNCTION IF EXISTS bosun.saga_undo_done(bigint, integer, uuid, integer);
DROP FUNCTION IF EXISTS bosun.saga_undo_begin(bigint, integer, uuid, integer);
DROP FUNCTION IF EXISTS bosun.saga_step_skip(bigint, integer, uuid, integer);
DROP FUNCTION IF EXISTS bosun.saga_step_fail(bigint, integer, uuid, integer, text);
DROP FUNCTION IF EXISTS bosun.saga_step_done(bigint, integer, uuid, integer, integer, jsonb);
DROP FUNCTION IF EXISTS bosun.saga_step_begin(bigint, integer, uuid, integer, text[], boolean[]);
DROP FUNCTION IF EXISTS bosun.saga_compensate_below(bosun.sagas, integer);
DROP FUNCTION IF EXISTS bosun.saga_job_held(bigint, integer);
DROP FUNCTION IF EXISTS bosun.saga_job_finish(bigint, integer, bosun.job_state, text);
