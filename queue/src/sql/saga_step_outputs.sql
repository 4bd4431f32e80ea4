-- The outputs of saga $1's succeeded steps, by step name, in step order.
SELECT name, output FROM bosun.saga_steps
WHERE saga_id = $1 AND output IS NOT NULL ORDER BY idx
