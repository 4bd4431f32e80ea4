-- 0 when Bosun was never migrated here (no bookkeeping table), else NULL: then
-- migration_current.sql says the version.
SELECT CASE WHEN to_regclass('bosun.schema_migrations') IS NULL THEN 0::bigint END
