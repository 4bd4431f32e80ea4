-- One batch of the reaper: fail up to $1 unfinished jobs on expunged targets and move their
-- sagas on; see bosun.reap_expunged.
SELECT * FROM bosun.reap_expunged($1)
