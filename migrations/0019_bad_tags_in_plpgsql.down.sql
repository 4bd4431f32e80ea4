-- Bosun 0019 down: bosun.bad_tags in SQL again.
CREATE OR REPLACE FUNCTION bosun.bad_tags(tags text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(tags) AS t(tag)
                   WHERE t.tag IS NULL OR length(t.tag) NOT BETWEEN 1 AND 255)
$$;
