-- The worker protocol: the calls a worker in any language makes, from any SQL client, with
-- the guarantees of Bosun's own runtime (which makes the same calls). Version 1; a change
-- that breaks a caller gets a new version and keeps the old calls for one release.
--
--   register and renew the lease   bosun.worker_heartbeat(worker, queues, kinds, lease_seconds)
--   claim                          bosun.claim(worker, queues, max_jobs [, kinds])
--   end an attempt                 bosun.complete_job / bosun.fail_job / bosun.snooze_job
--   report progress                bosun.job_progress
--   learn of cancels and takeovers bosun.lost_jobs(ids, attempts)
--   shut down                      bosun.give_back_jobs(ids, attempts), bosun.worker_deregister
--
-- Every call about a job names its id and the attempt the claim gave it (the lease): a write
-- for an attempt that is no longer the running one changes nothing. The fenced single-job
-- writes plan each call for its own id (`plan_cache_mode`): a generic plan of the UPDATE
-- could walk an index of running jobs instead of probing the primary key.

-- bosun.protocol_version: which version of the worker protocol this schema speaks.
CREATE FUNCTION bosun.protocol_version() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1 $$;

-- bosun.worker_heartbeat: register `worker` (1 to 255 characters) as serving `queues` with
-- `kinds`, alive for `lease_seconds` from now on the database clock, or renew it. True when
-- the worker was not registered (its first beat, or one after its registration expired and
-- was forgotten). A worker whose lease runs out is dead: the maintenance leader gives its
-- running jobs back.
CREATE FUNCTION bosun.worker_heartbeat(worker text, queues text[], kinds text[],
                                       lease_seconds double precision DEFAULT 15,
                                       host text DEFAULT '', pid integer DEFAULT 0)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    inserted boolean;
BEGIN
    PERFORM bosun.require_arguments('bosun.worker_heartbeat',
        ARRAY['worker', 'queues', 'kinds', 'lease_seconds', 'host', 'pid'],
        ARRAY[worker IS NULL, queues IS NULL, kinds IS NULL, lease_seconds IS NULL,
              host IS NULL, pid IS NULL]);
    IF NOT (lease_seconds > 0 AND lease_seconds <= 3155760000) THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: lease_seconds must be above 0 and at most 3155760000 (36525 days), got %',
            lease_seconds USING ERRCODE = '22023';
    END IF;
    IF array_position(queues, NULL) IS NOT NULL OR array_position(kinds, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: queues and kinds must not hold nulls'
            USING ERRCODE = '22004';
    END IF;
    IF cardinality(queues) > 1000 OR cardinality(kinds) > 10000 THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: at most 1000 queues and 10000 kinds, got % and %',
            cardinality(queues), cardinality(kinds) USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(queues) AS q WHERE NOT bosun.valid_queue(q))
       OR EXISTS (SELECT 1 FROM unnest(kinds) AS k WHERE NOT bosun.valid_kind(k)) THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: queues and kinds must be valid names (see bosun.valid_queue, bosun.valid_kind)'
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO bosun.workers AS w (id, host, pid, queues, kinds, started_at, heartbeat_at, expires_at)
    VALUES (worker, host, pid, queues, kinds, now(), now(),
            now() + make_interval(secs => lease_seconds))
    ON CONFLICT (id) DO UPDATE
    SET heartbeat_at = now(),
        expires_at = EXCLUDED.expires_at,
        queues = EXCLUDED.queues,
        kinds = EXCLUDED.kinds
    RETURNING (w.xmax = 0) INTO inserted;
    RETURN inserted;
END;
$function$;

