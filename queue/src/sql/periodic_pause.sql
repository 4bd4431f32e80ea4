-- Stop periodic job $1 from enqueueing; see bosun.pause_periodic.
SELECT * FROM bosun.pause_periodic($1)
