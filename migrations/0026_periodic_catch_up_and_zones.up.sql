-- Bosun 0026: periodic jobs get a catch-up policy and a time zone.
--
-- catch_up says what the leader does with slots that came while no leader fired them:
-- 'latest' (the latest fires once; the behaviour before this migration, and the default),
-- 'all' (each fires, oldest first, at most catch_up_max of them: the latest ones) or 'none'
-- (a slot found late is skipped; the next one that comes fires). Skipped slots are recorded
-- as a range, skipped_from to skipped_to; skipped_to also tells the leader where to go on,
-- as last_slot does for fired slots.
--
-- timezone is the IANA zone the cron expression is read in ('UTC' by default). Slots stay
-- instants: a unique key names the slot in UTC, so the two 02:30s of a day when clocks go
-- back are two keys, and which of them fire is the leader's decision.

ALTER TABLE bosun.periodic_jobs
    ADD COLUMN catch_up     text    NOT NULL DEFAULT 'latest',
    ADD COLUMN catch_up_max integer NOT NULL DEFAULT 100,
    ADD COLUMN timezone     text    NOT NULL DEFAULT 'UTC',
    -- The slots the latest catch-up skipped: every slot from skipped_from to skipped_to.
    ADD COLUMN skipped_from timestamptz,
    ADD COLUMN skipped_to   timestamptz,
    ADD CONSTRAINT periodic_catch_up_must_be_latest_all_or_none
        CHECK (catch_up IN ('latest', 'all', 'none')),
    ADD CONSTRAINT periodic_catch_up_max_must_be_1_to_10000
        CHECK (catch_up_max BETWEEN 1 AND 10000),
    ADD CONSTRAINT periodic_timezone_must_be_1_to_64_characters
        CHECK (length(timezone) BETWEEN 1 AND 64),
    ADD CONSTRAINT periodic_skipped_from_must_not_be_after_skipped_to
        CHECK ((skipped_from IS NULL) = (skipped_to IS NULL) AND skipped_from <= skipped_to);

-- A new signature (three arguments more, with defaults): the old one is dropped, so that a
-- call naming only the old arguments is not ambiguous between two functions.
DROP FUNCTION bosun.schedule_periodic(text, text, text, jsonb, text, integer, integer, text);

-- bosun.schedule_periodic: define or redefine periodic job `name`. Idempotent. Redefining keeps
-- `enabled` (an operator's pause outlives a deploy), `last_slot` and `skipped_to` (past slots
-- do not fire again). The cron expression has 5 fields (minute hour day-of-month month
-- day-of-week) or 6 (seconds first); the leader parses it and records an error on the row if
-- it cannot. `timezone` must be a zone PostgreSQL knows (pg_timezone_names); the leader
-- records an error if its own zone database lacks it.
CREATE FUNCTION bosun.schedule_periodic(
    name text, cron text, kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
    priority integer DEFAULT 0, max_attempts integer DEFAULT 20, target text DEFAULT NULL,
    catch_up text DEFAULT 'latest', catch_up_max integer DEFAULT 100,
    timezone text DEFAULT 'UTC'
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
                    WHEN max_attempts IS NULL THEN 'max_attempts'
                    WHEN catch_up IS NULL THEN 'catch_up'
                    WHEN catch_up_max IS NULL THEN 'catch_up_max'
                    WHEN timezone IS NULL THEN 'timezone' END;
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
    -- Bad values are echoed cut to 64 characters: enough to recognise, never a huge message.
    IF catch_up NOT IN ('latest', 'all', 'none') THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: catch_up must be ''latest'', ''all'' or ''none'', got %',
            quote_literal(left(catch_up, 64)) USING ERRCODE = '22023';
    END IF;
    IF catch_up_max NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: catch_up_max must be 1 to 10000, got %',
            catch_up_max USING ERRCODE = '22023';
    END IF;
    -- 'localtime' and 'posixrules' are files of the server's zone directory, not zones: what
    -- they mean depends on the machine.
    IF length(timezone) NOT BETWEEN 1 AND 64
       OR timezone IN ('localtime', 'posixrules')
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_names AS z WHERE z.name = timezone) THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: timezone % is not an IANA time zone name such as ''Europe/Berlin'' or ''UTC'' (see pg_timezone_names)',
            quote_literal(left(timezone, 64)) USING ERRCODE = '22023';
    END IF;
    INSERT INTO bosun.periodic_jobs AS x
        (name, cron, kind, args, queue, priority, max_attempts, target, catch_up,
         catch_up_max, timezone)
    VALUES (name, btrim(cron), kind, args, queue, priority, max_attempts, target, catch_up,
            catch_up_max, timezone)
    ON CONFLICT ON CONSTRAINT periodic_jobs_pkey DO UPDATE
    SET cron = excluded.cron, kind = excluded.kind, args = excluded.args,
        queue = excluded.queue, priority = excluded.priority,
        max_attempts = excluded.max_attempts, target = excluded.target,
        catch_up = excluded.catch_up, catch_up_max = excluded.catch_up_max,
        timezone = excluded.timezone,
        next_at = CASE WHEN (x.cron, x.timezone) = (excluded.cron, excluded.timezone)
                       THEN x.next_at END,
        error = CASE WHEN (x.cron, x.timezone) = (excluded.cron, excluded.timezone)
                     THEN x.error END,
        updated_at = now()
    RETURNING * INTO p;
    RETURN p;
