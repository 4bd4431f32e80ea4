-- Ask for step $2 of saga $1 to be held at point $3 on attempt $4 (asking twice is fine).
INSERT INTO bosun_example.hold_requests (saga_key, step, point, attempt)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING
