-- One target with its counts.
SELECT * FROM bosun.target_stats WHERE name = $1
