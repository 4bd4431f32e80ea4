//! `bosun.check_invariants()` and `bosun doctor`: each rule is broken by hand once, and the
//! listing names it with the row concerned; a database Bosun alone wrote lists nothing.

use std::process::Command;

use bosun_tests::{bosun_bin, saga_sql::start, TestDb};
use serde_json::Value;
use sqlx::PgConnection;

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn violations(conn: &mut PgConnection) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT invariant, subject FROM bosun.check_invariants(interval '0')
         ORDER BY invariant, subject",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

fn doctor(db: &TestDb) -> (Option<i32>, Value) {
    let output = Command::new(bosun_bin())
        .args(["doctor", "--grace", "0s", "--json"])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("running bosun doctor");
    let listed = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "bosun doctor printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), listed)
}

#[tokio::test]
async fn each_broken_rule_is_listed_with_its_row() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    // A healthy database: a waiting job, a running saga with its job.
    exec(&mut conn, "SELECT bosun.enqueue('k')").await;
    let healthy = start(&mut conn, "healthy").await;
    assert_eq!(violations(&mut conn).await, []);
    assert_eq!(doctor(&db), (Some(0), Value::Array(Vec::new())));

    // An unfinished saga whose job was deleted.
    let orphan = start(&mut conn, "orphan").await;
    exec(
        &mut conn,
        &format!("DELETE FROM bosun.jobs WHERE unique_key = 'saga:{orphan}:0:do'"),
    )
    .await;
    // A finished saga with a step left running.
    exec(
        &mut conn,
        &format!(
            "INSERT INTO bosun.saga_steps (saga_id, idx, name, state) VALUES ('{healthy}', 0, 'a', 'running');
             UPDATE bosun.sagas SET state = 'succeeded', finished_at = now() WHERE id = '{healthy}'"
        ),
    )
    .await;
    // A running job whose worker is long gone.
    exec(
        &mut conn,
        "UPDATE bosun.jobs SET state = 'running', attempt = 1, attempted_by = 'ghost',
                attempted_at = now() - interval '1 hour' WHERE kind = 'k'",
    )
    .await;
    // A waiting job on an expunged target (set by hand, past the reaper).
    exec(&mut conn, "SELECT bosun.enqueue('t', target => 'gone')").await;
    exec(&mut conn, "SELECT bosun.expunge_target('gone')").await;
    // A schedule whose last slot is ahead of its next.
    exec(
        &mut conn,
        "SELECT bosun.schedule_periodic('p1', '* * * * *', 'k');
         UPDATE bosun.periodic_jobs SET last_slot = now(), next_at = now() - interval '1 minute'",
    )
    .await;
    // A counter below its rows.
    exec(&mut conn, "UPDATE bosun.targets SET reaped_jobs = 0").await;
    exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, target, state, attempt, finalized_at, errors)
         VALUES ('t', 'gone2', 'failed', 1, now(), '[{\"kind\": \"target_expunged\"}]')",
    )
    .await;

    let job_k: i64 = sqlx::query_scalar("SELECT id FROM bosun.jobs WHERE kind = 'k'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let job_t: i64 = sqlx::query_scalar("SELECT id FROM bosun.jobs WHERE target = 'gone'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let expected = [
        (
            "finished_saga_has_an_unfinished_step",
            format!("saga {healthy}"),
        ),
        ("job_of_expunged_target_can_run", format!("job {job_t}")),
        (
            "periodic_last_slot_is_ahead_of_its_next",
            "periodic p1".into(),
        ),
        ("reaped_count_is_below_its_rows", "target gone2".into()),
        ("running_job_outlived_its_worker", format!("job {job_k}")),
        ("unfinished_saga_has_no_live_job", format!("saga {orphan}")),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(rule, subject)| (rule.to_string(), subject))
        .collect();
    assert_eq!(violations(&mut conn).await, expected);
    let (status, listed) = doctor(&db);
    assert_eq!(status, Some(1), "doctor exits 1 when anything is listed");
    assert_eq!(listed.as_array().unwrap().len(), expected.len());
    let detail = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["invariant"] == "unfinished_saga_has_no_live_job")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains(&format!("bosun.retry_saga('{orphan}')")),
        "{detail}"
    );

    // Within the grace, the dead worker's job and the expunged target's wait for maintenance.
    let lenient: Vec<String> = sqlx::query_scalar(
        "SELECT invariant FROM bosun.check_invariants(interval '1 day') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!lenient.contains(&"running_job_outlived_its_worker".to_string()));
    assert!(!lenient.contains(&"job_of_expunged_target_can_run".to_string()));

    // The repair the listing names works.
    exec(&mut conn, &format!("SELECT bosun.retry_saga('{orphan}')")).await;
    assert!(!violations(&mut conn)
        .await
        .iter()
        .any(|(rule, _)| rule == "unfinished_saga_has_no_live_job"));

    let error = sqlx::query("SELECT * FROM bosun.check_invariants(NULL)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        error.as_database_error().unwrap().code().as_deref(),
        Some("22004")
    );
}
