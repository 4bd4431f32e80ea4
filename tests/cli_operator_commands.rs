//! The `bosun` binary's operator commands, spawned as a user runs them: enqueue, inspect and
//! operate with `--json`, migrations, sagas, targets, work no worker serves, and text views
//! that show stored control characters escaped.

use bosun_queue::{migrate, JobState, NewJob};
use bosun_tests::cli::{bosun, fails, has_bosun_schema, job_count, json_of, ok, stderr, stdout};
use bosun_tests::{bosun_bin, eventually, TestDb};
use serde_json::{json, Value};
use std::{
    process::{Command, Stdio},
    time::Duration,
};

#[tokio::test]
async fn enqueue_inspect_and_operate_with_json() {
    let db = TestDb::new().await;

    // Enqueue with every common option.
    let enqueued = json_of(
        &db,
        &[
            "enqueue",
            "echo",
            r#"{"a":1}"#,
            "--queue",
            "mail",
            "--priority",
            "3",
            "--tag",
            "t1",
            "--json",
        ],
    );
    let id = enqueued["id"].as_i64().expect("an id");
    assert_eq!(enqueued, json!({"id": id, "inserted": true}));

    // Unique keys: the second enqueue returns the first job.
    let first = json_of(&db, &["enqueue", "echo", "--unique-key", "k", "--json"]);
    let second = json_of(&db, &["enqueue", "echo", "--unique-key", "k", "--json"]);
    let unique_id = first["id"].as_i64().expect("an id");
    assert_eq!(first, json!({"id": unique_id, "inserted": true}));
    assert_eq!(second, json!({"id": unique_id, "inserted": false}));
    assert_ne!(unique_id, id);
    let human = ok(&db, &["enqueue", "echo", "--unique-key", "k"]);
    assert!(
        human.contains(&format!("job {unique_id} already exists")),
        "{human}"
    );
    let keyed: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs WHERE unique_key = 'k'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(keyed, 1);

    // A delayed job is scheduled about an hour ahead.
    let before = chrono::Utc::now();
    let later = json_of(
        &db,
        &["enqueue", "sleep", r#"{"ms":1}"#, "--in", "1h", "--json"],
    );
    let later_id = later["id"].as_i64().expect("an id");
    let later_job = json_of(&db, &["job", &later_id.to_string(), "--json"]);
    assert_eq!(later_job["state"], json!("scheduled"));
    assert_eq!(later_job["kind"], json!("sleep"));
    assert_eq!(later_job["args"], json!({"ms": 1}));
    let scheduled_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(later_job["scheduled_at"].clone()).unwrap();
    let ahead = scheduled_at - before;
    assert!(
        ahead > chrono::Duration::minutes(59) && ahead < chrono::Duration::minutes(61),
        "scheduled {ahead} ahead"
    );

    // Listing: by queue, by state, and all of them newest first.
    let listed = json_of(&db, &["jobs", "--json", "--queue", "mail"]);
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(id));
    assert_eq!(listed[0]["queue"], json!("mail"));
    let scheduled = json_of(&db, &["jobs", "--json", "--state", "scheduled"]);
    assert_eq!(
        scheduled
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!(later_id)]
    );
    let all = json_of(&db, &["jobs", "--json"]);
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![later_id, unique_id, id],
        "newest first"
    );
    let limited = json_of(&db, &["jobs", "--json", "--limit", "1"]);
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let table = ok(&db, &["jobs", "--queue", "mail"]);
    let row = table
        .lines()
        .find(|line| line.contains(" mail "))
        .unwrap_or_else(|| panic!("a row for queue mail: {table}"));
    assert!(
        row.contains(&format!(" {id} ")) && row.contains("echo") && row.contains("available"),
        "{table}"
    );
    assert!(table.contains("1 job\n"), "{table}");
    assert!(!table.contains("sleep"), "filtered by queue: {table}");

    // One job in detail.
    let job = json_of(&db, &["job", &id.to_string(), "--json"]);
    assert_eq!(job["id"], json!(id));
    assert_eq!(job["kind"], json!("echo"));
    assert_eq!(job["queue"], json!("mail"));
    assert_eq!(job["args"], json!({"a": 1}));
    assert_eq!(job["tags"], json!(["t1"]));
    assert_eq!(job["priority"], json!(3));
    assert_eq!(job["state"], json!("available"));
    assert_eq!(job["attempt"], json!(0));
    let human = ok(&db, &["job", &id.to_string()]);
    assert!(
        human.contains(&format!("job {id}  echo  [available]")),
        "{human}"
    );
    assert!(human.contains("queue        mail  (priority 3)"), "{human}");
    assert!(human.contains("tags         t1"), "{human}");
    assert!(human.contains(r#"args         {"a":1}"#), "{human}");

    // Pause and resume a queue.
    let paused = json_of(&db, &["queues", "pause", "mail", "--json"]);
    assert_eq!(paused["name"], json!("mail"));
    assert_eq!(paused["paused"], json!(true));
    let mail_stats = |stats: &Value| {
        stats
            .as_array()
            .expect("an array")
            .iter()
            .find(|q| q["queue"] == json!("mail"))
            .cloned()
            .unwrap_or_else(|| panic!("mail listed: {stats}"))
    };
    let mail = mail_stats(&json_of(&db, &["queues", "--json"]));
    assert_eq!(mail["paused"], json!(true));
    assert_eq!(mail["available"], json!(1));
    assert_eq!(mail["scheduled"], json!(0));
    let listed = mail_stats(&json_of(&db, &["queues", "list", "--json"]));
    assert_eq!(
        (&listed["paused"], &listed["available"]),
        (&json!(true), &json!(1)),
        "`queues list` is `queues`"
    );
    let table = ok(&db, &["queues"]);
    let row = table
        .lines()
        .find(|line| line.contains(" mail "))
        .unwrap_or_else(|| panic!("a row for mail: {table}"));
    assert!(row.contains(" yes "), "mail shows as paused: {row}");
    let row = table
        .lines()
        .find(|line| line.contains(" default "))
        .unwrap_or_else(|| panic!("a row for default: {table}"));
    assert!(row.contains(" no "), "default is not paused: {row}");
    let resumed = ok(&db, &["queues", "resume", "mail"]);
    assert!(resumed.contains("queue mail resumed"), "{resumed}");
    assert_eq!(
        mail_stats(&json_of(&db, &["queues", "--json"]))["paused"],
        json!(false)
    );
    let resumed = json_of(&db, &["queues", "resume", "mail", "--json"]);
    assert_eq!(resumed["paused"], json!(false), "resuming is idempotent");

    // Cancel, retry one, and retry all cancelled.
    let cancelled = json_of(&db, &["cancel", &id.to_string(), "--json"]);
    assert_eq!(cancelled["id"], json!(id));
    assert_eq!(cancelled["state"], json!("cancelled"));
    assert_eq!(
        db.client.job_get(id).await.unwrap().state,
        JobState::Cancelled
    );
    let retried = json_of(&db, &["retry", &id.to_string(), "--json"]);
    assert_eq!(retried["id"], json!(id));
    assert_eq!(retried["state"], json!("available"));
    assert_eq!(
        db.client.job_get(id).await.unwrap().state,
        JobState::Available
    );
    assert!(ok(&db, &["cancel", &id.to_string()]).contains(&format!("job {id} cancelled")));
    assert_eq!(
        json_of(&db, &["retry", "--all", "--json"]),
        json!([]),
        "nothing failed"
    );
    let all = json_of(&db, &["retry", "--all", "--state", "cancelled", "--json"]);
    assert_eq!(all, json!([id]));
    assert_eq!(
        db.client.job_get(id).await.unwrap().state,
        JobState::Available
    );
    let human = ok(&db, &["retry", "--all", "--state", "cancelled"]);
    assert!(
        human.contains("0 cancelled jobs are available again"),
        "{human}"
    );

    let table = ok(&db, &["jobs"]);
    for expected in [id, unique_id, later_id] {
        assert!(
            table
                .lines()
                .any(|line| line.contains(&format!(" {expected} "))),
            "job {expected} listed: {table}"
        );
    }
    assert!(table.contains("3 jobs"), "{table}");
}

#[tokio::test]
async fn migrate_up_status_down_and_up() {
    let db = TestDb::empty().await;
    let latest = migrate::latest_version();
    let versions: Vec<i64> = migrate::migrations().iter().map(|m| m.version).collect();

    let status = json_of(&db, &["migrate", "--status", "--json"]);
    assert_eq!(
        status,
        json!({"current": 0, "latest": latest, "changed": []})
    );
    assert!(!has_bosun_schema(&db).await, "--status changes nothing");

    let out = ok(&db, &["migrate"]);
    assert!(
        out.contains(&format!("applied migrations {versions:?}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("schema at version {latest}")),
        "{out}"
    );
    let status = json_of(&db, &["migrate", "--status", "--json"]);
    assert_eq!(status["current"], status["latest"]);
    assert_eq!(status["current"], json!(latest));

    // Twice is fine and changes nothing.
    let out = ok(&db, &["migrate"]);
    assert!(!out.contains("applied"), "{out}");
    assert!(
        out.contains(&format!("schema at version {latest}")),
        "{out}"
    );
    assert_eq!(
        json_of(&db, &["migrate", "--json"]),
        json!({"current": latest, "latest": latest, "changed": []})
    );

    // Down to zero removes the schema, jobs and all; up again starts afresh.
    ok(&db, &["enqueue", "echo"]);
    assert_eq!(job_count(&db).await, 1);
    let mut reverted = versions.clone();
    reverted.reverse();
    assert_eq!(
        json_of(&db, &["migrate", "--down-to", "0", "--json"]),
        json!({"current": 0, "latest": latest, "changed": reverted})
    );
    assert!(!has_bosun_schema(&db).await);
    fails(&db, &["jobs"], "run `bosun migrate`");
    assert_eq!(
        json_of(&db, &["migrate", "--json"]),
        json!({"current": latest, "latest": latest, "changed": versions})
    );
    assert_eq!(job_count(&db).await, 0);
    assert_eq!(json_of(&db, &["jobs", "--json"]), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_start_run_and_show_their_ledger() {
    let db = TestDb::new().await;
    let started = bosun(
        &db,
        &[
            "sagas",
            "start",
            "example.provision",
            "vm-9",
            r#"{"fail_at":"create"}"#,
            "--json",
        ],
    );
    assert!(started.status.success(), "{}", stderr(&started));
    let id = serde_json::from_slice::<Value>(&started.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = bosun(
        &db,
        &[
            "sagas",
            "start",
            "example.provision",
            "vm-9",
            r#"{"fail_at":"create"}"#,
            "--json",
        ],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).unwrap()["id"],
        json!(id),
        "the same key, kind and inputs return the same saga"
    );

    let mut worker = Command::new(bosun_bin())
        .args(["worker", "--poll-interval", "100ms"])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let shown = eventually(
        Duration::from_secs(15),
        "the saga to compensate",
        || async {
            let output = bosun(&db, &["saga", &id, "--json"]);
            let shown: Value = serde_json::from_slice(&output.stdout).ok()?;
            (shown["saga"]["state"] == json!("compensated")).then_some(shown)
        },
    )
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    let states: Vec<&str> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["undone", "failed", "pending"]);

    let timeline = stdout(&bosun(&db, &["saga", &id]));
    assert!(timeline.contains("reserve: undone"), "{timeline}");
    assert!(
        timeline.contains("create: failed (attempt 1: create failed on purpose"),
        "{timeline}"
    );
    let listed = json_of(&db, &["sagas", "--state", "compensated", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let cancel = bosun(&db, &["saga", &id, "--cancel"]);
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        stderr(&cancel).contains("already compensated"),
        "{}",
        stderr(&cancel)
    );
    let usage = bosun(&db, &["saga", "not-a-uuid"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn targets_register_list_and_expunge() {
    let db = TestDb::new().await;
    let registered = json_of(
        &db,
        &[
            "targets", "register", "pantry-1", "--kind", "pantry", "--json",
        ],
    );
    assert_eq!(registered["state"], "in_service");
    ok(&db, &["enqueue", "echo", "--target", "pantry-1"]);
    let listed = ok(&db, &["targets"]);
    assert!(
        listed.contains("pantry-1") && listed.contains("in_service"),
        "{listed}"
    );
    assert!(listed.contains("1 target, 0 expunged"), "{listed}");

    let said = ok(&db, &["expunge", "pantry-1", "--reason", "sled 12 pulled"]);
    assert!(
        said.contains("expunged target pantry-1: 1 live job and 0 live sagas"),
        "{said}"
    );
    let again = ok(&db, &["expunge", "pantry-1"]);
    assert!(again.contains("already expunged"), "{again}");
    assert!(again.contains("sled 12 pulled"), "{again}");
    let listed = json_of(&db, &["targets", "--json"]);
    assert_eq!(listed[0]["state"], "expunged");
    assert_eq!(listed[0]["reason"], "sled 12 pulled");

    fails(
        &db,
        &["enqueue", "echo", "--target", "pantry-1"],
        "target 'pantry-1' is expunged (sled 12 pulled)",
    );
    fails(&db, &["expunge", "pantry-9"], "no target named 'pantry-9'");
    let usage = bosun(&db, &["expunge"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("Usage:"));
    assert_eq!(job_count(&db).await, 1);
}

#[tokio::test]
async fn work_of_a_kind_no_worker_serves_is_reported_and_a_saga_that_never_ran_can_be_deleted() {
    let db = TestDb::new().await;
    let output = bosun(&db, &["enqueue", "email.sned", "{}"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no worker has ever served kind 'email.sned'"),
        "{}",
        stderr(&output)
    );
    // A worker registers the kinds it serves.
    sqlx::query(
        "INSERT INTO bosun.workers (id, host, pid, kinds, expires_at)
         VALUES ('w1', 'h', 1, '{echo,saga:example.provision}', now() + interval '1 minute')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let output = bosun(&db, &["enqueue", "echo", "{}"]);
    assert_eq!(stderr(&output), "", "a served kind gets no warning");
    let listed = json_of(&db, &["jobs", "--json"]);
    let served: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["kind"].as_str().unwrap().to_string(),
                j["kind_served"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            ("echo".to_string(), true),
            ("email.sned".to_string(), false)
        ]
    );
    assert!(ok(&db, &["jobs"]).contains("NO"));

    // A typo'd saga kind: accepted, reported, and its key is not burnt for good.
    let output = bosun(
        &db,
        &["sagas", "start", "example.provison", "vm-1", "{}", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("kind 'saga:example.provison'"));
    let started: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let listed = json_of(&db, &["sagas", "--json"]);
    assert_eq!(listed[0]["kind_served"], false);
    fails(
        &db,
        &["sagas", "start", "example.provision", "vm-1", "{}"],
        "other kind: 'example.provison' (given 'example.provision')",
    );
    assert!(ok(&db, &["saga", &id, "--delete"]).contains(&format!("deleted saga {id}")));
    ok(&db, &["sagas", "start", "example.provision", "vm-1", "{}"]);
    // A saga that has run a step cannot be deleted: it is cancelled instead.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM bosun.sagas")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE bosun.jobs SET state = 'running', attempt = 1 WHERE kind LIKE 'saga:%'")
        .execute(&db.pool)
        .await
        .unwrap();
    fails(
        &db,
        &["saga", &id.to_string(), "--delete"],
        "cancel it instead",
    );
}

/// What a terminal would act on, in text a client stored.
const HOSTILE: &str = "\x1b[31m\r\n";

/// `output` has no byte a terminal would act on (ESC, CR), and shows `HOSTILE` escaped.
fn assert_escaped(args: &[&str], output: &str) {
    assert!(
        !output.contains('\x1b') && !output.contains('\r'),
        "bosun {args:?} printed a raw control character: {output:?}"
    );
    assert!(
        output.contains("\\x1b[31m"),
        "bosun {args:?} shows the escape visibly: {output}"
    );
}

#[tokio::test]
async fn text_views_show_control_characters_escaped() {
    let db = TestDb::new().await;
    let key = format!("key{HOSTILE}");
    let job = db
        .client
        .enqueue(
            NewJob::new("echo", json!({}))
                .unique_key(&key)
                .tags([format!("tag{HOSTILE}")])
                .target(format!("pantry{HOSTILE}")),
        )
        .await
        .unwrap()
        .id;
    // A handler's error and the worker's name, as an attempt that failed leaves them.
    sqlx::query(
        "UPDATE bosun.jobs SET state = 'failed', attempt = 1, attempted_at = now(),
             finalized_at = now(), attempted_by = $2,
             errors = jsonb_build_array(jsonb_build_object(
                 'at', now(), 'attempt', 1, 'error', $3::text, 'worker', $2::text))
         WHERE id = $1",
    )
    .bind(job)
    .bind(format!("worker{HOSTILE}"))
    .bind(format!("boom{HOSTILE}forged line"))
    .execute(&db.pool)
    .await
    .unwrap();
    let saga = db
        .client
        .start_saga("example.provision", &format!("vm{HOSTILE}"), &json!({}))
        .await
        .unwrap();
    sqlx::query("UPDATE bosun.sagas SET error = $2 WHERE id = $1")
        .bind(saga)
        .bind(format!("undo{HOSTILE}"))
        .execute(&db.pool)
        .await
        .unwrap();

    let id = job.to_string();
    let saga = saga.to_string();
    for args in [
        &["job", &id][..],
        &["jobs"],
        &["jobs", "--state", "failed"],
        &["targets"],
        &["sagas"],
        &["saga", &saga],
    ] {
        assert_escaped(args, &ok(&db, args));
    }
    let shown = ok(&db, &["job", &id]);
    assert!(
        shown.contains("boom\\x1b[31m\\r\\nforged line"),
        "one line, the whole error: {shown}"
    );
    // JSON stays exact.
    let listed = json_of(&db, &["job", &id, "--json"]);
    assert_eq!(listed["unique_key"], json!(key));
    // Errors echo what they were given, escaped too.
    let output = bosun(&db, &["enqueue", &format!("bad{HOSTILE}")]);
    assert_eq!(output.status.code(), Some(1));
    assert_escaped(&["enqueue"], &stderr(&output));
}

#[tokio::test]
async fn a_saga_step_job_shows_the_step_limit_of_attempts() {
    use bosun_tests::saga_sql::{claim, start, STEPS};
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let saga = start(&mut conn, "limits").await;
    let job = claim(&mut conn, saga, 0, "do").await;
    // The runner begins the step with its limit of 3 attempts.
    let state: Option<String> = sqlx::query_scalar(&format!(
        "SELECT (bosun.saga_step_begin($1, 1, $2, 0, {STEPS}, 3)).state::text"
    ))
    .bind(job)
    .bind(saga)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(state.as_deref(), Some("running"));
    let listed = json_of(&db, &["jobs", "--json"]);
    assert_eq!(
        (
            &listed[0]["id"],
            &listed[0]["attempt"],
            &listed[0]["max_attempts"]
        ),
        (&json!(job), &json!(1), &json!(3)),
        "{listed}"
    );
    let table = ok(&db, &["jobs"]);
    assert!(table.contains(" 1/3 "), "{table}");
    assert!(!table.contains("/20"), "{table}");
    assert!(ok(&db, &["job", &job.to_string()]).contains("attempt      1 of 3"));
}
