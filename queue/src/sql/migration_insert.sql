-- Record that migration $1 ($2, whose text has checksum $3) is applied.
INSERT INTO bosun.schema_migrations (version, description, checksum) VALUES ($1, $2, $3)
