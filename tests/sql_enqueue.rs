//! Enqueueing from a raw connection, typed as a psql user would: `bosun.enqueue`,
//! `bosun.enqueue_many` and `bosun.enqueue_arrays` leave the rows they say, and each kind of
//! bad input fails with its SQLSTATE and a message naming the argument, writing nothing.

use bosun_queue::JobState;
use bosun_tests::force_state;
use bosun_tests::raw_sql::{db_clock, job_count, job_row, sql_exec, sql_id};
use bosun_tests::{assert_rejected, snapshot, TestDb};
use serde_json::json;
use sqlx::PgConnection;

/// Run SQL that returns a set of ids (first column), in the order the rows come.
async fn sql_ids(conn: &mut PgConnection, sql: &str) -> Vec<i64> {
    sqlx::query_scalar(sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ---- every SQL function, from a raw connection ----

#[tokio::test]
async fn enqueue_with_named_arguments_and_defaults() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let before = db_clock(&mut conn).await;
    let id = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('email.send', '{"to":"a@b.c"}', queue => 'mail', priority => 5)"#,
    )
    .await;
    let after = db_clock(&mut conn).await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(job.kind, "email.send");
    assert_eq!(job.args, json!({"to": "a@b.c"}));
    assert_eq!(job.queue, "mail");
    assert_eq!(job.priority, 5);
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.max_attempts, 20);
    assert!(before <= job.scheduled_at && job.scheduled_at <= after);
    assert!(before <= job.created_at && job.created_at <= after);
    assert_eq!(job.unique_key, None);
    assert_eq!(job.target, None);
    assert!(job.tags.is_empty());
    assert_eq!(job.meta, json!({}));
    assert_eq!(job.errors, json!([]));
    assert_eq!(job.attempted_at, None);
    assert_eq!(job.finalized_at, None);

    // Only the kind: every default.
    let id = sql_id(&mut conn, "SELECT bosun.enqueue('noop')").await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(
        (
            job.kind.as_str(),
            job.queue.as_str(),
            &job.args,
            job.priority,
            job.max_attempts,
            job.state
        ),
        ("noop", "default", &json!({}), 0, 20, JobState::Available)
    );

    // Every field, by name.
    let id = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('report.build', '{"n":1}', queue => 'reports', priority => -3,
                  max_attempts => 3, unique_key => 'report-1', target => 'account:9',
                  tags => ARRAY['nightly', 'finance'], meta => '{"source":"psql"}')"#,
    )
    .await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(job.queue, "reports");
    assert_eq!(job.priority, -3);
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.unique_key.as_deref(), Some("report-1"));
    assert_eq!(job.target.as_deref(), Some("account:9"));
    assert_eq!(job.tags, vec!["nightly".to_string(), "finance".to_string()]);
    assert_eq!(job.meta, json!({"source": "psql"}));
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job_count(&mut conn).await, 3);
}

#[tokio::test]
async fn enqueue_with_a_future_time_is_scheduled() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let later = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('later', scheduled_at => '2999-01-01T00:00:00Z')",
    )
    .await;
    let job = job_row(&mut conn, later).await;
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.scheduled_at.to_rfc3339(), "2999-01-01T00:00:00+00:00");

    let soon = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('soon', scheduled_at => now() + interval '1 hour')",
    )
    .await;
    assert_eq!(job_row(&mut conn, soon).await.state, JobState::Scheduled);

    // A time in the past is due: available, keeping the time given.
    let past = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('overdue', scheduled_at => '2000-01-01T00:00:00Z')",
    )
    .await;
    let job = job_row(&mut conn, past).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.scheduled_at.to_rfc3339(), "2000-01-01T00:00:00+00:00");
}

