-- The database's clock, which every schedule and lease is read against.
SELECT clock_timestamp()
