-- Every target with its live and reaped work, in service first, then by name.
SELECT * FROM bosun.target_stats ORDER BY state, name