#[tokio::test]
async fn enqueue_with_a_taken_unique_key_returns_the_existing_job() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let first = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('invoice.send', '{"invoice":42}', unique_key => 'invoice-42')"#,
    )
    .await;
    let before = snapshot(&mut conn).await;
    let second = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('invoice.send', '{"invoice":43}', queue => 'other',
                  unique_key => 'invoice-42')"#,
    )
    .await;
    assert_eq!(second, first, "the existing job's id comes back");
    assert_eq!(
        snapshot(&mut conn).await,
        before,
        "nothing inserted or changed"
    );
    let job = job_row(&mut conn, first).await;
    assert_eq!(job.args, json!({"invoice": 42}), "the existing job is kept");
    assert_eq!(job.queue, "default");

    // The key stays taken while the row exists, whatever its state.
    force_state(&mut conn, first, "completed", 1).await;
    let third = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('invoice.send', unique_key => 'invoice-42')",
    )
    .await;
    assert_eq!(third, first);
    assert_eq!(job_count(&mut conn).await, 1);

    // Another key is another job.
    let other = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('invoice.send', unique_key => 'invoice-43')",
    )
    .await;
    assert_ne!(other, first);
    assert_eq!(job_count(&mut conn).await, 2);
}

#[tokio::test]
async fn enqueue_many_returns_ids_in_input_order() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let ids = sql_ids(
        &mut conn,
        r#"SELECT id FROM bosun.enqueue_many('[
              {"kind": "b.second", "args": {"n": 1}},
              {"kind": "a.first", "queue": "q2", "priority": -2, "max_attempts": 3,
               "tags": ["x", "y"], "meta": {"m": 1}, "target": "t-1",
               "scheduled_at": "2999-01-01T00:00:00Z"},
              {"kind": "c.third", "unique_key": "u-1", "args": null, "priority": null},
              {"kind": "d.fourth", "priority": 2.0, "max_attempts": 4.0}
           ]') WITH ORDINALITY AS t(id, ord) ORDER BY ord"#,
    )
    .await;
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    let first = job_row(&mut conn, ids[0]).await;
    assert_eq!(first.kind, "b.second");
    assert_eq!(first.args, json!({"n": 1}));
    assert_eq!(first.queue, "default");
    assert_eq!(first.priority, 0);
    assert_eq!(first.max_attempts, 20);
    assert_eq!(first.state, JobState::Available);

    let second = job_row(&mut conn, ids[1]).await;
    assert_eq!(second.kind, "a.first");
    assert_eq!(second.args, json!({}));
    assert_eq!(second.queue, "q2");
    assert_eq!(second.priority, -2);
    assert_eq!(second.max_attempts, 3);
    assert_eq!(second.tags, vec!["x".to_string(), "y".to_string()]);
    assert_eq!(second.meta, json!({"m": 1}));
    assert_eq!(second.target.as_deref(), Some("t-1"));
    assert_eq!(second.state, JobState::Scheduled);
    assert_eq!(
        second.scheduled_at.to_rfc3339(),
        "2999-01-01T00:00:00+00:00"
    );

    let third = job_row(&mut conn, ids[2]).await;
    assert_eq!(third.kind, "c.third");
    assert_eq!(third.unique_key.as_deref(), Some("u-1"));
    assert_eq!(third.args, json!({}), "null means the default");
    assert_eq!(third.priority, 0);

    // JSON has one number type: 2.0 is the whole number 2.
    let fourth = job_row(&mut conn, ids[3]).await;
    assert_eq!(fourth.kind, "d.fourth");
    assert_eq!(fourth.priority, 2);
    assert_eq!(fourth.max_attempts, 4);

    assert_eq!(job_count(&mut conn).await, 4);

    // An empty array enqueues nothing.
    let none = sql_ids(&mut conn, "SELECT * FROM bosun.enqueue_many('[]')").await;
    assert!(none.is_empty());
    assert_eq!(job_count(&mut conn).await, 4);
}

#[tokio::test]
async fn enqueue_many_reuses_unique_keys_within_the_batch_and_against_existing_rows() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let existing = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('sync', '{\"v\":0}', unique_key => 'k-old')",
    )
    .await;
    let ids = sql_ids(
        &mut conn,
        r#"SELECT id FROM bosun.enqueue_many('[
              {"kind": "sync", "unique_key": "k-old", "args": {"v": 1}},
              {"kind": "sync", "unique_key": "k-new", "args": {"v": 2}},
              {"kind": "sync", "unique_key": "k-new", "args": {"v": 3}},
              {"kind": "plain", "args": {"v": 4}},
              {"kind": "sync", "unique_key": "k-old", "args": {"v": 5}}
           ]') WITH ORDINALITY AS t(id, ord) ORDER BY ord"#,
    )
    .await;
    assert_eq!(ids.len(), 5, "one id per input job");
    assert_eq!(ids[0], existing, "a key that existed returns that job");
    assert_eq!(ids[4], existing);
    assert_ne!(ids[1], existing);
    assert_eq!(
        ids[2], ids[1],
        "a key repeated in the batch returns the first"
    );
    assert!(ids[3] != ids[1] && ids[3] != existing);
    assert_eq!(job_count(&mut conn).await, 3, "two new rows, no duplicates");

    assert_eq!(job_row(&mut conn, existing).await.args, json!({"v": 0}));
    assert_eq!(job_row(&mut conn, ids[1]).await.args, json!({"v": 2}));
    assert_eq!(job_row(&mut conn, ids[3]).await.args, json!({"v": 4}));
}

