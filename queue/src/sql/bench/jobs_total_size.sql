-- W4: bytes of bosun.jobs with its indexes and TOAST.
SELECT pg_total_relation_size('bosun.jobs')
