//! The `bosun` binary's exit status contract: 0 ok, 1 runtime error (`error: ...` on stderr,
//! each cause once), 2 usage error (clap's message and the usage of the command concerned on
//! stderr, before any database is touched).

use bosun_queue::{JobState, NewJob};
use bosun_tests::cli::{
    bosun, fails, has_bosun_schema, job_count, queue_rows, run, stderr, stdout, UNREACHABLE_URL,
};
use bosun_tests::force_state;
use bosun_tests::{bosun_bin, state_counts, TestDb};
use serde_json::json;
use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

/// Usage errors, with a fragment of clap's message and the usage line of the command
/// concerned (the usage is shown even for value errors, whose clap message has none).
const USAGE_ERRORS: &[(&[&str], &str, &str)] = &[
    (
        &["frobnicate"],
        "unrecognized subcommand 'frobnicate'",
        "Usage: bosun [OPTIONS] <COMMAND>",
    ),
    (
        &["jobs", "--no-such-flag"],
        "unexpected argument '--no-such-flag'",
        "Usage: bosun jobs ",
    ),
    (
        &["enqueue", "echo", "[1]"],
        "args must be a JSON object",
        "Usage: bosun enqueue ",
    ),
    (
        &["enqueue", "echo", "{not json"],
        "not valid JSON",
        "Usage: bosun enqueue ",
    ),
    (
        &["enqueue", "echo", "--in", "forever"],
        "invalid value 'forever' for '--in <DURATION>'",
        "Usage: bosun enqueue ",
    ),
    (
        &[
            "enqueue",
            "echo",
            "--in",
            "1s",
            "--at",
            "2030-01-01T00:00:00Z",
        ],
        "cannot be used with",
        "Usage: bosun enqueue ",
    ),
    (
        &["enqueue", "echo", "--priority", "40000"],
        "40000 is not in -32768..=32767",
        "Usage: bosun enqueue ",
    ),
    (
        &["worker", "--queues", "mail=0"],
        "concurrency of \"mail\" must be a whole number above 0",
        "Usage: bosun worker ",
    ),
    (
        &["worker", "--queues", "bad name=1"],
        "queue \"bad name\" is not a valid name",
        "Usage: bosun worker ",
    ),
    (
        &["worker", "--queues", "mail"],
        "is not NAME=CONCURRENCY",
        "Usage: bosun worker ",
    ),
    (
        &["worker", "--poll-interval", "often"],
        "invalid value 'often' for '--poll-interval <POLL_INTERVAL>'",
        "Usage: bosun worker ",
    ),
    (
        &["jobs", "--state", "done"],
        "state 'done' is not one of",
        "Usage: bosun jobs ",
    ),
    (
        &["jobs", "--limit", "0"],
        "0 is not in 1..=100000",
        "Usage: bosun jobs ",
    ),
    (
        &["job", "not-a-number"],
        "invalid value 'not-a-number'",
        "Usage: bosun job ",
    ),
    (&["job"], "<ID>", "Usage: bosun job "),
    (&["retry"], "<ID|--all>", "Usage: bosun retry "),
    (
        &["retry", "1", "--all"],
        "cannot be used with '--all'",
        "Usage: bosun retry ",
    ),
    // The filters only make sense with --all; with an id they must not be silently ignored.
    (
        &["retry", "1", "--queue", "mail"],
        "cannot be used with '--queue <QUEUE>'",
        "Usage: bosun retry ",
    ),
    (
        &["retry", "1", "--state", "cancelled"],
        "cannot be used with '--state <STATE>'",
        "Usage: bosun retry ",
    ),
    (&["cancel"], "<ID>", "Usage: bosun cancel "),
    (&["queues", "pause"], "<NAME>", "Usage: bosun queues pause "),
    (
        &["migrate", "--status", "--down-to", "0"],
        "cannot be used with",
        "Usage: bosun migrate ",
    ),
    (
        &["demo", "--jobs", "5"],
        "5 is not in 10..=100000",
        "Usage: bosun demo ",
    ),
];

fn assert_usage_error(output: &Output, args: &[&str], message: &str, usage: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "bosun {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(message),
        "bosun {args:?} says {message:?}: {err}"
    );
    assert!(err.contains(usage), "bosun {args:?} shows {usage:?}: {err}");
    assert_eq!(
        stdout(output),
        "",
        "bosun {args:?} prints nothing on stdout"
    );
}

