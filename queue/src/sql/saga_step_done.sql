-- The runner, holding attempt $2 of job $1: step $4 of saga $3 (of $5 steps) succeeded with
-- output $6; false when fenced out.
-- The transaction inserts the saga's next job without a wake-up notification (see
-- bosun-queue's saga::runner for why).
WITH quiet AS MATERIALIZED (SELECT set_config('bosun.notify_inserts', 'off', true))
SELECT bosun.saga_step_done($1, $2, $3, $4, $5, $6) FROM quiet
