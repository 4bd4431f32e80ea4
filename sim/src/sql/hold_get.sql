-- The process that holds step $2 of saga $1 at point $3, and whether it went on.
SELECT pid, resumed_at IS NOT NULL FROM bosun_example.holds
WHERE saga_key = $1 AND step = $2 AND point = $3
