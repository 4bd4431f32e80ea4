-- Everything schema bosun holds, one row per object with its definition as the catalog has
-- it, so that two databases can be compared: one the migrations made, one made from
-- migrations/schema.sql. bosun.schema_migrations, the migrations' own bookkeeping, is left out.
WITH tables AS (
    SELECT c.oid FROM pg_class AS c
    WHERE c.relnamespace = 'bosun'::regnamespace AND c.relname <> 'schema_migrations'
)
SELECT kind, name, definition FROM (
    SELECT 'type' AS kind, t.typname::text AS name,
           (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
            FROM pg_enum AS e WHERE e.enumtypid = t.oid) AS definition
    FROM pg_type AS t
    WHERE t.typnamespace = 'bosun'::regnamespace AND t.typtype = 'e'
    UNION ALL
    SELECT 'relation ' || c.relkind::text, c.relname::text,
           (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                              || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                              || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
                              ', ' ORDER BY a.attnum)
            FROM pg_attribute AS a
            LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
           || coalesce(' with ' || array_to_string(c.reloptions, ', '), '')
           || coalesce(' acl ' || c.relacl::text, '')
           || coalesce(' comment ' || obj_description(c.oid, 'pg_class'), '')
    FROM pg_class AS c JOIN tables USING (oid)
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
    UNION ALL
    SELECT 'view', c.relname::text, pg_get_viewdef(c.oid)
    FROM pg_class AS c JOIN tables USING (oid) WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT 'constraint', co.conrelid::regclass || '.' || co.conname, pg_get_constraintdef(co.oid)
    FROM pg_constraint AS co JOIN tables ON tables.oid = co.conrelid
    UNION ALL
    SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index AS i JOIN tables ON tables.oid = i.indrelid
    UNION ALL
    SELECT 'trigger', tg.tgrelid::regclass || '.' || tg.tgname, pg_get_triggerdef(tg.oid)
    FROM pg_trigger AS tg JOIN tables ON tables.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text,
           pg_get_functiondef(p.oid)
           || coalesce(' acl ' || p.proacl::text, '')
           || coalesce(' comment ' || obj_description(p.oid, 'pg_proc'), '')
    FROM pg_proc AS p WHERE p.pronamespace = 'bosun'::regnamespace
) AS objects
ORDER BY kind, name
