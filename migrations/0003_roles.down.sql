-- Bosun 0003 down: functions back to their callers' rights and executable by PUBLIC, the
-- grants of the four roles revoked. The roles stay: they belong to the cluster, and other
-- databases may use them.
DO $migration$
DECLARE
    prefix text := coalesce(current_setting('bosun.role_prefix', true), '');
    role_name text;
    f regprocedure;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[prefix || 'bosun_enqueuer', prefix || 'bosun_worker',
                                     prefix || 'bosun_operator', prefix || 'bosun_reader'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA bosun FROM %I', role_name);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA bosun FROM %I', role_name);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA bosun FROM %I', role_name);
            EXECUTE format('REVOKE ALL ON SCHEMA bosun FROM %I', role_name);
        END IF;
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'bosun'::regnamespace AND p.prosecdef
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER RESET search_path', f);
    END LOOP;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bosun TO PUBLIC;
END;
$migration$;
DROP FUNCTION bosun.job_status(bigint);
