-- Runs under the migration advisory lock, before any migration: the schema and the table
-- that records which migrations are applied (with a checksum of each file's text).
CREATE SCHEMA IF NOT EXISTS bosun;
CREATE TABLE IF NOT EXISTS bosun.schema_migrations (
    version     bigint      PRIMARY KEY,
    description text        NOT NULL,
    checksum    bytea       NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
