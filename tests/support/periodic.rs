//! Schedules made and dated by hand for the periodic tests (`periodic_*.rs`), so that no test
//! waits for a slot: the scheduler finds them due at once.

use bosun_queue::{
    periodic::{periodic_list, periodic_schedule, PeriodicJob},
    NewJob,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use crate::TestDb;

/// Schedule `name` on `cron` to enqueue an `echo` job on the `periodic` queue.
pub async fn schedule(db: &TestDb, name: &str, cron: &str) -> PeriodicJob {
    periodic_schedule(
        &db.pool,
        name,
        cron,
        &NewJob::new("echo", json!({"from": name})).queue("periodic"),
    )
    .await
    .unwrap()
}

/// Pretend the schedule was made, or last fired, long ago.
pub async fn backdate(pool: &PgPool, name: &str, created: &str, last_slot: Option<&str>) {
    sqlx::query(
        "UPDATE bosun.periodic_jobs
         SET created_at = now() - $2::interval, last_slot = now() - $3::interval
         WHERE name = $1",
    )
    .bind(name)
    .bind(created)
    .bind(last_slot)
    .execute(pool)
    .await
    .unwrap();
}

/// The unique key and queue of every job schedule `name` enqueued, oldest first.
pub async fn jobs_of(pool: &PgPool, name: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT unique_key, queue FROM bosun.jobs WHERE meta->>'periodic' = $1 ORDER BY id",
    )
    .bind(name)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The unique key of the job schedule `name` enqueues for `slot`.
pub fn slot_key(name: &str, slot: DateTime<Utc>) -> String {
    format!("periodic:{name}:{}", slot.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// The row of schedule `name`.
pub async fn row(pool: &PgPool, name: &str) -> PeriodicJob {
    periodic_list(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.name == name)
        .unwrap()
}
