-- Bosun 0019: bosun.bad_tags in PL/pgSQL, so that a statement that writes jobs no longer
-- parses it.
--
-- The jobs_check trigger's condition calls bosun.bad_tags only for a row with tags, but
-- PostgreSQL prepares a trigger's condition for every statement, and preparing it tries to
-- inline each SQL function it names: it parsed and analysed this function's body each time,
-- only to find that a subquery keeps it from being inlined. Functions in other languages are
-- not looked into. On a single-row INSERT into bosun.jobs this was a sixth of the server's
-- time: 155 - 160 µs of CPU against 175 - 220 µs, with commits not waiting for the disk.
CREATE OR REPLACE FUNCTION bosun.bad_tags(tags text[]) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM unnest(tags) AS t(tag)
                   WHERE t.tag IS NULL OR length(t.tag) NOT BETWEEN 1 AND 255);
END;
$$;
