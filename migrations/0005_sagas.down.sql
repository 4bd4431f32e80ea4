-- Bosun 0005 down: removes sagas and their ledger.
DROP TABLE IF EXISTS bosun.saga_steps;
DROP TABLE IF EXISTS bosun.sagas;
DROP TYPE IF EXISTS bosun.saga_step_state;
DROP TYPE IF EXISTS bosun.saga_state;
DROP FUNCTION IF EXISTS bosun.valid_saga_kind(text);
