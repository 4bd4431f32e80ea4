-- The lanes (queue, priority) that have a claim floor.
SELECT f.queue, f.priority FROM bosun.claim_floors AS f ORDER BY f.queue, f.priority
