-- Worker processes whose lease has not run out.
SELECT count(*) FROM bosun.workers WHERE expires_at > now()
