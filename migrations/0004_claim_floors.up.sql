-- Claim floors: claims that start past the claimable index's dead head.
--
-- Every claim turns claimable rows into running ones, and the entries it leaves in
-- jobs_claimable_idx lead to dead row versions. Vacuum removes them, and scans mark them
-- for reuse once no snapshot can see the old versions; but while a transaction holds the
-- vacuum horizon back (a long report, pg_dump, a session idle in a transaction, a replica
-- slot with hot_standby_feedback) neither can happen, and a claim that starts at the head
-- of its queue's range walks every entry claimed since the horizon stopped.
--
-- A floor is a key (scheduled_at, id) per queue and priority (a lane) below which no row of
-- the lane is claimable, so a claim walks the lane from its floor instead of its head:
--
--   * A row that becomes claimable (insert, retry, snooze, rescue, an UPDATE) lowers its
--     lane's floor to its own key, at commit (a deferred trigger, once per transaction and
--     lane for the rows scheduled from the transaction's start on, which an earlier floor
--     cannot be above; one per row for the rows scheduled before it). It holds the lane's
--     floor lock shared from that check to the end of its commit.
--   * The maintenance leader raises floors (bosun.advance_claim_floor, every tick): under
--     the lane's floor lock exclusive, taken only if free, so that no commit is between its
--     check and its end, it moves the floor to the lowest claimable key at or above it that
--     a fresh snapshot sees, but never past its transaction's start.
--
-- So a floor is never above a claimable row that has committed, whatever order commits
-- and raises come in; a floor too low only costs the walk it would have saved. Nothing a
-- client sends changes: floors are Bosun's own bookkeeping, written only by these
-- functions, and a queue that has used more than 64 priorities is claimed from its head as
-- before.

CREATE TABLE bosun.claim_floors (
    queue text NOT NULL,
    priority smallint NOT NULL,
    scheduled_at timestamp with time zone NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (queue, priority)
) WITH (fillfactor = 50);

-- The lanes that hold claimable rows now, from their heads. The trigger below takes the
-- table's lock against inserts until the migration commits, so none is missed.
LOCK TABLE bosun.jobs IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO bosun.claim_floors (queue, priority, scheduled_at, id)
SELECT DISTINCT j.queue, j.priority, '-infinity'::timestamptz, -9223372036854775808
FROM bosun.jobs AS j
WHERE j.state IN ('available', 'scheduled', 'retryable');

-- The lane of the row that fired it may have a row at (least(its scheduled_at, now()), any
-- id): lower the floor to there, or make the lane. Fired at commit.
CREATE FUNCTION bosun.claim_floor_lower() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, bosun, pg_temp
AS $function$
DECLARE
    at timestamptz := least(NEW.scheduled_at, now());
    floor_at timestamptz;
BEGIN
    -- Held to the end of the commit: no raise runs between this check and the rows' being
    -- visible to it.
    PERFORM pg_advisory_xact_lock_shared(hashtext('bosun.claim_floors'),
                                         hashtext(NEW.queue || '/' || NEW.priority));
    SELECT f.scheduled_at INTO floor_at
    FROM bosun.claim_floors AS f
    WHERE f.queue = NEW.queue AND f.priority = NEW.priority;
    IF NOT FOUND THEN
        INSERT INTO bosun.claim_floors AS f (queue, priority, scheduled_at, id)
        VALUES (NEW.queue, NEW.priority, at, -9223372036854775808)
        ON CONFLICT (queue, priority) DO UPDATE
            SET scheduled_at = excluded.scheduled_at, id = excluded.id
            WHERE f.scheduled_at >= excluded.scheduled_at;
    ELSIF floor_at >= at THEN
        UPDATE bosun.claim_floors AS f
        SET scheduled_at = at, id = -9223372036854775808
        WHERE f.queue = NEW.queue AND f.priority = NEW.priority
          AND (f.scheduled_at, f.id) > (at, -9223372036854775808);
    END IF;
    RETURN NULL;
END;
$function$;

-- Rows scheduled from the transaction's start on: once per transaction and lane (the
-- setting bosun.claim_floor_lanes lists the lanes done, as jobs_wake_waiting does queues).
CREATE CONSTRAINT TRIGGER jobs_claim_floor
    AFTER INSERT OR UPDATE OF state, queue, priority, scheduled_at ON bosun.jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.state IN ('available', 'scheduled', 'retryable')
          AND NEW.scheduled_at >= now()
          AND strpos(coalesce(current_setting('bosun.claim_floor_lanes', true), ''),
                     ',' || NEW.queue || '/' || NEW.priority || ',') = 0
          AND set_config('bosun.claim_floor_lanes',
                         coalesce(nullif(current_setting('bosun.claim_floor_lanes', true), ''), ',')
                             || NEW.queue || '/' || NEW.priority || ',',
                         true) IS NOT NULL)
    EXECUTE FUNCTION bosun.claim_floor_lower();

-- Rows scheduled before the transaction's start (an explicit time in the past, a job put
-- back with its old time): each its own.
CREATE CONSTRAINT TRIGGER jobs_claim_floor_early
    AFTER INSERT OR UPDATE OF state, queue, priority, scheduled_at ON bosun.jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.state IN ('available', 'scheduled', 'retryable') AND NEW.scheduled_at < now())
    EXECUTE FUNCTION bosun.claim_floor_lower();


