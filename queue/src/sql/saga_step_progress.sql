-- Report progress $3 (a fraction) with message $4 of step $2 of saga $1.
SELECT bosun.saga_step_progress($1, $2, $3, $4)
