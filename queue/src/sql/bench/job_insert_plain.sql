-- W1p: W1b's yardstick, the plainest single-row insert of a job of kind $1 with args $2.
INSERT INTO bosun.jobs (kind, args) VALUES ($1, $2)
