-- Bosun 0026 down: periodic jobs lose their catch-up policy and time zone; every schedule
-- fires its latest missed slot, in UTC, again. The functions are as migration 0009 made them.

DROP FUNCTION IF EXISTS bosun.periodic_skip(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS bosun.schedule_periodic(text, text, text, jsonb, text, integer, integer,
                                                text, text, integer, text);

-- bosun.schedule_periodic: define or redefine periodic job `name`. Idempotent. Redefining keeps
-- `enabled` (an operator's pause outlives a deploy) and `last_slot` (past slots do not fire
-- again). The cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6
-- (seconds first); the leader parses it and records an error on the row if it cannot.
CREATE FUNCTION bosun.schedule_periodic(
    name text, cron text, kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
    priority integer DEFAULT 0, max_attempts integer DEFAULT 20, target text DEFAULT NULL
) RETURNS bosun.periodic_jobs LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    missing text;
    fields  integer;
    p       bosun.periodic_jobs;
BEGIN
    missing := CASE WHEN name IS NULL THEN 'name' WHEN cron IS NULL THEN 'cron'
                    WHEN kind IS NULL THEN 'kind' WHEN args IS NULL THEN 'args'
                    WHEN queue IS NULL THEN 'queue' WHEN priority IS NULL THEN 'priority'
                    WHEN max_attempts IS NULL THEN 'max_attempts' END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: % must not be null', missing
            USING ERRCODE = '22004';
    END IF;
    IF length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: name must be 1 to 200 characters, got %',
            length(name) USING ERRCODE = '22023';
    END IF;
    fields := cardinality(regexp_split_to_array(btrim(cron), '\s+'));
    IF NOT (btrim(cron) LIKE '@%' OR fields IN (5, 6)) OR length(cron) > 200 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: cron % must have 5 fields (minute hour day month weekday), 6 (seconds first), or be an @alias such as @hourly',
            quote_literal(cron) USING ERRCODE = '22023';
    END IF;
    IF NOT bosun.valid_kind(kind) THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: kind % is invalid: use 1 to 128 letters, digits, ''_'', ''.'', '':'' or ''-''',
            quote_literal(kind) USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(args) <> 'object' THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: args must be a JSON object, got %',
            jsonb_typeof(args) USING ERRCODE = '22023';
    END IF;
    IF NOT bosun.valid_queue(queue) THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: queue % is invalid: use 1 to 64 letters, digits, ''_'', ''.'' or ''-''',
            quote_literal(queue) USING ERRCODE = '22023';
    END IF;
    IF priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: priority must fit a smallint, got %', priority
            USING ERRCODE = '22023';
    END IF;
    IF max_attempts < 1 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: max_attempts must be at least 1, got %',
            max_attempts USING ERRCODE = '22023';
    END IF;
    IF target IS NOT NULL AND length(target) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: target must be 1 to 255 characters, got %',
            length(target) USING ERRCODE = '22023';
    END IF;
    INSERT INTO bosun.periodic_jobs AS x
        (name, cron, kind, args, queue, priority, max_attempts, target)
    VALUES (name, btrim(cron), kind, args, queue, priority, max_attempts, target)
    ON CONFLICT ON CONSTRAINT periodic_jobs_pkey DO UPDATE
    SET cron = excluded.cron, kind = excluded.kind, args = excluded.args,
        queue = excluded.queue, priority = excluded.priority,
        max_attempts = excluded.max_attempts, target = excluded.target,
        next_at = CASE WHEN x.cron = excluded.cron THEN x.next_at END,
        error = CASE WHEN x.cron = excluded.cron THEN x.error END,
        updated_at = now()
    RETURNING * INTO p;
    RETURN p;
END;
$$;

-- For the leader: enqueue the job of `slot` unless that slot (or a later one) was enqueued
-- already, and remember `next_at`. Returns the job's id, or NULL when nothing was enqueued
-- (paused, removed, done already, or its target is expunged: then `error` says so).
CREATE OR REPLACE FUNCTION bosun.periodic_fire(name text, slot timestamptz, next_at timestamptz)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p  bosun.periodic_jobs;
    id bigint;
BEGIN
    SELECT * INTO p FROM bosun.periodic_jobs AS x WHERE x.name = periodic_fire.name FOR UPDATE;
    IF NOT FOUND OR NOT p.enabled THEN
        RETURN NULL;
    END IF;
    IF p.last_slot IS NOT NULL AND p.last_slot >= slot THEN
        UPDATE bosun.periodic_jobs AS x SET next_at = periodic_fire.next_at
        WHERE x.name = p.name;
        RETURN NULL;
    END IF;
    BEGIN
        id := bosun.enqueue(p.kind, p.args, queue => p.queue, priority => p.priority,
                            max_attempts => p.max_attempts, target => p.target,
                            unique_key => format('periodic:%s:%s', p.name,
                                to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                            meta => jsonb_build_object('periodic', p.name, 'slot', slot));
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        UPDATE bosun.periodic_jobs AS x SET error = SQLERRM, next_at = periodic_fire.next_at
        WHERE x.name = p.name;
        RETURN NULL;
    END;
    UPDATE bosun.periodic_jobs AS x
    SET last_slot = slot, last_job_id = id, next_at = periodic_fire.next_at, error = NULL
    WHERE x.name = p.name;
    RETURN id;
END;
$$;

-- For the leader: record the next slot, or why it cannot compute one.
CREATE OR REPLACE FUNCTION bosun.periodic_note(name text, next_at timestamptz, error text)
    RETURNS void LANGUAGE sql AS $$
    UPDATE bosun.periodic_jobs AS x
    SET next_at = periodic_note.next_at, error = periodic_note.error
    WHERE x.name = periodic_note.name
      AND (x.next_at IS DISTINCT FROM periodic_note.next_at
           OR x.error IS DISTINCT FROM periodic_note.error)
$$;

ALTER TABLE bosun.periodic_jobs
    DROP COLUMN skipped_to,
    DROP COLUMN skipped_from,
    DROP COLUMN timezone,
    DROP COLUMN catch_up_max,
    DROP COLUMN catch_up;
