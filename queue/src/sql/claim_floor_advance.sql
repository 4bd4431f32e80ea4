-- Raise the claim floor of lane ($1, $2); whether it moved, NULL if the lane was busy.
SELECT bosun.advance_claim_floor($1, $2)
