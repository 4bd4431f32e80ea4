//! The jobs table itself: plain inserts and updates are checked by named constraints (at the
//! limits too, saying what is wrong), and the fenced writes and claims read only the rows
//! they concern whatever the planner statistics say.

use bosun_tests::raw_sql::{job_count, job_row, sql_exec, sql_id};
use bosun_tests::{assert_rejected, TestDb};
use serde_json::json;

// ---- bad input, from raw SQL ----

#[tokio::test]
async fn plain_inserts_are_checked_by_named_constraints() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "INSERT INTO bosun.jobs (kind, args) VALUES ('x', '[]')",
            "23514",
            &["args_must_be_a_json_object"],
        ),
        (
            "INSERT INTO bosun.jobs (kind) VALUES ('bad kind')",
            "23514",
            &["kind_has_bad_format_see_bosun_valid_kind"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, queue) VALUES ('x', 'bad queue')",
            "23514",
            &["queue_has_bad_format_see_bosun_valid_queue"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, max_attempts) VALUES ('x', 0)",
            "23514",
            &["max_attempts_must_be_at_least_1"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, state) VALUES ('x', 'completed')",
            "23514",
            &["finished_job_has_finalized_at"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, args) VALUES ('ok', '{}'), ('x', '[]')",
            "23514",
            &["args_must_be_a_json_object"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 0);

    // A good plain INSERT gets the defaults; a future one is shown as scheduled.
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, scheduled_at) VALUES ('now', now()),
                                                           ('later', now() + interval '1 hour')",
    )
    .await;
    let states: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, queue, state::text FROM bosun.jobs ORDER BY kind")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        states,
        vec![
            ("later".into(), "default".into(), "scheduled".into()),
            ("now".into(), "default".into(), "available".into()),
        ]
    );
}

#[tokio::test]
async fn plain_updates_of_checked_columns_are_checked_and_the_checked_flag_does_not_leak() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let id = sql_id(&mut conn, "SELECT bosun.enqueue('ok')").await;
    let cases: &[(&str, &[&str])] = &[
        (
            "UPDATE bosun.jobs SET args = '[]'",
            &["args_must_be_a_json_object"],
        ),
        (
            "UPDATE bosun.jobs SET kind = 'bad kind'",
            &["kind_has_bad_format_see_bosun_valid_kind"],
        ),
        (
            "UPDATE bosun.jobs SET errors = '{}'",
            &["errors_must_be_a_json_array"],
        ),
        (
            "UPDATE bosun.jobs SET meta = '1'",
            &["meta_must_be_a_json_object"],
        ),
    ];
    for (sql, needles) in cases {
        assert_rejected(&mut conn, sql, "23514", needles).await;
    }
    assert_eq!(job_row(&mut conn, id).await.args, json!({}));

    // bosun.enqueue skips the table's check for the rows it checked itself, and only for its
    // own INSERT: a plain INSERT later in the same transaction is checked again.
    sql_exec(&mut conn, "BEGIN").await;
    sql_id(&mut conn, "SELECT bosun.enqueue('ok')").await;
    let error = sqlx::query("INSERT INTO bosun.jobs (kind) VALUES ('bad kind')")
        .execute(&mut conn)
        .await
        .expect_err("a bad plain INSERT after bosun.enqueue is still checked");
    let error = error.as_database_error().unwrap();
    assert_eq!(error.code().as_deref(), Some("23514"));
    assert!(error
        .message()
        .contains("kind_has_bad_format_see_bosun_valid_kind"));
    sql_exec(&mut conn, "ROLLBACK").await;
    assert_eq!(job_count(&mut conn).await, 1);
}

