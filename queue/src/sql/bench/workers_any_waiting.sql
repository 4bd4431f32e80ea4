-- Whether a worker is marked as waiting for jobs (it has claimed all there was).
SELECT EXISTS (SELECT 1 FROM bosun.waiting_workers)
