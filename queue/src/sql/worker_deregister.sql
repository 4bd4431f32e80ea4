-- Forget worker $1 at a graceful shutdown: the worker protocol's bosun.worker_deregister.
SELECT bosun.worker_deregister($1)
