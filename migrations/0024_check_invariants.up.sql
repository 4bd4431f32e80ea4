-- Bosun 0024: bosun.check_invariants(), what `bosun doctor` prints. Each row is one
-- violation of a rule that Bosun's own writes never break: an operator sees what needs a
-- hand, and a test that kills workers or restarts the database can assert that nothing was
-- left half-done.
--
-- `grace` is how long a state may last before it counts: a dead worker's jobs wait for the
-- rescuer (the lease, then a maintenance tick), an expunged target's jobs for the reaper.

CREATE FUNCTION bosun.check_invariants(grace interval DEFAULT '1 minute')
 RETURNS TABLE(invariant text, subject text, detail text)
 LANGUAGE plpgsql STABLE
AS $function$
#variable_conflict use_column
BEGIN
    IF grace IS NULL THEN
        RAISE EXCEPTION 'bosun.check_invariants: grace must not be null' USING ERRCODE = '22004';
    END IF;
    IF grace < interval '0' THEN
        RAISE EXCEPTION 'bosun.check_invariants: grace must not be negative, got %', grace
            USING ERRCODE = '22023';
    END IF;

    -- A saga that has not finished moves only through its step's job.
    RETURN QUERY
    SELECT 'unfinished_saga_has_no_live_job', 'saga ' || s.id,
           format('%s saga %s is %s at step %s and none of its jobs will run; bosun.retry_saga(%L) resumes it',
                  s.kind, bosun.quote_short(s.key), s.state, s.current_step, s.id)
    FROM bosun.sagas AS s
    WHERE s.state IN ('running', 'compensating')
      AND NOT EXISTS (SELECT 1 FROM bosun.jobs AS j
                      WHERE j.unique_key = ANY(bosun.saga_job_keys(s))
                        AND j.state IN ('scheduled', 'available', 'running', 'retryable'));

    -- A finished saga's ledger is finished too.
    RETURN QUERY
    SELECT 'finished_saga_has_an_unfinished_step', 'saga ' || s.id,
           format('saga is %s but step %s (%s) is %s', s.state, st.idx, st.name, st.state)
    FROM bosun.sagas AS s
    JOIN bosun.saga_steps AS st ON st.saga_id = s.id
    WHERE (s.state = 'succeeded' AND st.state <> 'succeeded')
       OR (s.state = 'compensated' AND st.state IN ('running', 'undoing', 'succeeded', 'undo_failed'));

    -- A stuck saga waits on an undo that gave up.
    RETURN QUERY
    SELECT 'stuck_saga_has_no_failed_undo', 'saga ' || s.id,
           'saga is stuck but no step of its ledger is undo_failed'
    FROM bosun.sagas AS s
    WHERE s.state = 'stuck'
      AND NOT EXISTS (SELECT 1 FROM bosun.saga_steps AS st
                      WHERE st.saga_id = s.id AND st.state = 'undo_failed');

    -- A dead worker's jobs are rescued within its lease and a maintenance tick.
    RETURN QUERY
    SELECT 'running_job_outlived_its_worker', 'job ' || j.id,
           format('running since %s (attempt %s) under worker %s, %s', j.attempted_at, j.attempt,
                  coalesce(j.attempted_by, '(none)'),
                  CASE WHEN w.id IS NULL THEN 'which is not registered'
                       ELSE format('whose lease ended at %s', w.expires_at) END)
    FROM bosun.jobs AS j
    LEFT JOIN bosun.workers AS w ON w.id = j.attempted_by
    WHERE j.state = 'running'
      AND j.attempted_at < now() - grace
      AND (w.id IS NULL OR w.expires_at < now() - grace);

    -- Work on an expunged target is reaped.
    RETURN QUERY
    SELECT 'job_of_expunged_target_can_run', 'job ' || j.id,
           format('job is %s on target %s, expunged at %s', j.state, bosun.quote_short(t.name),
                  t.expunged_at)
    FROM bosun.jobs AS j
    JOIN bosun.targets AS t ON t.name = j.target AND t.state = 'expunged'
    WHERE j.state IN ('scheduled', 'available', 'running', 'retryable')
      AND t.expunged_at < now() - grace;

    -- A job that may still run reads back: it breaks no rule of the table's checks.
    RETURN QUERY
    SELECT 'unfinished_job_breaks_a_rule', 'job ' || j.id,
           format('job is %s and breaks %s', j.state,
                  bosun.job_row_problem(j.kind, j.queue, j.args, j.meta, j.errors, j.tags))
    FROM bosun.jobs AS j
    WHERE j.state IN ('scheduled', 'available', 'running', 'retryable')
      AND bosun.job_row_problem(j.kind, j.queue, j.args, j.meta, j.errors, j.tags) IS NOT NULL;

    -- A schedule's slots only move forward: the last one fired is before the next.
    RETURN QUERY
    SELECT 'periodic_last_slot_is_ahead_of_its_next', 'periodic ' || p.name,
           format('last slot %s is not before the next %s', p.last_slot, p.next_at)
    FROM bosun.periodic_jobs AS p
    WHERE p.last_slot IS NOT NULL AND p.next_at IS NOT NULL AND p.last_slot >= p.next_at;

    -- Counters count at least the rows they counted (rows are pruned, counts are not).
    RETURN QUERY
    SELECT 'saga_count_is_below_its_rows', format('sagas %s %s', r.kind, r.state),
           format('%s sagas of kind %s are %s, but bosun.saga_outcomes counts %s', r.n, r.kind,
                  r.state, coalesce(c.total, 0))
    FROM (SELECT s.kind, s.state::text AS state, count(*) AS n FROM bosun.sagas AS s
          WHERE s.state IN ('succeeded', 'compensated', 'stuck')
          GROUP BY s.kind, s.state) AS r
    LEFT JOIN (SELECT o.kind, o.outcome, sum(o.total) AS total FROM bosun.saga_outcomes AS o
               GROUP BY o.kind, o.outcome) AS c ON c.kind = r.kind AND c.outcome = r.state
    WHERE r.n > coalesce(c.total, 0);

    RETURN QUERY
    SELECT 'reaped_count_is_below_its_rows', 'target ' || t.name,
           format('%s jobs of target %s were reaped, but it counts %s', r.n,
                  bosun.quote_short(t.name), t.reaped_jobs)
    FROM (SELECT j.target, count(*) AS n FROM bosun.jobs AS j
          WHERE j.target IS NOT NULL AND j.state = 'failed'
            AND j.errors @> '[{"kind": "target_expunged"}]'
          GROUP BY j.target) AS r
    JOIN bosun.targets AS t ON t.name = r.target
    WHERE r.n > t.reaped_jobs;
END;
$function$;
