-- Forget the waiting marks of workers no longer registered: a dead worker's mark would only
-- make inserts notify for nobody.
DELETE FROM bosun.waiting_workers AS m
WHERE NOT EXISTS (SELECT 1 FROM bosun.workers AS w WHERE w.id = m.worker)
