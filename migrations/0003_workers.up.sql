-- Bosun 0003: live worker processes and their leases, and leader election for maintenance.
--
-- A worker process registers itself and renews `expires_at` (its lease) by heartbeating on the
-- database clock. A job is held by the worker named in `attempted_by`; once that worker's
-- lease has expired, the rescuer gives the job back. Times are the database's, so a worker
-- whose own clock is wrong neither expires early nor lives forever.

CREATE TABLE bosun.workers (
    id            text        NOT NULL PRIMARY KEY,
    host          text        NOT NULL,
    pid           integer     NOT NULL,
    queues        text[]      NOT NULL DEFAULT '{}',
    kinds         text[]      NOT NULL DEFAULT '{}',
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    CONSTRAINT worker_id_must_be_1_to_255_characters CHECK (length(id) BETWEEN 1 AND 255),
    CONSTRAINT lease_must_end_after_heartbeat CHECK (expires_at > heartbeat_at)
);

-- One row per leadership (today only 'maintenance'): who holds it and until when. A leader
-- renews before `expires_at`; anyone may take over after it.
CREATE TABLE bosun.leaders (
    name        text        NOT NULL PRIMARY KEY,
    worker_id   text        NOT NULL,
    elected_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
