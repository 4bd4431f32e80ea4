//! Running the built `bosun` binary as a user does, for the CLI tests (`cli_*.rs`): its
//! output, and the assertions of the exit status contract (0 ok, 1 runtime error, 2 usage).

use std::process::{Command, Output};

use serde_json::Value;

use crate::{bosun_bin, TestDb};

/// A URL nothing listens on: connecting to it fails only after the pool's 30 s timeout.
pub const UNREACHABLE_URL: &str = "postgres://bosun@127.0.0.1:1/nowhere";

/// Run `bosun` with `args`, on `database_url` or with no `DATABASE_URL` at all.
pub fn run(database_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(bosun_bin());
    command.args(args).env("RUST_LOG", "warn");
    match database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    command.output().expect("running bosun")
}

/// Run `bosun` with `args` on the test database.
pub fn bosun(db: &TestDb, args: &[&str]) -> Output {
    run(Some(&db.url), args)
}

/// What the process printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the process printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run and expect success; returns stdout.
pub fn ok(db: &TestDb, args: &[&str]) -> String {
    let output = bosun(db, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "bosun {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Run and expect success; returns stdout parsed as JSON.
pub fn json_of(db: &TestDb, args: &[&str]) -> Value {
    let out = ok(db, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bosun {args:?} printed no JSON ({e}): {out}"))
}

/// Run and expect a runtime error: status 1, nothing on stdout, `error: ...` naming `message`
/// on stderr and no usage text (it is not the command line's fault).
pub fn fails(db: &TestDb, args: &[&str], message: &str) {
    let output = bosun(db, args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "bosun {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(message),
        "bosun {args:?} says {message:?}: {err}"
    );
    assert!(!err.contains("Usage:"), "bosun {args:?}: {err}");
    assert_eq!(stdout(&output), "", "bosun {args:?} prints nothing");
}

/// How many rows `bosun.jobs` holds.
pub async fn job_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Every queue row: its name and whether it is paused.
pub async fn queue_rows(db: &TestDb) -> Vec<(String, bool)> {
    sqlx::query_as("SELECT name, paused FROM bosun.queues ORDER BY name")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Whether the database has the `bosun` schema at all.
pub async fn has_bosun_schema(db: &TestDb) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'bosun')")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}
