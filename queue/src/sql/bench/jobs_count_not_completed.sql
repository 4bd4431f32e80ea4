-- After a drain: the jobs that did not complete.
SELECT count(*) FROM bosun.jobs WHERE state <> 'completed'
