-- Least privilege: four NOLOGIN group roles, each able to do exactly its client's part, and
-- nothing in schema bosun granted to PUBLIC. A login role gets a part by membership
-- (`GRANT bosun_enqueuer TO app;`); docs/security.md says what each can and cannot do.
--
--   bosun_enqueuer  enqueue (the functions, or a plain INSERT of the columns a new job sets),
--                   start sagas, register targets, read a job's status by id
--   bosun_worker    the worker protocol and what `bosun worker` runs: its statements write
--                   the job rows of the runtime directly, so the role may write those tables;
--                   it may not call the operator functions (retry, cancel, reschedule, pause,
--                   expunge, sagas' operator calls)
--   bosun_operator  everything an operator does, reading everything
--   bosun_reader    the statistics views and the sampled counts, for dashboards
--
-- The names take a prefix from the setting `bosun.role_prefix` when the migration runs
-- (`ALTER DATABASE app SET bosun.role_prefix = 'app_'`, for several Bosun schemas in one
-- cluster). Roles are made only if missing; they belong to the cluster, so a migration down
-- leaves them. Only the owner of the schema (who migrates) may change it.
--
-- The functions an enqueuer calls, the trigger functions, the sampled counts and the job
-- status run as their owner (SECURITY DEFINER, with a pinned search_path), so that a role
-- needs no grant on the tables they read and write.
-- bosun.job_status: where job `id` stands, without its args or meta: what an application that
-- may only enqueue (bosun_enqueuer) reads of the jobs it enqueued. No row for no such job.
CREATE FUNCTION bosun.job_status(id bigint)
 RETURNS TABLE(kind text, queue text, state bosun.job_state, attempt integer,
               max_attempts integer, scheduled_at timestamp with time zone,
               finalized_at timestamp with time zone, errors jsonb)
 LANGUAGE sql STABLE
AS $function$
    SELECT bosun.require_arguments('bosun.job_status', ARRAY['id'], ARRAY[job_status.id IS NULL]);
    SELECT j.kind, j.queue, j.state, j.attempt, j.max_attempts, j.scheduled_at, j.finalized_at,
           j.errors
    FROM bosun.jobs AS j WHERE j.id = job_status.id
$function$;

DO $migration$
DECLARE
    prefix text := coalesce(current_setting('bosun.role_prefix', true), '');
    enqueuer text := prefix || 'bosun_enqueuer';
    worker text := prefix || 'bosun_worker';
    operator text := prefix || 'bosun_operator';
    reader text := prefix || 'bosun_reader';
    role_name text;
    f regprocedure;
BEGIN
    IF prefix !~ '^[a-z0-9_]{0,30}$' THEN
        RAISE EXCEPTION 'bosun.role_prefix must be up to 30 lowercase letters, digits or _, got %',
            bosun.quote_short(prefix) USING ERRCODE = '22023';
    END IF;
    FOREACH role_name IN ARRAY ARRAY[enqueuer, worker, operator, reader] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another database of the cluster made it at the same moment.
                NULL;
            END;
        END IF;
    END LOOP;

    -- Nothing for PUBLIC: functions are executable by PUBLIC unless revoked.
    REVOKE ALL ON ALL TABLES IN SCHEMA bosun FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA bosun FROM PUBLIC;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA bosun FROM PUBLIC;
    EXECUTE format('GRANT USAGE ON SCHEMA bosun TO %I, %I, %I, %I',
                   enqueuer, worker, operator, reader);
    -- Every client checks which version the schema is at before it acts.
    EXECUTE format('GRANT SELECT ON bosun.schema_migrations TO %I, %I, %I, %I',
                   enqueuer, worker, operator, reader);

    -- Run as their owner, with a search_path nobody else can put objects on.
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'bosun'::regnamespace
          AND (p.prorettype = 'trigger'::regtype
               OR p.proname IN ('enqueue', 'enqueue_unique', 'enqueue_many', 'enqueue_arrays',
                                'start_saga', 'register_target', 'sample_queues',
                                'sample_oldest_available', 'reap_expunged', 'job_status'))
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, bosun, pg_temp', f);
    END LOOP;

    -- The checks the tables and triggers call judge a value and touch nothing: every role
    -- that may write a row needs them.
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'bosun'::regnamespace
          AND p.proname IN ('valid_kind', 'valid_queue', 'valid_saga_kind', 'bad_tags',
                            'is_timestamptz', 'job_row_problem', 'quote_short',
                            'require_arguments', 'protocol_version')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I, %I, %I, %I',
                       f, enqueuer, worker, operator, reader);
    END LOOP;

    -- bosun_enqueuer.
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'bosun'::regnamespace
          AND p.proname IN ('enqueue', 'enqueue_unique', 'enqueue_many', 'enqueue_arrays',
                            'start_saga', 'register_target', 'job_status')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, enqueuer);
    END LOOP;
    EXECUTE format('GRANT INSERT (kind, args, queue, priority, scheduled_at, max_attempts, '
                   'unique_key, target, tags, meta), SELECT (id) ON bosun.jobs TO %I', enqueuer);
    EXECUTE format('GRANT USAGE ON SEQUENCE bosun.jobs_id_seq TO %I', enqueuer);
    -- Which kinds some worker serves: `bosun enqueue` warns of a kind nobody runs.
    EXECUTE format('GRANT SELECT ON bosun.served_kinds TO %I, %I', enqueuer, reader);

    -- bosun_worker: every function but the operator's, and the runtime's tables.
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'bosun'::regnamespace
          AND p.prorettype <> 'trigger'::regtype
          AND p.proname NOT IN ('cancel_job', 'retry_job', 'retry_jobs', 'reschedule_job',
                                'pause_queue', 'resume_queue', 'queue_set_paused',
                                'expunge_target', 'cancel_saga', 'retry_saga', 'delete_saga',
                                'pause_periodic', 'resume_periodic', 'unschedule_periodic',
                                'periodic_set_enabled')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, worker);
    END LOOP;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA bosun TO %I', worker);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA bosun TO %I', worker);
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON bosun.queues, bosun.targets FROM %I', worker);

    -- bosun_operator: everything but changing the schema.
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bosun TO %I', operator);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA bosun TO %I', operator);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA bosun TO %I', operator);

    -- bosun_reader: the statistics.
    EXECUTE format('GRANT SELECT ON bosun.queue_stats, bosun.target_stats, bosun.workers, '
                   'bosun.leaders, bosun.queues, bosun.saga_outcomes TO %I', reader);
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'bosun'::regnamespace
          AND p.proname IN ('sample_queues', 'sample_oldest_available')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, reader);
    END LOOP;
END;
$migration$;
