-- Record that migration $1 is reverted.
DELETE FROM bosun.schema_migrations WHERE version = $1