-- bosun.worker_deregister: forget `worker` at a graceful shutdown: its registration, any
-- leadership it holds, and its marks as waiting on queues. Give its jobs back first
-- (bosun.give_back_jobs); jobs it still holds are rescued as a dead worker's.
CREATE FUNCTION bosun.worker_deregister(worker text) RETURNS void
    LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.worker_deregister', ARRAY['worker'],
        ARRAY[worker IS NULL]);
    DELETE FROM bosun.leaders WHERE worker_id = worker;
    DELETE FROM bosun.workers WHERE id = worker;
    DELETE FROM bosun.waiting_workers AS w WHERE w.worker = worker_deregister.worker;
END;
$function$;

-- bosun.claim: claim up to `max_jobs` due jobs for the registered `worker`, from `queues` in
-- the order given, of `kinds` (default: the kinds the worker registered). Each comes back
-- `running`, its `attempt` counted: (id, attempt) is the lease every later call names. The
-- worker must hold a live registration (bosun.worker_heartbeat): a claim nobody heartbeats
-- for would only wait for the rescuer. With `wait`, a queue that comes back short marks the
-- worker as waiting on it in the same transaction, so that the next insert into it notifies
-- channel `bosun_jobs` (a worker that LISTENs there can then sleep until then).
CREATE FUNCTION bosun.claim(worker text, queues text[], max_jobs integer, kinds text[] DEFAULT NULL,
                            wait boolean DEFAULT false)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    registered text[];
    queue_name text;
    taken bigint := 0;
    j bosun.jobs;
BEGIN
    PERFORM bosun.require_arguments('bosun.claim', ARRAY['worker', 'queues', 'max_jobs', 'wait'],
        ARRAY[worker IS NULL, queues IS NULL, max_jobs IS NULL, wait IS NULL]);
    IF array_position(queues, NULL) IS NOT NULL OR array_position(kinds, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.claim: queues and kinds must not hold nulls' USING ERRCODE = '22004';
    END IF;
    IF max_jobs < 0 OR max_jobs > 10000 THEN
        RAISE EXCEPTION 'bosun.claim: max_jobs must be 0 to 10000, got %', max_jobs
            USING ERRCODE = '22023';
    END IF;
    SELECT w.kinds INTO registered
    FROM bosun.workers AS w WHERE w.id = worker AND w.expires_at > now();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bosun.claim: worker % holds no live registration: call bosun.worker_heartbeat first',
            bosun.quote_short(worker) USING ERRCODE = '55000';
    END IF;
    FOREACH queue_name IN ARRAY queues LOOP
        EXIT WHEN taken >= max_jobs;
        FOR j IN SELECT * FROM bosun.claim_jobs(queue_name, max_jobs - taken,
                                                coalesce(kinds, registered), worker, wait) LOOP
            taken := taken + 1;
            RETURN NEXT j;
        END LOOP;
    END LOOP;
END;
$function$;

-- bosun.complete_job: the attempt succeeded. True if it was the running one (and the job is
-- now `completed`); false if the job was cancelled, retried or taken over meanwhile.
CREATE FUNCTION bosun.complete_job(job_id bigint, job_attempt integer) RETURNS boolean
    LANGUAGE plpgsql
    SET plan_cache_mode TO force_custom_plan
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.complete_job', ARRAY['job_id', 'job_attempt'],
        ARRAY[job_id IS NULL, job_attempt IS NULL]);
    UPDATE bosun.jobs
    SET state = 'completed', finalized_at = now()
    WHERE id = job_id AND state = 'running' AND attempt = job_attempt;
    RETURN FOUND;
END;
$function$;

