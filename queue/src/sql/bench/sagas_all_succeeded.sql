-- Whether every saga succeeded.
SELECT NOT EXISTS (SELECT 1 FROM bosun.sagas WHERE state <> 'succeeded')
