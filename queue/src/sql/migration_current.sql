-- The newest migration applied; NULL when none is.
SELECT max(version) FROM bosun.schema_migrations
