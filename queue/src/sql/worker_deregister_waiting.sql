-- A worker shutting down removes its marks as waiting for jobs, so that inserts stop
-- notifying for it.
DELETE FROM bosun.waiting_workers WHERE worker = $1
