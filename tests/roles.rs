//! Least privilege: a login role that is a member of one of Bosun's four roles can do its
//! client's part and nothing else. Each test logs in as a fresh member and proves that every
//! allowed action works and every other one fails with SQLSTATE 42501 (insufficient
//! privilege), changing nothing: reading other applications' args, forging a finished job,
//! expunging a target, calling an internal or an operator's function, changing the schema.

use std::time::Duration;

use bosun_queue::{Client, JobState, NewJob};
use bosun_tests::{snapshot, wait_state, RunningPool, TestDb};
use bosun_workers::{JobContext, JobResult, Worker, WorkerPool};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

/// A login role for this test that is a member of `role` (or of none), and its URL.
async fn member_of(db: &TestDb, role: Option<&str>) -> String {
    let mut admin = db.raw().await;
    let login = format!("app_{}_{}", db.name, role.unwrap_or("none"));
    sqlx::query(&format!("CREATE ROLE \"{login}\" LOGIN"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Some(role) = role {
        sqlx::query(&format!("GRANT {role} TO \"{login}\""))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let (scheme_and_user, rest) = db.url.split_once('@').expect("a URL with a user");
    let scheme = &scheme_and_user[..scheme_and_user.find("//").unwrap() + 2];
    format!("{scheme}{login}@{rest}")
}

async fn login(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .expect("logging in as the member")
}

async fn allowed(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql} should be allowed: {e}"));
}

/// Each of `sqls` fails with 42501 and changes nothing (as the schema's owner sees it).
async fn denied(db: &TestDb, conn: &mut PgConnection, sqls: &[&str]) {
    let mut admin = db.raw().await;
    for sql in sqls {
        let before = snapshot(&mut admin).await;
        let error = sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .expect_err(&format!("{sql} should be denied"));
        let code = error.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {error}");
        assert_eq!(
            snapshot(&mut admin).await,
            before,
            "{sql} changed something"
        );
    }
}

/// What no role but the schema's owner may do.
const SCHEMA_CHANGES: &[&str] = &[
    "ALTER TABLE bosun.jobs ADD COLUMN sneaky integer",
    "DROP FUNCTION bosun.enqueue_many(jsonb, text)",
    "CREATE TABLE bosun.sneaky (id integer)",
    "CREATE OR REPLACE FUNCTION bosun.valid_kind(kind text) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
];

#[tokio::test]
async fn an_enqueuer_enqueues_and_reads_status_but_nothing_more() {
    let db = TestDb::new().await;
    sqlx::query("SELECT bosun.register_target('db-1')")
        .execute(&db.pool)
        .await
        .unwrap();
    let other: i64 =
        sqlx::query_scalar("SELECT bosun.enqueue('billing.charge', '{\"card\": \"4242\"}')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let url = member_of(&db, Some("bosun_enqueuer")).await;
    let mut conn = login(&url).await;
    allowed(
        &mut conn,
        "SELECT bosun.enqueue('email.send', '{\"to\": \"a@b.c\"}')",
    )
    .await;
    allowed(
        &mut conn,
        "SELECT bosun.enqueue_unique('email.send', unique_key => 'k1')",
    )
    .await;
    allowed(
        &mut conn,
        "SELECT bosun.enqueue_many('[{\"kind\": \"email.send\"}]')",
    )
    .await;
    allowed(&mut conn, "INSERT INTO bosun.jobs (kind, args, queue) VALUES ('email.send', '{}', 'mail') RETURNING id").await;
    allowed(
        &mut conn,
        "SELECT bosun.start_saga('example.provision', 'order-1')",
    )
    .await;
    let state: JobState = sqlx::query_scalar("SELECT state FROM bosun.job_status($1)")
        .bind(other)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(state, JobState::Available);
    // The Rust client enqueues as the member too.
    let client = Client::connect(&url).await.unwrap();
    client
        .enqueue(NewJob::new(
            "email.send",
            serde_json::json!({"to": "c@d.e"}),
        ))
        .await
        .unwrap();
    // Checks hold whatever the session sets.
    allowed(&mut conn, "SET bosun.notify_inserts = off").await;
    let bad = sqlx::query("SELECT bosun.enqueue('bad kind!')")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        bad.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("22023")
    );
    denied(
        &db,
        &mut conn,
        &[
            "SELECT args FROM bosun.jobs",
            "SELECT * FROM bosun.sagas",
            "INSERT INTO bosun.jobs (kind, state, attempt, finalized_at) VALUES ('x', 'completed', 1, now())",
            "INSERT INTO bosun.jobs (kind, state, attempt, attempted_by) VALUES ('x', 'running', 1, 'w')",
            "UPDATE bosun.jobs SET state = 'cancelled', finalized_at = now()",
            "DELETE FROM bosun.jobs",
            "SELECT bosun.expunge_target('db-1')",
            "UPDATE bosun.targets SET state = 'expunged'",
            "SELECT bosun.cancel_job(1)",
            "SELECT bosun.retry_jobs()",
            "SELECT bosun.pause_queue('default')",
            "SELECT * FROM bosun.claim_jobs('default', 1, ARRAY['email.send'], 'w')",
            "SELECT bosun.complete_job(1, 1)",
            "SELECT bosun.worker_heartbeat('w', '{}', '{}')",
            "SELECT * FROM bosun.workers",
        ],
    )
    .await;
    denied(&db, &mut conn, SCHEMA_CHANGES).await;
}

#[derive(Serialize, Deserialize)]
struct Ping {}
impl bosun_queue::JobArgs for Ping {
    const KIND: &'static str = "roles.ping";
}
struct Pinger;
impl Worker for Pinger {
    type Args = Ping;
    async fn work(&self, _ctx: JobContext, _args: Ping) -> JobResult {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_jobs_but_cannot_act_as_an_operator() {
    let db = TestDb::new().await;
    let id = db
        .client
        .enqueue(NewJob::new("roles.ping", serde_json::json!({})))
        .await
        .unwrap()
        .id;
    let url = member_of(&db, Some("bosun_worker")).await;
    // Bosun's own runtime, connected as the member, runs the job.
    let client = Client::connect(&url).await.unwrap();
    let running = RunningPool::start(
        WorkerPool::builder(client)
            .register(Pinger)
            .queue("default", 2)
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    );
    wait_state(&db.client, id, JobState::Completed).await;
    running.stop().await;
    let mut conn = login(&url).await;
    allowed(
        &mut conn,
        "SELECT bosun.worker_heartbeat('py', ARRAY['default'], ARRAY['roles.ping'])",
    )
    .await;
    allowed(
        &mut conn,
        "SELECT * FROM bosun.claim('py', ARRAY['default'], 5)",
    )
    .await;
    denied(
        &db,
        &mut conn,
        &[
            "SELECT bosun.cancel_job(1)",
            "SELECT bosun.retry_job(1)",
            "SELECT bosun.retry_jobs()",
            "SELECT bosun.reschedule_job(1, now())",
            "SELECT bosun.pause_queue('default')",
            "SELECT bosun.expunge_target('db-1')",
            "UPDATE bosun.targets SET state = 'expunged'",
            "INSERT INTO bosun.queues (name, paused) VALUES ('default', true)",
            "SELECT bosun.cancel_saga(gen_random_uuid())",
        ],
    )
    .await;
    denied(&db, &mut conn, SCHEMA_CHANGES).await;
}

#[tokio::test]
async fn an_operator_does_everything_an_operator_does_but_change_the_schema() {
    let db = TestDb::new().await;
    let id: i64 = sqlx::query_scalar("SELECT bosun.enqueue('billing.charge')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT bosun.register_target('db-1')")
        .execute(&db.pool)
        .await
        .unwrap();
    let url = member_of(&db, Some("bosun_operator")).await;
    let mut conn = login(&url).await;
    allowed(&mut conn, "SELECT args FROM bosun.jobs").await;
    allowed(
        &mut conn,
        &format!("SELECT bosun.reschedule_job({id}, now() + interval '1 hour')"),
    )
    .await;
    allowed(&mut conn, &format!("SELECT bosun.cancel_job({id})")).await;
    allowed(&mut conn, &format!("SELECT bosun.retry_job({id})")).await;
    allowed(&mut conn, "SELECT bosun.pause_queue('default')").await;
    allowed(&mut conn, "SELECT bosun.resume_queue('default')").await;
    allowed(&mut conn, "SELECT bosun.expunge_target('db-1')").await;
    allowed(&mut conn, "SELECT * FROM bosun.check_invariants()").await;
    denied(&db, &mut conn, SCHEMA_CHANGES).await;
}

#[tokio::test]
async fn a_reader_reads_the_statistics_and_nothing_else() {
    let db = TestDb::new().await;
    sqlx::query("SELECT bosun.enqueue('billing.charge', '{\"card\": \"4242\"}')")
        .execute(&db.pool)
        .await
        .unwrap();
    let url = member_of(&db, Some("bosun_reader")).await;
    let mut conn = login(&url).await;
    allowed(&mut conn, "SELECT * FROM bosun.queue_stats").await;
    allowed(&mut conn, "SELECT * FROM bosun.target_stats").await;
    allowed(&mut conn, "SELECT * FROM bosun.sample_queues()").await;
    allowed(&mut conn, "SELECT * FROM bosun.workers").await;
    denied(
        &db,
        &mut conn,
        &[
            "SELECT args FROM bosun.jobs",
            "SELECT bosun.enqueue('x')",
            "SELECT bosun.cancel_job(1)",
            "SELECT * FROM bosun.claim_jobs('default', 1, ARRAY['x'], 'w')",
        ],
    )
    .await;
    denied(&db, &mut conn, SCHEMA_CHANGES).await;
}

#[tokio::test]
async fn a_role_of_none_of_the_four_can_do_nothing_in_the_schema() {
    let db = TestDb::new().await;
    let url = member_of(&db, None).await;
    let mut conn = login(&url).await;
    denied(
        &db,
        &mut conn,
        &[
            "SELECT bosun.enqueue('x')",
            "SELECT * FROM bosun.jobs",
            "SELECT * FROM bosun.queue_stats",
            "SELECT bosun.protocol_version()",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_prefix_set_on_the_database_names_its_own_roles() {
    let db = TestDb::empty().await;
    let prefix = format!("{}_", db.name.replace('-', "_"));
    sqlx::query(&format!(
        "ALTER DATABASE {} SET bosun.role_prefix = '{prefix}'",
        db.name
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    // A new session sees the database's setting.
    let client = Client::connect(&db.url).await.unwrap();
    client.migrate().await.unwrap();
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 || '%' ORDER BY rolname",
    )
    .bind(&prefix)
    .fetch_all(client.pool())
    .await
    .unwrap();
    let expected: Vec<String> = ["enqueuer", "operator", "reader", "worker"]
        .iter()
        .map(|role| format!("{prefix}bosun_{role}"))
        .collect();
    assert_eq!(roles, expected);
    let may_enqueue: bool = sqlx::query_scalar(
        "SELECT has_function_privilege($1, 'bosun.enqueue_many(jsonb, text)', 'EXECUTE')",
    )
    .bind(format!("{prefix}bosun_enqueuer"))
    .fetch_one(client.pool())
    .await
    .unwrap();
    assert!(may_enqueue);
    // A prefix that would not make a plain role name is refused, and nothing is made.
    let other = TestDb::empty().await;
    sqlx::query(&format!(
        "ALTER DATABASE {} SET bosun.role_prefix = 'Bad Prefix'",
        other.name
    ))
    .execute(&other.pool)
    .await
    .unwrap();
    let refused = Client::connect(&other.url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("bosun.role_prefix must be"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_cli_works_as_a_member_of_the_role_each_command_needs() {
    let db = TestDb::new().await;
    let run = |url: &str, args: &[&str]| {
        std::process::Command::new(bosun_tests::bosun_bin())
            .args(args)
            .env("DATABASE_URL", url)
            .output()
            .expect("running bosun")
    };
    let enqueuer = member_of(&db, Some("bosun_enqueuer")).await;
    let enqueued = run(&enqueuer, &["enqueue", "echo", "{}"]);
    assert!(enqueued.status.success(), "{enqueued:?}");
    let listed = run(&enqueuer, &["jobs"]);
    assert_eq!(
        listed.status.code(),
        Some(1),
        "an enqueuer may not list jobs: {listed:?}"
    );
    assert!(String::from_utf8_lossy(&listed.stderr).contains("permission denied"));
    let operator = member_of(&db, Some("bosun_operator")).await;
    for command in [
        &["jobs"][..],
        &["queues"],
        &["workers"],
        &["doctor"],
        &["queues", "pause", "default"],
    ] {
        let out = run(&operator, command);
        assert!(out.status.success(), "{command:?}: {out:?}");
    }
}
