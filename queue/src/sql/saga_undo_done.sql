-- The runner, holding attempt $2 of job $1: the undo of step $4 of saga $3 succeeded. False
-- when fenced out.
-- The transaction inserts the saga's next job without a wake-up notification (see
-- bosun-queue's saga::runner for why).
WITH quiet AS MATERIALIZED (SELECT set_config('bosun.notify_inserts', 'off', true))
SELECT bosun.saga_undo_done($1, $2, $3, $4) FROM quiet
