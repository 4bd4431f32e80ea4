-- Stop every worker from claiming queue $1; see bosun.pause_queue.
SELECT * FROM bosun.pause_queue($1)
