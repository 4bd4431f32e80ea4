-- The jobs in state $1.
SELECT count(*) FROM bosun.jobs WHERE state = $1
