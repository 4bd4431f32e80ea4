-- Register or renew worker $1 (host $2, pid $3, queues $4, kinds $5) for $6 seconds: the
-- worker protocol's bosun.worker_heartbeat. True if it was not registered.
SELECT bosun.worker_heartbeat($1, $4, $5, $6, $2, $3)
