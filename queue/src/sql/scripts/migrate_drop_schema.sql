-- After reverting to version 0: drop the bookkeeping and the schema, but keep the schema if
-- it holds objects Bosun did not create (DROP SCHEMA without CASCADE refuses then).
DROP TABLE IF EXISTS bosun.schema_migrations;
DO $$
BEGIN
    DROP SCHEMA IF EXISTS bosun;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'schema bosun kept: it holds objects that Bosun did not create';
END;
$$;
