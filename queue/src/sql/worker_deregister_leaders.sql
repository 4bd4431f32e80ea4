-- A worker shutting down gives up every leadership it holds.
DELETE FROM bosun.leaders WHERE worker_id = $1
