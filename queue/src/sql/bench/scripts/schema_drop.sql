-- Before a run: drop the scratch database's Bosun schema whole (the database is the bench's
-- own), rather than migrating down, which would rebuild old indexes on the last run's rows.
DROP SCHEMA IF EXISTS bosun CASCADE
