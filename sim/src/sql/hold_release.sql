-- Let step $2 of saga $1, held at point $3, go on.
UPDATE bosun_example.holds SET released = true
WHERE saga_key = $1 AND step = $2 AND point = $3
