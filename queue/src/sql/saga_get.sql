-- One saga by id.
SELECT * FROM bosun.sagas WHERE id = $1
