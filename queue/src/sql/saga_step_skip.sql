-- The runner, holding attempt $2 of job $1: saga $3 was cancelled before step $4 ran. False
-- when fenced out.
-- The transaction inserts the saga's next job without a wake-up notification (see
-- bosun-queue's saga::runner for why).
WITH quiet AS MATERIALIZED (SELECT set_config('bosun.notify_inserts', 'off', true))
SELECT bosun.saga_step_skip($1, $2, $3, $4) FROM quiet