-- bosun.advance_claim_floor: raise the floor of lane (queue_name, lane_priority), if no
-- commit is checking it, to the lowest claimable key at or above it, but no further than the
-- transaction's start. Returns whether it moved (NULL: the lane is busy or gone). The
-- maintenance leader runs it for every lane each tick, each in a transaction of its own:
-- commits into the lane wait for the transaction's end. Only in READ COMMITTED, where each
-- statement sees what committed before it.
CREATE FUNCTION bosun.advance_claim_floor(queue_name text, lane_priority integer) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, bosun, pg_temp
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    SET jit TO 'off'
AS $function$
DECLARE
    floor_at timestamptz;
    floor_id bigint;
    next_at timestamptz;
    next_id bigint;
BEGIN
    PERFORM bosun.require_arguments('bosun.advance_claim_floor', ARRAY['queue_name', 'lane_priority'],
        ARRAY[queue_name IS NULL, lane_priority IS NULL]);
    IF lane_priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION 'bosun.advance_claim_floor: lane_priority must be from -32768 to 32767, got %',
            lane_priority USING ERRCODE = '22023';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'bosun.advance_claim_floor: run it in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25000';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('bosun.claim_floors'),
                                     hashtext(queue_name || '/' || lane_priority)) THEN
        RETURN NULL;
    END IF;
    -- From here on each statement sees every commit that checked this lane.
    SELECT f.scheduled_at, f.id INTO floor_at, floor_id
    FROM bosun.claim_floors AS f
    WHERE f.queue = queue_name AND f.priority = lane_priority;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT c.scheduled_at, c.id INTO next_at, next_id
    FROM bosun.jobs AS c
    WHERE c.queue = queue_name AND c.priority = lane_priority
      AND c.state IN ('available', 'scheduled', 'retryable')
      AND (c.scheduled_at, c.id) >= (floor_at, floor_id)
    ORDER BY c.scheduled_at, c.id
    LIMIT 1;
    -- Never above the raise's start: the entries it skips are those of jobs claimed by then,
    -- and a row scheduled from then on needs no lowering to be seen.
    IF NOT FOUND OR (next_at, next_id) > (now(), -9223372036854775808) THEN
        next_at := now();
        next_id := -9223372036854775808;
    END IF;
    IF (next_at, next_id) <= (floor_at, floor_id) THEN
        RETURN false;
    END IF;
    UPDATE bosun.claim_floors AS f
    SET scheduled_at = next_at, id = next_id
    WHERE f.queue = queue_name AND f.priority = lane_priority;
    -- Losing this write in a crash leaves the floor lower, which is safe; a later durable
    -- commit makes it durable too.
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN true;
END;
$function$;

-- bosun.claim_jobs: the claim, lane by lane from their floors in priority order; otherwise
-- as 0002 has it (arguments checked, claims of one worker on one queue take turns, the
-- waiting mark).
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
    taken        bigint := 0;
    n            bigint;
    lanes        bosun.claim_floors[];
    lane         bosun.claim_floors;
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
    -- One read of the queue's lanes, in priority order (65 at most: enough to tell).
    lanes := ARRAY(SELECT f FROM bosun.claim_floors AS f WHERE f.queue = queue_name
                   ORDER BY f.priority LIMIT 65);
    IF cardinality(lanes) > 64 THEN
        -- So many priorities that one walk from the queue's head costs less than a walk per lane.
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
    ELSIF NOT EXISTS (SELECT 1 FROM bosun.queues AS q WHERE q.name = queue_name AND q.paused) THEN
        FOREACH lane IN ARRAY lanes LOOP
            EXIT WHEN taken >= max_jobs;
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
                      AND c.priority = lane.priority
                      AND (c.scheduled_at, c.id) >= (lane.scheduled_at, lane.id)
                      AND c.state IN ('available', 'scheduled', 'retryable')
                      AND c.scheduled_at <= now()
                      AND c.kind = ANY(kinds)
                    ORDER BY c.scheduled_at, c.id
                    LIMIT max_jobs - taken
                    FOR UPDATE SKIP LOCKED
                ))
                RETURNING j.*
            )
            SELECT * FROM claimed AS r ORDER BY r.scheduled_at, r.id;
            GET DIAGNOSTICS n = ROW_COUNT;
            taken := taken + n;
        END LOOP;
    END IF;
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

-- Who may: the floors are read by claims (bosun_worker) and by operators; only these
-- functions write them.
DO $grants$
DECLARE
    prefix text := coalesce(current_setting('bosun.role_prefix', true), '');
BEGIN
    REVOKE ALL ON bosun.claim_floors FROM PUBLIC;
    REVOKE ALL ON FUNCTION bosun.advance_claim_floor(text, integer) FROM PUBLIC;
    REVOKE ALL ON FUNCTION bosun.claim_floor_lower() FROM PUBLIC;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = prefix || 'bosun_worker') THEN
        EXECUTE format('GRANT SELECT ON bosun.claim_floors TO %I, %I, %I',
                       prefix || 'bosun_worker', prefix || 'bosun_operator', prefix || 'bosun_reader');
        EXECUTE format('GRANT EXECUTE ON FUNCTION bosun.advance_claim_floor(text, integer) TO %I, %I',
                       prefix || 'bosun_worker', prefix || 'bosun_operator');
    END IF;
END;
$grants$;
