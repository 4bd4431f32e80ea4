-- Bosun 0006 down: removes the saga SQL API.
DROP FUNCTION IF EXISTS bosun.retry_saga(uuid);
DROP FUNCTION IF EXISTS bosun.cancel_saga(uuid);
DROP FUNCTION IF EXISTS bosun.saga_lock_for(text, uuid);
DROP FUNCTION IF EXISTS bosun.start_saga(text, text, jsonb);
DROP FUNCTION IF EXISTS bosun.saga_enqueue_step(uuid, text, text, integer, text);
