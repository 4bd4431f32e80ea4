-- For the leader: record periodic job $1's next slot $2, or the error $3 that keeps it from
-- having one; see bosun.periodic_note.
SELECT bosun.periodic_note($1, $2, $3)
