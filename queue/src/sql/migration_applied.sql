-- The migrations applied, oldest first, with the checksums of their texts.
SELECT version, checksum FROM bosun.schema_migrations ORDER BY version
