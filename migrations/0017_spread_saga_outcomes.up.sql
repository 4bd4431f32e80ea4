-- Bosun 0017: the count of finished sagas is spread over sixteen rows per kind and outcome.
--
-- Every saga that finished added one to the same row of bosun.saga_outcomes, and a row being
-- updated waits for the transaction that updated it last to commit: with four workers, the
-- transitions that finish sagas waited on each other, most of the waits left during a run
-- of sagas. Each server process now counts on a row of its own (its process id modulo 16),
-- and readers add the rows up.
ALTER TABLE bosun.saga_outcomes ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE bosun.saga_outcomes DROP CONSTRAINT saga_outcomes_pkey;
ALTER TABLE bosun.saga_outcomes ADD PRIMARY KEY (kind, outcome, shard);

CREATE OR REPLACE FUNCTION bosun.saga_count_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bosun.saga_outcomes AS o (kind, outcome, shard, total)
    VALUES (NEW.kind, NEW.state::text, pg_backend_pid() % 16, 1)
    ON CONFLICT (kind, outcome, shard) DO UPDATE SET total = o.total + 1;
    RETURN NULL;
END;
$$;
