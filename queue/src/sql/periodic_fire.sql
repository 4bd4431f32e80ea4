-- For the leader: enqueue the job of periodic job $1 for slot $2 and remember $3 as the next;
-- see bosun.periodic_fire.
SELECT bosun.periodic_fire($1, $2, $3)
