-- For the leader: record that periodic job $1 enqueues nothing for the slots from $2 to $3;
-- see bosun.periodic_skip.
SELECT bosun.periodic_skip($1, $2, $3)
