-- No job left to run: two probes, each through the partial index of its states.
SELECT NOT EXISTS (SELECT 1 FROM bosun.jobs
                   WHERE state IN ('available', 'scheduled', 'retryable'))
   AND NOT EXISTS (SELECT 1 FROM bosun.jobs WHERE state = 'running')