END;
$$;

-- For the leader: enqueue the job of `slot` unless that slot (or a later one) was enqueued or
-- skipped already, and remember `next_at`. Returns the job's id, or NULL when nothing was
-- enqueued (paused, removed, done already, or its target is expunged: then `error` says so).
-- `slot` is a whole second (the unique key names it to the second); `next_at` may be NULL
-- (no next slot).
CREATE OR REPLACE FUNCTION bosun.periodic_fire(name text, slot timestamptz, next_at timestamptz)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p  bosun.periodic_jobs;
    id bigint;
BEGIN
    IF name IS NULL OR slot IS NULL THEN
        RAISE EXCEPTION 'bosun.periodic_fire: % must not be null',
            CASE WHEN name IS NULL THEN 'name' ELSE 'slot' END USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(slot) OR date_trunc('second', slot) <> slot THEN
        RAISE EXCEPTION 'bosun.periodic_fire: slot must be a finite time in whole seconds, got %',
            slot USING ERRCODE = '22023';
    END IF;
    IF NOT isfinite(next_at) THEN
        RAISE EXCEPTION 'bosun.periodic_fire: next_at must be a finite time or null, got %',
            next_at USING ERRCODE = '22023';
    END IF;
    SELECT * INTO p FROM bosun.periodic_jobs AS x WHERE x.name = periodic_fire.name FOR UPDATE;
    IF NOT FOUND OR NOT p.enabled THEN
        RETURN NULL;
    END IF;
    IF p.last_slot >= slot OR p.skipped_to >= slot THEN
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

-- For the leader: record that the catch-up policy skipped every slot from `first` to `last`
-- (no job is enqueued for them), unless the schedule is paused or removed, or a slot that
-- late was fired or skipped already. Returns whether it was recorded.
CREATE FUNCTION bosun.periodic_skip(name text, first timestamptz, last timestamptz)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    missing := CASE WHEN name IS NULL THEN 'name' WHEN first IS NULL THEN 'first'
                    WHEN last IS NULL THEN 'last' END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.periodic_skip: % must not be null', missing
            USING ERRCODE = '22004';
    END IF;
    IF NOT (isfinite(first) AND isfinite(last)) THEN
        RAISE EXCEPTION 'bosun.periodic_skip: first and last must be finite times, got % and %',
            first, last USING ERRCODE = '22023';
    END IF;
    IF first > last THEN
        RAISE EXCEPTION 'bosun.periodic_skip: first (%) must not be after last (%)', first, last
            USING ERRCODE = '22023';
    END IF;
    UPDATE bosun.periodic_jobs AS x
    SET skipped_from = periodic_skip.first, skipped_to = periodic_skip.last
    WHERE x.name = periodic_skip.name AND x.enabled
      AND (x.last_slot IS NULL OR x.last_slot < periodic_skip.last)
      AND (x.skipped_to IS NULL OR x.skipped_to < periodic_skip.last);
    RETURN FOUND;
END;
$$;

-- For the leader: record the next slot (NULL: there is none), or why it cannot compute one
-- (NULL: no problem).
CREATE OR REPLACE FUNCTION bosun.periodic_note(name text, next_at timestamptz, error text)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'bosun.periodic_note: name must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(next_at) THEN
        RAISE EXCEPTION 'bosun.periodic_note: next_at must be a finite time or null, got %',
            next_at USING ERRCODE = '22023';
    END IF;
    UPDATE bosun.periodic_jobs AS x
    SET next_at = periodic_note.next_at, error = periodic_note.error
    WHERE x.name = periodic_note.name
      AND (x.next_at IS DISTINCT FROM periodic_note.next_at
           OR x.error IS DISTINCT FROM periodic_note.error);
END;
$$;
