-- Remove periodic job $1; the jobs it enqueued stay.
SELECT * FROM bosun.unschedule_periodic($1)
