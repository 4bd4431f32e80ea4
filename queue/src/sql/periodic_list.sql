-- Every periodic job, by name.
SELECT * FROM bosun.periodic_jobs ORDER BY name
