-- Make target $1 known, of kind $2 when given; see bosun.register_target.
SELECT * FROM bosun.register_target($1, $2)