/// The fenced writes find rows by id whatever the statistics say: right after a bulk insert
/// (no statistics yet), after ANALYZE of a table where nothing ran, and after a drain, when
/// the indexes of running jobs hold the entries of every job that ran since (the index by
/// claim time, which a probe by id cannot use, then looks the cheaper one to walk).
#[tokio::test]
async fn fenced_writes_use_the_primary_key_whatever_the_statistics() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(
        &mut conn,
        "SELECT bosun.enqueue_many(jsonb_agg(jsonb_build_object('kind', 'echo')))
         FROM generate_series(1, 20000)",
    )
    .await;
    let writes = [
        (
            "complete_many",
            include_str!("../queue/src/sql/job_complete_many.sql"),
            "(ARRAY[1,2,3]::bigint[], ARRAY[1,1,1])",
        ),
        (
            "cancel",
            include_str!("../queue/src/sql/job_cancel_running.sql"),
            "(1, 1, 'stop')",
        ),
    ];
    for phase in ["no statistics", "analyzed", "after a drain"] {
        if phase == "analyzed" {
            sql_exec(&mut conn, "ANALYZE bosun.jobs").await;
        }
        if phase == "after a drain" {
            sql_exec(
                &mut conn,
                "UPDATE bosun.jobs SET state = 'running', attempt = 1, attempted_at = now(),
                                       attempted_by = 'w'
                 WHERE id > 10000",
            )
            .await;
            sql_exec(
                &mut conn,
                "UPDATE bosun.jobs SET state = 'completed', finalized_at = now()
                 WHERE state = 'running'",
            )
            .await;
            sql_exec(&mut conn, "ANALYZE bosun.jobs").await;
        }
        for (name, sql, args) in writes {
            let name = format!("{name}_{}", phase.replace(' ', "_"));
            sql_exec(&mut conn, &format!("PREPARE p_{name} AS {sql}")).await;
            // Five custom plans, then the generic one that a prepared statement keeps.
            for _ in 0..6 {
                let plan: Vec<String> =
                    sqlx::query_scalar(&format!("EXPLAIN EXECUTE p_{name}{args}"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                let plan = plan.join("\n");
                assert!(
                    !plan.contains("Seq Scan"),
                    "{name} ({phase}) scans the table:\n{plan}"
                );
                assert!(
                    (plan.contains("jobs_pkey") || plan.contains("jobs_running_idx"))
                        && plan.contains("Index Cond: (id = "),
                    "{name} ({phase}) does not probe by id:\n{plan}"
                );
                assert!(
                    !plan.contains("Nested Loop"),
                    "{name} ({phase}) joins:\n{plan}"
                );
            }
        }
    }
    // The worker protocol's fenced writes (which the runtime's completion, error and snooze
    // statements call) plan each call for its own id: no generic plan to go wrong.
    let custom: Vec<String> = sqlx::query_scalar(
        "SELECT proname::text FROM pg_proc
         WHERE pronamespace = 'bosun'::regnamespace
           AND proname IN ('complete_job', 'fail_job', 'snooze_job')
           AND proconfig @> ARRAY['plan_cache_mode=force_custom_plan']
         ORDER BY proname",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(custom, ["complete_job", "fail_job", "snooze_job"]);
}

/// A claim reads the jobs it takes and not the rest of the queue, whatever the statistics
/// say: right after a bulk load (none yet: on a table this size the planner then expects a
/// handful of rows and would sort the whole queue on every claim), and after ANALYZE,
/// through the plan a session keeps after its first claims.
#[tokio::test]
async fn a_claim_reads_only_the_jobs_it_takes_whatever_the_statistics() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind) SELECT 'echo' FROM generate_series(1, 300000)",
    )
    .await;
    for analyzed in [false, true] {
        if analyzed {
            sql_exec(&mut conn, "ANALYZE bosun.jobs").await;
        }
        for round in 0..7_i64 {
            sql_exec(&mut conn, "BEGIN").await;
            let claimed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bosun.claim_jobs('default', 100, ARRAY['echo'], 'w')",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let (seq_scans, fetched): (i64, i64) = sqlx::query_as(
                "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables
                 WHERE relid = 'bosun.jobs'::regclass",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            sql_exec(&mut conn, "COMMIT").await;
            assert_eq!(claimed, 100);
            assert_eq!(
                seq_scans, 0,
                "claim {round} (analyzed: {analyzed}) scanned the table"
            );
            // The index still leads to the old versions of the jobs claimed before (until a
            // vacuum), so the bound grows with the claims; a scan of the queue is 300,000.
            let before = if analyzed { 7 + round } else { round };
            assert!(
                fetched <= 300 * (before + 1),
                "claim {round} (analyzed: {analyzed}) fetched {fetched} rows to claim 100"
            );
        }
    }
}

