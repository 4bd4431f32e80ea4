-- One job by id.
SELECT * FROM bosun.jobs WHERE id = $1
