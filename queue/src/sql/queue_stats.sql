SELECT queue, paused, scheduled, available, running, retryable, completed, failed, cancelled,
       extract(epoch FROM oldest_available_age)::float8 AS oldest_available_secs
FROM bosun.queue_stats
ORDER BY queue
