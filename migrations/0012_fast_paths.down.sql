-- Bosun 0012 down: the name rules and the row check as 0011 left them; no claim function and
-- no index of running jobs by claim time.
DROP INDEX bosun.jobs_running_since_idx;
DROP FUNCTION bosun.claim_jobs(text, bigint, text[], text);
CREATE OR REPLACE FUNCTION bosun.valid_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT kind ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$' $$;

CREATE OR REPLACE FUNCTION bosun.valid_queue(queue text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$' $$;

DROP TRIGGER jobs_check ON bosun.jobs;
DROP FUNCTION bosun.job_row_problem(text, text, jsonb, jsonb, jsonb, text[]);
DROP FUNCTION bosun.bad_tags(text[]);

CREATE FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN NOT bosun.valid_kind(kind) THEN 'kind_has_bad_format_see_bosun_valid_kind'
        WHEN NOT bosun.valid_queue(queue) THEN 'queue_has_bad_format_see_bosun_valid_queue'
        WHEN jsonb_typeof(args) <> 'object' THEN 'args_must_be_a_json_object'
        WHEN jsonb_typeof(meta) <> 'object' THEN 'meta_must_be_a_json_object'
        WHEN jsonb_typeof(errors) <> 'array' THEN 'errors_must_be_a_json_array'
    END
$$;

CREATE OR REPLACE FUNCTION bosun.jobs_reject_bad_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    problem text := bosun.job_row_problem(NEW.kind, NEW.queue, NEW.args, NEW.meta, NEW.errors);
BEGIN
    RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "%"', problem
        USING ERRCODE = 'check_violation', CONSTRAINT = problem,
              SCHEMA = 'bosun', TABLE = 'jobs';
END;
$$;

CREATE TRIGGER jobs_check BEFORE INSERT OR UPDATE OF kind, queue, args, meta, errors
    ON bosun.jobs
    FOR EACH ROW
    WHEN (current_setting('bosun.rows_checked', true) IS DISTINCT FROM 'on'
          AND bosun.job_row_problem(NEW.kind, NEW.queue, NEW.args, NEW.meta, NEW.errors) IS NOT NULL)
    EXECUTE FUNCTION bosun.jobs_reject_bad_row();