-- bosun.fail_job: the attempt failed with `error` (kept to 4096 characters, in the job's
-- errors with the attempt, the time, the worker and `error_kind`, by default `error`, or
-- `permanent`). The job becomes `failed` when the error is `permanent` or it has used its
-- attempts; otherwise `retryable` after `retry_in` (0 to 36525 days; default: attempt^4
-- seconds, at least 1, at most a day), with +/-10% jitter. Returns the new state and, for a retry, the seconds
-- until it is due; no row if the attempt is no longer the running one.
CREATE FUNCTION bosun.fail_job(job_id bigint, job_attempt integer, error text,
                               permanent boolean DEFAULT false, retry_in interval DEFAULT NULL,
                               error_kind text DEFAULT NULL)
 RETURNS TABLE(state bosun.job_state, due_in double precision)
 LANGUAGE plpgsql
 SET plan_cache_mode TO force_custom_plan
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM bosun.require_arguments('bosun.fail_job',
        ARRAY['job_id', 'job_attempt', 'error', 'permanent'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, error IS NULL, permanent IS NULL]);
    IF retry_in < interval '0' OR retry_in > interval '36525 days' THEN
        RAISE EXCEPTION 'bosun.fail_job: retry_in must be 0 to 36525 days, got %', retry_in
            USING ERRCODE = '22023';
    END IF;
    IF length(error_kind) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'bosun.fail_job: error_kind must be 1 to 64 characters'
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    UPDATE bosun.jobs AS j
    SET state = CASE WHEN fail_job.permanent OR j.attempt >= j.max_attempts THEN 'failed'
                     ELSE 'retryable' END::bosun.job_state,
        scheduled_at = CASE WHEN fail_job.permanent OR j.attempt >= j.max_attempts THEN j.scheduled_at
                            ELSE now() + coalesce(fail_job.retry_in,
                                     make_interval(secs => greatest(1, least(86400, power(j.attempt, 4)))))
                                 * (0.9 + random() * 0.2)
                       END,
        finalized_at = CASE WHEN fail_job.permanent OR j.attempt >= j.max_attempts THEN now() END,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'error', left(fail_job.error, 4096),
            'worker', j.attempted_by,
            'kind', coalesce(fail_job.error_kind,
                             CASE WHEN fail_job.permanent THEN 'permanent' ELSE 'error' END)))
    WHERE j.id = fail_job.job_id AND j.state = 'running' AND j.attempt = fail_job.job_attempt
    RETURNING j.state,
              CASE WHEN j.state = 'retryable'
                   THEN extract(epoch FROM j.scheduled_at - now())::float8 END;
END;
$function$;

-- bosun.snooze_job: not now; run again after `delay` (0 to 36525 days) without using an
-- attempt. Returns the new state (`scheduled`, or `failed` for a job at the most attempts a
-- job may have) and the seconds until it is due; no row if the attempt is no longer the
-- running one.
CREATE FUNCTION bosun.snooze_job(job_id bigint, job_attempt integer, delay interval)
 RETURNS TABLE(state bosun.job_state, due_in double precision)
 LANGUAGE plpgsql
 SET plan_cache_mode TO force_custom_plan
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM bosun.require_arguments('bosun.snooze_job', ARRAY['job_id', 'job_attempt', 'delay'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, delay IS NULL]);
    IF delay < interval '0' OR delay > interval '36525 days' THEN
        RAISE EXCEPTION 'bosun.snooze_job: delay must be 0 to 36525 days, got %', delay
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    UPDATE bosun.jobs AS j
    SET state = CASE WHEN j.attempt < 1000000000 THEN 'scheduled' ELSE 'failed' END::bosun.job_state,
        scheduled_at = CASE WHEN j.attempt < 1000000000 THEN now() + snooze_job.delay
                            ELSE j.scheduled_at END,
        max_attempts = least(j.max_attempts + 1, 1000000000),
        finalized_at = CASE WHEN j.attempt < 1000000000 THEN NULL ELSE now() END,
        errors = CASE WHEN j.attempt < 1000000000 THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(),
                          'error', 'snoozed, but the job has used the most attempts a job may have (1000000000)',
                          'worker', j.attempted_by, 'kind', 'snooze'))
                 END
    WHERE j.id = snooze_job.job_id AND j.state = 'running' AND j.attempt = snooze_job.job_attempt
    RETURNING j.state,
              CASE WHEN j.state = 'scheduled'
                   THEN extract(epoch FROM j.scheduled_at - now())::float8 END;
END;
$function$;

