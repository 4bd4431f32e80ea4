-- Expunge target $1 for good, for reason $2; see bosun.expunge_target.
SELECT * FROM bosun.expunge_target($1, $2)
