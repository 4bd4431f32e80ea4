-- A worker shutting down removes its registration.
DELETE FROM bosun.workers WHERE id = $1
