-- The resources whose name starts with $1 that listings show by now, sorted.
SELECT name FROM bosun_example.resources
WHERE starts_with(name, $1) AND listed_from <= clock_timestamp()
ORDER BY name
