-- How a transaction begins behind a transaction-mode pooler: deallocate the statements sqlx
-- left on the server connection, and only those (see bosun-queue's pooler module for why).
BEGIN; DO $$
DECLARE
    statement text;
BEGIN
    FOR statement IN
        SELECT p.name FROM pg_prepared_statements AS p WHERE p.name LIKE 'sqlx\_s\_%'
    LOOP
        EXECUTE format('DEALLOCATE %I', statement);
    END LOOP;
END $$
