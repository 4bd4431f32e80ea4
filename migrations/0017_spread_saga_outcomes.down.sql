-- Bosun 0017 down: one row per kind and outcome again, holding the sum of its shards.
CREATE TEMPORARY TABLE saga_outcomes_summed ON COMMIT DROP AS
    SELECT kind, outcome, sum(total)::bigint AS total
    FROM bosun.saga_outcomes GROUP BY kind, outcome;
DELETE FROM bosun.saga_outcomes;
ALTER TABLE bosun.saga_outcomes DROP CONSTRAINT saga_outcomes_pkey;
ALTER TABLE bosun.saga_outcomes DROP COLUMN shard;
ALTER TABLE bosun.saga_outcomes ADD PRIMARY KEY (kind, outcome);
INSERT INTO bosun.saga_outcomes (kind, outcome, total)
    SELECT kind, outcome, total FROM saga_outcomes_summed;

CREATE OR REPLACE FUNCTION bosun.saga_count_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bosun.saga_outcomes AS o (kind, outcome, total)
    VALUES (NEW.kind, NEW.state::text, 1)
    ON CONFLICT (kind, outcome) DO UPDATE SET total = o.total + 1;
    RETURN NULL;
END;
$$;
