-- The simulated cloud's schema, with the crash tests' hold requests and holds, made on first
-- use; not part of Bosun's own (remove it with DROP SCHEMA bosun_example CASCADE). Run as one
-- multi-statement query, so as one transaction; the lock makes concurrent
-- CREATE ... IF NOT EXISTS take turns instead of colliding.
SELECT pg_advisory_xact_lock(hashtext('bosun_example'));
CREATE SCHEMA IF NOT EXISTS bosun_example;
CREATE TABLE IF NOT EXISTS bosun_example.resources (
    name        text PRIMARY KEY,
    kind        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    listed_from timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS bosun_example.calls (
    id   bigserial PRIMARY KEY,
    name text NOT NULL,
    call text NOT NULL,
    pid  integer NOT NULL,
    at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Where tests asked for a step to be held; the steps' checkpoints look here.
CREATE TABLE IF NOT EXISTS bosun_example.hold_requests (
    saga_key text NOT NULL,
    step     text NOT NULL,
    point    text NOT NULL,
    attempt  integer NOT NULL,
    PRIMARY KEY (saga_key, step, point, attempt)
);
-- Where steps are held now or were held, by which process, and whether they went on.
CREATE TABLE IF NOT EXISTS bosun_example.holds (
    saga_key   text NOT NULL,
    step       text NOT NULL,
    point      text NOT NULL,
    attempt    integer NOT NULL,
    pid        integer NOT NULL,
    held_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    released   boolean NOT NULL DEFAULT false,
    resumed_at timestamptz,
    PRIMARY KEY (saga_key, step, point)
);
