-- Per queue, how long the oldest job that could run now has waited, in seconds.
SELECT * FROM bosun.sample_oldest_available()
