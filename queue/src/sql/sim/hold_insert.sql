-- Step $2 of saga $1 is held at point $3 on attempt $4 by process $5 (the first hold there
-- counts).
INSERT INTO bosun_example.holds (saga_key, step, point, attempt, pid)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
