-- Every violated invariant, not counting states younger than $1 seconds; see
-- bosun.check_invariants.
SELECT invariant, subject, detail
FROM bosun.check_invariants(make_interval(secs => $1))
