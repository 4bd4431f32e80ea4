-- A saga's ledger, in step order.
SELECT * FROM bosun.saga_steps WHERE saga_id = $1 ORDER BY idx
