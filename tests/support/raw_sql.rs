//! SQL run from a raw connection, as a psql user would type it, for the tests of the SQL API:
//! each helper panics with the statement and the error, so a failing test says what it ran.

use bosun_queue::Job;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// The job with `id`, read back from the table.
pub async fn job_row(conn: &mut PgConnection, id: i64) -> Job {
    sqlx::query_as("SELECT * FROM bosun.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("reading job {id}: {e}"))
}

/// Run SQL that returns one bigint (a job id).
pub async fn sql_id(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Run SQL for its effect.
pub async fn sql_exec(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// How many rows `bosun.jobs` holds.
pub async fn job_count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The database's wall clock (not the transaction's `now()`).
pub async fn db_clock(conn: &mut PgConnection) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(conn)
        .await
        .unwrap()
}