-- bosun.job_progress: note how far the running attempt has come, as `progress` (a JSON value
-- of at most 8192 bytes) under the key `progress` of the job's meta, for operators and
-- dashboards. True if the attempt is the running one.
CREATE FUNCTION bosun.job_progress(job_id bigint, job_attempt integer, progress jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.job_progress',
        ARRAY['job_id', 'job_attempt', 'progress'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, progress IS NULL]);
    IF octet_length(progress::text) > 8192 THEN
        RAISE EXCEPTION 'bosun.job_progress: progress must be at most 8192 bytes as JSON'
            USING ERRCODE = '22023';
    END IF;
    UPDATE bosun.jobs
    SET meta = jsonb_set(meta, '{progress}', progress)
    WHERE id = job_id AND state = 'running' AND attempt = job_attempt;
    RETURN FOUND;
END;
$function$;

-- bosun.lost_jobs: of the held jobs (`ids` and `attempts`, pairwise), those whose attempt is
-- no longer the running one: cancelled by an operator, their target expunged, or taken over.
-- Their handlers should stop; whatever they write is fenced out anyway.
CREATE FUNCTION bosun.lost_jobs(ids bigint[], attempts integer[]) RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.lost_jobs', ARRAY['ids', 'attempts'],
        ARRAY[ids IS NULL, attempts IS NULL]);
    IF cardinality(ids) <> cardinality(attempts) THEN
        RAISE EXCEPTION 'bosun.lost_jobs: ids and attempts must have the same length'
            USING ERRCODE = '22023';
    END IF;
    IF array_position(ids, NULL) IS NOT NULL OR array_position(attempts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.lost_jobs: ids and attempts must not hold nulls' USING ERRCODE = '22004';
    END IF;
    RETURN QUERY
    SELECT h.id
    FROM unnest(ids, attempts) AS h(id, attempt)
    WHERE NOT EXISTS (
        SELECT 1 FROM bosun.jobs AS j
        WHERE j.id = h.id AND j.state = 'running' AND j.attempt = h.attempt
    );
END;
$function$;

-- bosun.give_back_jobs: hand held jobs back to their queues at shutdown (`available` now,
-- the attempt not counted), fenced pairwise by `ids` and `attempts`; a job at the most
-- attempts a job may have fails instead. Returns the ids handed back, and wakes their queues.
CREATE FUNCTION bosun.give_back_jobs(ids bigint[], attempts integer[]) RETURNS SETOF bigint
    LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.give_back_jobs', ARRAY['ids', 'attempts'],
        ARRAY[ids IS NULL, attempts IS NULL]);
    IF cardinality(ids) <> cardinality(attempts) THEN
        RAISE EXCEPTION 'bosun.give_back_jobs: ids and attempts must have the same length'
            USING ERRCODE = '22023';
    END IF;
    IF array_position(ids, NULL) IS NOT NULL OR array_position(attempts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.give_back_jobs: ids and attempts must not hold nulls' USING ERRCODE = '22004';
    END IF;
    RETURN QUERY
    WITH released AS (
        UPDATE bosun.jobs AS j
        SET state = CASE WHEN j.attempt < 1000000000 THEN 'available'
                         ELSE 'failed' END::bosun.job_state,
            scheduled_at = CASE WHEN j.attempt < 1000000000 THEN now() ELSE j.scheduled_at END,
            max_attempts = least(j.max_attempts + 1, 1000000000),
            finalized_at = CASE WHEN j.attempt < 1000000000 THEN NULL ELSE now() END,
            errors = CASE WHEN j.attempt < 1000000000 THEN j.errors
                          ELSE j.errors || jsonb_build_array(jsonb_build_object(
                              'attempt', j.attempt, 'at', now(),
                              'error', 'handed back, but the job has used the most attempts a job may have (1000000000)',
                              'worker', j.attempted_by, 'kind', 'handed_back'))
                     END
        FROM unnest(ids, attempts) AS h(id, attempt)
        WHERE j.id = h.id AND j.attempt = h.attempt AND j.state = 'running'
        RETURNING j.id, j.queue, j.state
    ), woken AS (
        SELECT bosun.notify_queues(ARRAY(
            SELECT DISTINCT queue FROM released WHERE state = 'available'))
    )
    SELECT released.id FROM released, woken WHERE released.state = 'available';
END;
$function$;

-- bosun.claim_jobs: the claim itself, for bosun.claim and Bosun's own runtime. It checks its
-- arguments like the public functions (a NULL raises 22004 naming it, a negative count
-- 22023), and notes in the setting `bosun.claim_waited` whether it waited for another claim
-- of the same worker on the queue: a worker with two claims in flight starts their jobs in
-- the order the database took them.
CREATE OR REPLACE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean DEFAULT false)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
DECLARE
    may_mark     boolean := false;
    lock_timeout_was text;
    taken        bigint;
