-- Let periodic job $1 enqueue again; see bosun.resume_periodic.
SELECT * FROM bosun.resume_periodic($1)
