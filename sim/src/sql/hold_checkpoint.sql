-- Step $2 of saga $1 reaches point $3 on attempt $4 in process $5: when a test asked for a
-- hold there, record that the process holds it (the first hold there counts). Whether a hold
-- was asked for. One lookup by the requests' primary key, so a step nobody asked to hold
-- pays little.
WITH asked AS (
    SELECT FROM bosun_example.hold_requests
    WHERE saga_key = $1 AND step = $2 AND point = $3 AND attempt = $4
), held AS (
    INSERT INTO bosun_example.holds (saga_key, step, point, attempt, pid)
    SELECT $1, $2, $3, $4::integer, $5::integer FROM asked
    ON CONFLICT DO NOTHING
)
SELECT EXISTS (SELECT FROM asked)