/// Every statement that writes jobs prepares the table's trigger conditions and checks
/// afresh, and preparing them tries to inline each SQL-language function they name, which
/// means parsing its body, whether or not a row ever calls it. None may name
/// one.
#[tokio::test]
async fn the_jobs_tables_checks_name_no_sql_function() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let named: Vec<(String, String)> = sqlx::query_as(
        "SELECT coalesce(t.tgname, c.conname), p.proname
         FROM pg_depend AS d
         JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
         LEFT JOIN pg_trigger AS t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
         LEFT JOIN pg_constraint AS c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
         WHERE coalesce(t.tgrelid, c.conrelid) = 'bosun.jobs'::regclass
           AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(named, Vec::<(String, String)>::new());
    // The query sees what the checks name: the trigger functions, and bosun.bad_tags (in
    // the checks of inserts and of updates).
    let all: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_depend AS d
         JOIN pg_trigger AS t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
         WHERE t.tgrelid = 'bosun.jobs'::regclass AND d.refclassid = 'pg_proc'::regclass
           AND d.refobjid = 'bosun.bad_tags(text[])'::regprocedure",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(all, 2);
}

// ---- the Rust client ----

/// The table checks what the enqueue functions check: name lengths at their limits, tags,
/// and a message that says what is wrong besides naming the check.
#[tokio::test]
async fn plain_inserts_are_checked_at_the_limits_and_say_what_is_wrong() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let long_kind = format!("k{}", "x".repeat(127));
    let long_queue = format!("q{}", "x".repeat(63));
    sql_exec(
        &mut conn,
        &format!("INSERT INTO bosun.jobs (kind, queue) VALUES ('{long_kind}', '{long_queue}')"),
    )
    .await;
    let cases: &[(String, &[&str])] = &[
        (
            format!("INSERT INTO bosun.jobs (kind) VALUES ('{long_kind}x')"),
            &["kind_has_bad_format_see_bosun_valid_kind", "kind 'kx"],
        ),
        (
            format!("INSERT INTO bosun.jobs (kind, queue) VALUES ('x', '{long_queue}x')"),
            &["queue_has_bad_format_see_bosun_valid_queue"],
        ),
        (
            "INSERT INTO bosun.jobs (kind) VALUES ('.dot')".to_string(),
            &["kind_has_bad_format_see_bosun_valid_kind", "is invalid"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, tags) VALUES ('x', '{ok,\"\"}')".to_string(),
            &[
                "tags_must_be_strings_of_1_to_255_characters",
                "tags must be strings",
            ],
        ),
        (
            "INSERT INTO bosun.jobs (kind, tags) VALUES ('x', ARRAY['ok', NULL])".to_string(),
            &["tags_must_be_strings_of_1_to_255_characters"],
        ),
        (
            format!(
                "INSERT INTO bosun.jobs (kind, tags) VALUES ('x', ARRAY['{}'])",
                "t".repeat(256)
            ),
            &["tags_must_be_strings_of_1_to_255_characters"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, meta) VALUES ('x', '[]')".to_string(),
            &["meta_must_be_a_json_object", "meta must be a JSON object"],
        ),
    ];
    for (sql, needles) in cases {
        assert_rejected(&mut conn, sql, "23514", needles).await;
    }
    assert_rejected(
        &mut conn,
        "UPDATE bosun.jobs SET tags = '{\"\"}'",
        "23514",
        &["tags_must_be_strings_of_1_to_255_characters"],
    )
    .await;
    assert_eq!(job_count(&mut conn).await, 1);
}
