-- Start saga kind $1 under key $2 with inputs $3, acting on target $4 when given; see
-- bosun.start_saga.
SELECT bosun.start_saga($1, $2, $3, $4)
