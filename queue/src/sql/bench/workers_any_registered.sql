-- Whether a worker has registered.
SELECT EXISTS (SELECT 1 FROM bosun.workers)