#[tokio::test]
async fn enqueue_arrays_reports_what_it_inserted() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let existing = sql_id(&mut conn, "SELECT bosun.enqueue('x', unique_key => 'k')").await;
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        r#"SELECT id, inserted FROM bosun.enqueue_arrays(
               ARRAY['a', 'b', 'c', 'd'],
               queues => ARRAY['q1', NULL, 'q2', NULL],
               priorities => ARRAY[1, NULL, NULL, NULL],
               unique_keys => ARRAY[NULL, 'k', 'n', 'n'],
               tag_lists => ARRAY['["t"]'::jsonb, NULL, NULL, NULL])"#,
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].1);
    assert_eq!(rows[1], (existing, false));
    assert!(rows[2].1);
    assert_eq!(rows[3], (rows[2].0, false));
    assert!(rows[0].0 < rows[2].0);
    assert_eq!(job_count(&mut conn).await, 3);

    let a = job_row(&mut conn, rows[0].0).await;
    assert_eq!(
        (
            a.kind.as_str(),
            a.queue.as_str(),
            a.priority,
            a.tags.clone()
        ),
        ("a", "q1", 1, vec!["t".to_string()])
    );
    let c = job_row(&mut conn, rows[2].0).await;
    assert_eq!(
        (c.kind.as_str(), c.queue.as_str(), c.priority),
        ("c", "q2", 0)
    );
    assert!(c.tags.is_empty());
}

// ---- bad input, from raw SQL ----

