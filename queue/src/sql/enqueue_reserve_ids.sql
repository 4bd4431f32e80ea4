-- Ids for a COPY batch, taken up front so they can be returned in input order.
SELECT nextval('bosun.jobs_id_seq') FROM generate_series(1, $1)
