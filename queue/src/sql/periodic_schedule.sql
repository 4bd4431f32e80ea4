-- Create or replace periodic job $1 on cron $2, enqueueing kind $3 with args $4 on queue $5,
-- priority $6, max attempts $7 and target $8, catching up as $9 and $10 say, in time zone $11;
-- see bosun.schedule_periodic.
SELECT * FROM bosun.schedule_periodic($1, $2, $3, $4, coalesce($5, 'default'),
                                      coalesce($6, 0), coalesce($7, 20), $8,
                                      catch_up => $9, catch_up_max => $10,
                                      timezone => $11)