#[tokio::test]
async fn bad_enqueue_arguments_are_rejected_and_nothing_is_written() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(&mut conn, "SELECT bosun.enqueue('existing')").await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT bosun.enqueue('bad kind!')",
            "22023",
            &["bosun.enqueue", "kind 'bad kind!' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('')",
            "22023",
            &["bosun.enqueue", "kind '' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('.starts-with-dot')",
            "22023",
            &["kind '.starts-with-dot' is invalid"],
        ),
        (
            "SELECT bosun.enqueue(repeat('k', 129))",
            "22023",
            &["kind 'kkk", "is invalid"],
        ),
        (
            "SELECT bosun.enqueue('x', '[1, 2]')",
            "22023",
            &["bosun.enqueue", "args must be a JSON object, got array"],
        ),
        (
            "SELECT bosun.enqueue('x', '\"text\"')",
            "22023",
            &["args must be a JSON object, got string"],
        ),
        (
            "SELECT bosun.enqueue('x', queue => 'no spaces')",
            "22023",
            &["bosun.enqueue", "queue 'no spaces' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('x', queue => '')",
            "22023",
            &["queue '' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('x', priority => 40000)",
            "22023",
            &["bosun.enqueue", "priority", "40000"],
        ),
        (
            "SELECT bosun.enqueue('x', priority => -32769)",
            "22023",
            &["priority", "-32769"],
        ),
        (
            "SELECT bosun.enqueue('x', max_attempts => 0)",
            "22023",
            &["bosun.enqueue", "max_attempts must be at least 1, got 0"],
        ),
        (
            "SELECT bosun.enqueue('x', NULL)",
            "22004",
            &["bosun.enqueue", "args must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', queue => NULL)",
            "22004",
            &["bosun.enqueue", "queue must not be null"],
        ),
        (
            "SELECT bosun.enqueue(NULL)",
            "22004",
            &["bosun.enqueue", "kind must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', priority => NULL)",
            "22004",
            &["priority must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', scheduled_at => NULL)",
            "22004",
            &["scheduled_at must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', max_attempts => NULL)",
            "22004",
            &["max_attempts must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', tags => NULL)",
            "22004",
            &["tags must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', meta => NULL)",
            "22004",
            &["meta must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', tags => ARRAY['ok', ''])",
            "22023",
            &[
                "bosun.enqueue",
                "tags must be strings of 1 to 255 characters",
            ],
        ),
        (
            "SELECT bosun.enqueue('x', tags => ARRAY['ok', NULL])",
            "22023",
            &["tags must be strings"],
        ),
        (
            "SELECT bosun.enqueue('x', tags => ARRAY[repeat('t', 256)])",
            "22023",
            &["tags must be strings"],
        ),
        (
            "SELECT bosun.enqueue('x', unique_key => '')",
            "22023",
            &["unique_key must be 1 to 255 characters, got 0"],
        ),
        (
            "SELECT bosun.enqueue('x', target => repeat('t', 256))",
            "22023",
            &["target must be 1 to 255 characters, got 256"],
        ),
        (
            "SELECT bosun.enqueue('x', meta => '[]')",
            "22023",
            &["meta must be a JSON object, got array"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 1);
}

#[tokio::test]
async fn bad_enqueue_many_input_is_rejected_and_nothing_is_written() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(&mut conn, "SELECT bosun.enqueue('existing')").await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            r#"SELECT * FROM bosun.enqueue_many('{"kind": "x"}')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs must be a JSON array",
                "got object",
            ],
        ),
        (
            "SELECT * FROM bosun.enqueue_many(NULL)",
            "22004",
            &["bosun.enqueue_many", "jobs must not be null"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, 5]')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs[2] must be an object, got number",
            ],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "prioirty": 1}]')"#,
            "22023",
            &["bosun.enqueue_many", "jobs[1] has unknown field 'prioirty'"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "priority": "high"}]')"#,
            "22023",
            &["jobs[1] has priority of JSON type string, expected number"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": 7}]')"#,
            "22023",
            &["jobs[1] has kind of JSON type number, expected string"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "args": [1]}]')"#,
            "22023",
            &["jobs[1] has args of JSON type array, expected object"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "tags": "t"}]')"#,
            "22023",
            &["jobs[1] has tags of JSON type string, expected array"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b", "priority": 1.5}]')"#,
            "22023",
            &["jobs[2] has priority 1.5, expected a whole number"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "max_attempts": 1e12}]')"#,
            "22023",
            &["jobs[1] has max_attempts", "expected a whole number"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b", "scheduled_at": "next tuesday-ish"}]')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs[2].scheduled_at 'next tuesday-ish' is not a timestamp",
            ],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "scheduled_at": "2030-02-31T00:00:00Z"}]')"#,
            "22023",
            &["jobs[1].scheduled_at '2030-02-31T00:00:00Z' is not a timestamp"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "scheduled_at": "2030-01-01 10:00 Mars/Olympus"}]')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs[1].scheduled_at",
                "is not a timestamp",
            ],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b", "queue": "bad queue"}, {"kind": "c"}]')"#,
            "22023",
            &["bosun.enqueue_many", "jobs[2].queue 'bad queue' is invalid"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b"}, {"kind": "c", "max_attempts": 0}]')"#,
            "22023",
            &["jobs[3].max_attempts must be at least 1, got 0"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "priority": 40000}]')"#,
            "22023",
            &["jobs[1].priority must be between -32768 and 32767, got 40000"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"args": {}}]')"#,
            "22023",
            &["jobs[1].kind must not be null"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 1);
}

#[tokio::test]
async fn bad_enqueue_arrays_input_is_rejected() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT * FROM bosun.enqueue_arrays(ARRAY['a', 'b'], queues => ARRAY['q'])",
            "22023",
            &[
                "bosun.enqueue_arrays",
                "queues has 1 elements but kinds has 2",
            ],
        ),
        (
            "SELECT * FROM bosun.enqueue_arrays(NULL)",
            "22004",
            &["bosun.enqueue_arrays", "kinds must not be null"],
        ),
        (
            "SELECT * FROM bosun.enqueue_arrays(ARRAY['a', 'b c', 'd'])",
            "22023",
            &["bosun.enqueue_arrays", "jobs[2].kind 'b c' is invalid"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 0);
}
