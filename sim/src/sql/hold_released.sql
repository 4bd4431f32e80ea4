-- Whether the hold of step $2 of saga $1 at point $3 was released.
SELECT released FROM bosun_example.holds
WHERE saga_key = $1 AND step = $2 AND point = $3