BEGIN
    IF queue_name IS NULL OR max_jobs IS NULL OR kinds IS NULL OR worker IS NULL OR wait IS NULL THEN
        RAISE EXCEPTION 'bosun.claim_jobs: % must not be null',
            CASE WHEN queue_name IS NULL THEN 'queue_name' WHEN max_jobs IS NULL THEN 'max_jobs'
                 WHEN kinds IS NULL THEN 'kinds' WHEN worker IS NULL THEN 'worker' ELSE 'wait' END
            USING ERRCODE = '22004';
    END IF;
    IF max_jobs < 0 THEN
        RAISE EXCEPTION 'bosun.claim_jobs: max_jobs must not be negative, got %', max_jobs
            USING ERRCODE = '22023';
    END IF;
    -- Claims of one worker on one queue take turns. Whether this one waited for another's
    -- turn is noted for the caller: that other claim took the due jobs first.
    IF pg_try_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name)) THEN
        PERFORM set_config('bosun.claim_waited', 'off', true);
    ELSE
        PERFORM set_config('bosun.claim_waited', 'on', true);
        PERFORM pg_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name));
    END IF;
    IF wait THEN
        lock_timeout_was := current_setting('lock_timeout');
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            PERFORM pg_advisory_xact_lock(hashtext('bosun.waiting_workers'), hashtext(queue_name));
            may_mark := true;
        EXCEPTION WHEN lock_not_available THEN
            RAISE WARNING 'bosun.claim_jobs: inserts into queue % held its waiting lock for 200 ms; worker % is not marked as waiting and polls', queue_name, worker;
        END;
        PERFORM set_config('lock_timeout', lock_timeout_was, true);
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE bosun.jobs AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            attempted_at = now(),
            attempted_by = worker
        WHERE j.id = ANY(ARRAY(
            SELECT c.id
            FROM bosun.jobs AS c
            WHERE c.queue = queue_name
              AND c.state IN ('available', 'scheduled', 'retryable')
              AND c.scheduled_at <= now()
              AND c.kind = ANY(kinds)
              AND NOT EXISTS (SELECT 1 FROM bosun.queues AS q WHERE q.name = queue_name AND q.paused)
            ORDER BY c.priority, c.scheduled_at, c.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING j.*
    )
    SELECT * FROM claimed AS r ORDER BY r.priority, r.scheduled_at, r.id;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF may_mark AND taken < max_jobs THEN
        -- Room left and no job left: inserts into the queue wake this worker from now on.
        INSERT INTO bosun.waiting_workers AS w (queue, worker)
        VALUES (queue_name, claim_jobs.worker)
        ON CONFLICT ON CONSTRAINT waiting_workers_pkey DO NOTHING;
    ELSIF taken > 0 THEN
        -- Claiming, the worker is awake: enqueues need not wake it until it marks itself again.
        DELETE FROM bosun.waiting_workers AS w
        WHERE w.queue = queue_name AND w.worker = claim_jobs.worker;
    END IF;
END;
$function$;
