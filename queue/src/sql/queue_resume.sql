-- Let workers claim queue $1 again; see bosun.resume_queue.
SELECT * FROM bosun.resume_queue($1)
