-- Bosun 0024 down.
DROP FUNCTION bosun.check_invariants(interval);