#[tokio::test]
async fn usage_errors_exit_2_with_usage_and_change_nothing() {
    let db = TestDb::new().await;
    db.client
        .enqueue(NewJob::new("echo", json!({})).queue("existing"))
        .await
        .unwrap();
    let jobs_before = state_counts(&db.pool).await;
    let queues_before = queue_rows(&db).await;

    for (args, message, usage) in USAGE_ERRORS {
        assert_usage_error(&bosun(&db, args), args, message, usage);
    }
    assert_eq!(state_counts(&db.pool).await, jobs_before);
    assert_eq!(job_count(&db).await, 1, "no job was enqueued");
    assert_eq!(queue_rows(&db).await, queues_before, "no queue was touched");

    // A usage error is reported before any connection: against an unreachable server it is
    // immediate (connecting would take the pool's 30 s timeout), and with no DATABASE_URL no
    // throwaway server is started.
    let started = Instant::now();
    for url in [Some(UNREACHABLE_URL), None] {
        for (args, message, usage) in USAGE_ERRORS {
            let output = run(url, args);
            assert_usage_error(&output, args, message, usage);
            assert!(
                !stderr(&output).contains("throwaway"),
                "bosun {args:?} started no server: {}",
                stderr(&output)
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "usage errors do not connect (took {:?})",
        started.elapsed()
    );

    // --help and --version are not errors.
    let help = run(Some(UNREACHABLE_URL), &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Usage: bosun [OPTIONS] <COMMAND>"));
    let help = run(Some(UNREACHABLE_URL), &["enqueue", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Usage: bosun enqueue "));
    let version = run(Some(UNREACHABLE_URL), &["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(
        stdout(&version).starts_with("bosun "),
        "{}",
        stdout(&version)
    );
}

#[tokio::test]
async fn runtime_errors_exit_1_with_a_clear_message() {
    let db = TestDb::new().await;
    fails(&db, &["job", "999999"], "no job with id 999999");
    fails(&db, &["job", "999999", "--json"], "no job with id 999999");
    fails(&db, &["cancel", "999999"], "no job with id 999999");
    fails(&db, &["retry", "999999"], "no job with id 999999");
    fails(&db, &["enqueue", "bad kind"], "kind 'bad kind' is invalid");
    fails(
        &db,
        &["enqueue", "echo", "--max-attempts", "0"],
        "max_attempts must be at least 1",
    );
    // Parses as a duration, but the time is beyond what can be represented: an error, not a
    // panic.
    fails(
        &db,
        &["enqueue", "echo", "--in", "300000years"],
        "--in 300000years is too far in the future",
    );
    fails(
        &db,
        &["enqueue", "echo", "--queue", "bad queue"],
        "queue 'bad queue' is invalid",
    );
    fails(
        &db,
        &["queues", "pause", "bad queue"],
        "not a valid queue name",
    );
    fails(
        &db,
        &["retry", "--all", "--state", "running"],
        "state must be scheduled, retryable, failed, cancelled or completed, got running",
    );
    assert_eq!(job_count(&db).await, 0, "failed commands enqueue nothing");

    // Cancelling a finished job.
    let done = db
        .client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap()
        .id;
    force_state(&db.pool, done, "completed", 1).await;
    fails(
        &db,
        &["cancel", &done.to_string()],
        &format!("job {done} is already completed"),
    );
    assert_eq!(
        db.client.job_get(done).await.unwrap().state,
        JobState::Completed
    );

    // Retrying a running job.
    let running = db
        .client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap()
        .id;
    force_state(&db.pool, running, "running", 1).await;
    fails(
        &db,
        &["retry", &running.to_string(), "--json"],
        &format!("job {running} is running"),
    );
    let still = db.client.job_get(running).await.unwrap();
    assert_eq!((still.state, still.attempt), (JobState::Running, 1));

    // A database without Bosun's schema: every command but migrate and demo says what to do,
    // and none of them creates the schema behind the user's back.
    let empty = TestDb::empty().await;
    for args in [
        &["jobs"][..],
        &["jobs", "--json"],
        &["enqueue", "echo"],
        &["queues"],
        &["job", "1"],
    ] {
        fails(&empty, args, "run `bosun migrate`");
    }
    assert!(!has_bosun_schema(&empty).await, "nothing was created");
}

/// Without a database, a command that writes or reads one refuses (exit 2) and says how to
/// give one: a throwaway server would lose what it wrote when bosun exits.
#[tokio::test]
async fn without_a_database_url_commands_other_than_demo_and_bench_exit_2() {
    for args in [
        &["enqueue", "echo"][..],
        &["jobs"],
        &["queues"],
        &["migrate"],
        &["doctor"],
        &["workers"],
    ] {
        let output = run(None, args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "bosun {args:?}: {err}");
        assert_eq!(stdout(&output), "", "bosun {args:?} prints nothing: {err}");
        assert!(
            err.starts_with("error: no database given")
                && err.contains("DATABASE_URL=postgres://user@host/db")
                && err.contains("--database-url"),
            "bosun {args:?} says how to give a database: {err}"
        );
        assert!(
            !err.contains("throwaway PostgreSQL from"),
            "bosun {args:?}: {err}"
        );
    }
}

/// A URL of another database's scheme is refused before anything is sent, even when it
/// points at a PostgreSQL server (sqlx would read it as a PostgreSQL URL).
#[tokio::test]
async fn a_url_that_is_not_postgresql_is_refused_with_exit_2() {
    let db = TestDb::new().await;
    let mysql = db.url.replacen("postgres://", "mysql://", 1);
    assert_ne!(mysql, db.url);
    let output = run(Some(&mysql), &["enqueue", "echo"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(stdout(&output), "");
    assert!(
        err.contains("Bosun needs a PostgreSQL URL") && err.contains("\"mysql://\""),
        "{err}"
    );
    assert_eq!(job_count(&db).await, 0, "nothing was enqueued");
    // No scheme at all, or a huge one: the message says so and stays short.
    let output = run(Some("127.0.0.1/db"), &["jobs"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("got one without a scheme"),
        "{}",
        stderr(&output)
    );
    let huge = format!("{}://u@h/db", "x".repeat(100_000));
    let output = run(Some(&huge), &["jobs"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).len() < 500, "{}", stderr(&output));
    // The scheme is not case-sensitive, and `postgresql://` is as good as `postgres://`.
    let upper = db.url.replacen("postgres://", "PostgreSQL://", 1);
    assert_eq!(
        run(Some(&upper), &["enqueue", "echo"]).status.code(),
        Some(0)
    );
    assert_eq!(job_count(&db).await, 1);
}

#[tokio::test]
async fn an_unreachable_database_fails_at_once_with_the_cause() {
    let started = Instant::now();
    let output = Command::new(bosun_bin())
        .args(["jobs"])
        .env("DATABASE_URL", "postgres://bosun@127.0.0.1:1/nowhere")
        .output()
        .expect("running bosun");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no pool timeout wait"
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        message.matches("Connection refused").count(),
        1,
        "the cause is said once: {message}"
    );
}

#[tokio::test]
async fn error_messages_say_each_cause_once_and_echo_long_values_short() {
    let db = TestDb::new().await;
    // A refusal from the database itself (not one of Bosun's own checks).
    sqlx::query(
        "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'enqueue refused by site policy' USING ERRCODE = '42501'; END $$;
         ",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON bosun.jobs FOR EACH ROW EXECUTE FUNCTION public.refuse()",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let output = bosun(&db, &["enqueue", "echo"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches("enqueue refused by site policy").count(),
        1,
        "the cause is said once: {err}"
    );
    sqlx::query("DROP TRIGGER refuse ON bosun.jobs")
        .execute(&db.pool)
        .await
        .unwrap();

    // Linux refuses a single argument over 128 KiB, so 100,000 characters stand for the
    // megabyte a script might pass by mistake.
    let long = "k".repeat(100_000);
    let json = format!("{{\"{long}\": 1");
    for args in [
        &["enqueue", &long][..],
        &["enqueue", "echo", &json],
        &["enqueue", "echo", "--in", &long],
        &["enqueue", "echo", "--priority", &long],
        &["enqueue", "echo", "--queue", &long],
        &["job", &long],
        &["jobs", "--state", &long],
        &["expunge", &long],
        &["queues", "pause", &long],
        &[&long],
    ] {
        let output = bosun(&db, args);
        let err = stderr(&output);
        assert!(
            output.status.code() == Some(1) || output.status.code() == Some(2),
            "{err}"
        );
        assert!(
            err.len() < 1_000,
            "bosun {} ... echoes {} bytes: {}...",
            args[0],
            err.len(),
            &err[..300]
        );
        assert!(err.contains("(100"), "says how long the value was: {err}");
    }
    assert_eq!(job_count(&db).await, 0);
}
