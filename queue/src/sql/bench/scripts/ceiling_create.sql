-- W0: a minimal job table of the bench's own, the yardstick Bosun's claim is measured
-- against (dropped and made again for every run).
DROP TABLE IF EXISTS bench_ceiling;
CREATE TABLE bench_ceiling (
    id bigserial PRIMARY KEY,
    state smallint NOT NULL DEFAULT 0,
    args jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX bench_ceiling_ready ON bench_ceiling (id) WHERE state = 0;
