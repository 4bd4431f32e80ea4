-- The Rust client's enqueue: one round trip for any number of jobs, through the same
-- validated insert path as bosun.enqueue and bosun.enqueue_many. Results come in input order;
-- $12 says what a taken unique key does (see bosun.enqueue_arrays).
SELECT id, inserted
FROM bosun.enqueue_arrays($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'enqueue', $11, $12)
