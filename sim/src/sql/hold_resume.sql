-- The step held ($2 of saga $1 at point $3) goes on after its release.
UPDATE bosun_example.holds SET resumed_at = clock_timestamp()
WHERE saga_key = $1 AND step = $2 AND point = $3
