-- Bosun 0005: sagas. A saga is an ordered list of steps defined in a worker's code; each step
-- runs as a job of kind `saga:<saga kind>` whose unique key is derived from the saga, the step
-- and the direction (`saga:<id>:<step>:do` / `:undo`), so re-enqueueing a step after a crash
-- is harmless. `bosun.sagas` holds one row per saga; `bosun.saga_steps` is its ledger.

-- A saga kind is a job kind short enough that its step jobs' kind, `saga:<kind>`, is one too.
CREATE FUNCTION bosun.valid_saga_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT bosun.valid_kind(kind) AND length(kind) <= 122 $$;

CREATE TYPE bosun.saga_state AS ENUM (
    'running',       -- steps run forward
    'compensating',  -- a step failed or the saga was cancelled: undos run in reverse
    'succeeded',     -- every step succeeded
    'compensated',   -- every succeeded step was undone
    'stuck'          -- an undo gave up; waits for an operator (bosun.retry_saga)
);

CREATE TYPE bosun.saga_step_state AS ENUM (
    'pending', 'running', 'succeeded', 'failed', 'undoing', 'undone', 'undo_failed'
);

CREATE TABLE bosun.sagas (
    id                uuid              NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    kind              text              NOT NULL,
    key               text              NOT NULL,
    inputs            jsonb             NOT NULL DEFAULT '{}',
    state             bosun.saga_state  NOT NULL DEFAULT 'running',
    current_step      integer           NOT NULL DEFAULT 0,
    cancel_requested  boolean           NOT NULL DEFAULT false,
    error             text,
    queue             text              NOT NULL DEFAULT 'default',
    created_at        timestamptz       NOT NULL DEFAULT now(),
    updated_at        timestamptz       NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CONSTRAINT saga_key_is_unique UNIQUE (key),
    CONSTRAINT saga_kind_has_bad_format_see_bosun_valid_saga_kind
        CHECK (bosun.valid_saga_kind(kind)),
    CONSTRAINT saga_key_must_be_1_to_200_characters CHECK (length(key) BETWEEN 1 AND 200),
    CONSTRAINT saga_inputs_must_be_a_json_object CHECK (jsonb_typeof(inputs) = 'object'),
    CONSTRAINT saga_queue_has_bad_format_see_bosun_valid_queue CHECK (bosun.valid_queue(queue)),
    CONSTRAINT finished_saga_has_finished_at
        CHECK (state NOT IN ('succeeded', 'compensated') OR finished_at IS NOT NULL)
);

CREATE INDEX sagas_state_kind_idx ON bosun.sagas (state, kind);

CREATE TABLE bosun.saga_steps (
    saga_id          uuid                   NOT NULL REFERENCES bosun.sagas (id) ON DELETE CASCADE,
    idx              integer                NOT NULL,
    name             text                   NOT NULL,
    state            bosun.saga_step_state  NOT NULL DEFAULT 'pending',
    has_undo         boolean                NOT NULL DEFAULT true,
    attempts         integer                NOT NULL DEFAULT 0,
    undo_attempts    integer                NOT NULL DEFAULT 0,
    output           jsonb,
    error            text,
    progress_pct     real,
    progress_message text,
    started_at       timestamptz,
    finished_at      timestamptz,
    undo_started_at  timestamptz,
    undone_at        timestamptz,
    PRIMARY KEY (saga_id, idx),
    CONSTRAINT step_index_must_not_be_negative CHECK (idx >= 0),
    CONSTRAINT progress_must_be_a_percentage CHECK (progress_pct IS NULL OR progress_pct BETWEEN 0 AND 100)
);
