//! The Rust client on top of the SQL API: enqueue (one, many, typed, in a transaction) writes
//! every field as given, bad input gives typed errors and writes nothing, operator calls give
//! typed errors, and the job listing filters newest first.

use bosun_queue::{
    testing::{assert_enqueued, refute_enqueued, JobMatch},
    Enqueued, Error, JobArgs, JobFilter, JobOptions, JobState, NewJob,
};
use bosun_tests::force_state;
use bosun_tests::raw_sql::{db_clock, job_count, job_row};
use bosun_tests::{state_counts, TestDb};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SendEmail {
    to: String,
    subject: String,
}

impl JobArgs for SendEmail {
    const KIND: &'static str = "email.send";

    fn options() -> JobOptions {
        JobOptions {
            queue: Some("mail".into()),
            priority: Some(-5),
            max_attempts: Some(7),
        }
    }
}

// ---- the Rust client ----

#[tokio::test]
async fn client_enqueue_tx_follows_the_transaction() {
    let db = TestDb::new().await;

    let mut tx = db.pool.begin().await.unwrap();
    let rolled_back = db
        .client
        .enqueue_tx(&mut tx, NewJob::new("tx.job", json!({"n": 1})))
        .await
        .unwrap();
    assert!(rolled_back.inserted);
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1, "visible inside the transaction");
    assert_enqueued(&mut *tx, &JobMatch::kind("tx.job").args(json!({"n": 1}))).await;
    tx.rollback().await.unwrap();
    refute_enqueued(db.client.db(), &JobMatch::kind("tx.job")).await;
    assert!(
        state_counts(&db.pool).await.is_empty(),
        "no job after rollback"
    );
    assert!(matches!(
        db.client.job_get(rolled_back.id).await,
        Err(Error::NotFound(_))
    ));

    let mut tx = db.pool.begin().await.unwrap();
    let committed = db
        .client
        .enqueue_tx(&mut tx, NewJob::new("tx.job", json!({"n": 2})))
        .await
        .unwrap();
    assert!(
        state_counts(&db.pool).await.is_empty(),
        "not visible before commit"
    );
    tx.commit().await.unwrap();
    let job = db.client.job_get(committed.id).await.unwrap();
    assert_eq!(job.args, json!({"n": 2}));
    assert_eq!(job.state, JobState::Available);
    assert_eq!(
        state_counts(&db.pool).await.into_iter().collect::<Vec<_>>(),
        vec![("available".to_string(), 1)]
    );

    // enqueue_many_tx too.
    let mut tx = db.pool.begin().await.unwrap();
    let many = db
        .client
        .enqueue_many_tx(
            &mut tx,
            [NewJob::new("a", json!({})), NewJob::new("b", json!({}))],
        )
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(state_counts(&db.pool).await.get("available"), Some(&1));
    refute_enqueued(db.client.db(), &JobMatch::kind("a")).await;
    refute_enqueued(db.client.db(), &JobMatch::kind("b")).await;
}

#[tokio::test]
async fn client_unique_key_returns_the_existing_job() {
    let db = TestDb::new().await;

    let first = db
        .client
        .enqueue(NewJob::new("sync", json!({"v": 1})).unique_key("sync-7"))
        .await
        .unwrap();
    assert!(first.inserted);
    let second = db
        .client
        .enqueue(
            NewJob::new("sync", json!({"v": 2}))
                .unique_key("sync-7")
                .queue("other"),
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        Enqueued {
            inserted: false,
            id: first.id
        }
    );
    let job = db.client.job_get(first.id).await.unwrap();
    assert_eq!(job.args, json!({"v": 1}));
    assert_eq!(job.queue, "default");

    // Within one batch, and against the existing row.
    let results = db
        .client
        .enqueue_many([
            NewJob::new("sync", json!({})).unique_key("sync-8"),
            NewJob::new("sync", json!({})).unique_key("sync-7"),
            NewJob::new("sync", json!({})).unique_key("sync-8"),
        ])
        .await
        .unwrap();
    assert!(results[0].inserted);
    assert_eq!(
        results[1],
        Enqueued {
            inserted: false,
            id: first.id
        }
    );
    assert_eq!(
        results[2],
        Enqueued {
            inserted: false,
            id: results[0].id
        }
    );
    assert_eq!(state_counts(&db.pool).await.get("available"), Some(&2));
}

#[tokio::test]
async fn client_enqueue_many_of_1000_keeps_input_order() {
    let db = TestDb::new().await;

    let jobs: Vec<NewJob> = (0..1000)
        .map(|n| {
            NewJob::new("bulk", json!({ "n": n })).queue(if n % 2 == 0 { "even" } else { "odd" })
        })
        .collect();
    let results = db.client.enqueue_many(jobs).await.unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r.inserted));
    assert!(
        results.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in input order"
    );

    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, (args->>'n')::bigint, queue FROM bosun.jobs")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1000);
    let by_id: HashMap<i64, (i64, String)> =
        rows.into_iter().map(|(id, n, q)| (id, (n, q))).collect();
    for (n, result) in (0_i64..).zip(&results) {
        let (stored_n, queue) = &by_id[&result.id];
        assert_eq!(*stored_n, n, "result {n} is the id of input {n}");
        assert_eq!(queue, if n % 2 == 0 { "even" } else { "odd" });
    }

    // An empty batch is fine and writes nothing.
    assert!(db
        .client
        .enqueue_many(Vec::<NewJob>::new())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn client_typed_args_use_their_options() {
    let db = TestDb::new().await;
    let email = SendEmail {
        to: "a@b.c".into(),
        subject: "hi".into(),
    };

    let enqueued = db.client.enqueue(email.clone()).await.unwrap();
    let job = db.client.job_get(enqueued.id).await.unwrap();
    assert_eq!(job.kind, "email.send");
    assert_eq!(job.queue, "mail");
    assert_eq!(job.priority, -5);
    assert_eq!(job.max_attempts, 7);
    assert_eq!(
        serde_json::from_value::<SendEmail>(job.args).unwrap(),
        email
    );

    // A builder call overrides the kind's options.
    let urgent = NewJob::from_args(&email).unwrap().queue("urgent");
    let id = db.client.enqueue(urgent).await.unwrap().id;
    let job = db.client.job_get(id).await.unwrap();
    assert_eq!((job.queue.as_str(), job.priority), ("urgent", -5));
    let urgent = assert_enqueued(db.client.db(), &JobMatch::args_of(&email).queue("urgent")).await;
    assert_eq!(urgent.len(), 1, "only the overridden job waits in urgent");

    // Typed jobs in a batch.
    let results = db
        .client
        .enqueue_many(vec![email.clone(), email.clone()])
        .await
        .unwrap();
    for r in results {
        assert_eq!(db.client.job_get(r.id).await.unwrap().queue, "mail");
    }
}

#[tokio::test]
async fn client_bad_input_gives_typed_errors_and_writes_nothing() {
    let db = TestDb::new().await;

    let err = db
        .client
        .enqueue(NewJob::new("bad kind!", json!({})))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidArgument(msg) => assert!(msg.contains("kind"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let err = db
        .client
        .enqueue(NewJob::new("ok", json!({})).max_attempts(0))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidArgument(msg) => {
            assert!(msg.contains("max_attempts must be at least 1"), "{msg}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let err = db
        .client
        .enqueue(NewJob::new("ok", json!([1])))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidArgument(msg) => assert!(msg.contains("args must be a JSON object"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let err = db
        .client
        .enqueue(NewJob::new("ok", json!({})).queue("bad queue"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.contains("queue 'bad queue'")),
        "{err:?}"
    );

    // One bad job in a batch: none written, and the message names it.
    let err = db
        .client
        .enqueue_many([
            NewJob::new("ok", json!({})),
            NewJob::new("ok", json!({})),
            NewJob::new("no good", json!({})),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.contains("jobs[3].kind")),
        "{err:?}"
    );

    assert!(
        state_counts(&db.pool).await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn client_operator_errors_are_typed() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let running = db
        .client
        .enqueue(NewJob::new("r", json!({})))
        .await
        .unwrap()
        .id;
    force_state(&mut conn, running, "running", 1).await;
    let completed = db
        .client
        .enqueue(NewJob::new("c", json!({})))
        .await
        .unwrap()
        .id;
    force_state(&mut conn, completed, "completed", 1).await;

    let err = db.client.retry_job(running).await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongState(msg) if msg.contains("is running")),
        "{err:?}"
    );
    let err = db.client.cancel_job(completed).await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongState(msg) if msg.contains("already completed")),
        "{err:?}"
    );
    let err = db.client.cancel_job(999_999).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound(msg) if msg.contains("999999")),
        "{err:?}"
    );
    assert!(matches!(
        db.client.retry_job(999_999).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.client.reschedule_job(999_999, Utc::now()).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.client.job_get(999_999).await,
        Err(Error::NotFound(_))
    ));
    let err = db
        .client
        .retry_jobs(None, None, JobState::Running)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let err = db.client.pause_queue("bad name").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");

    // The jobs are as they were.
    assert_eq!(
        db.client.job_get(running).await.unwrap().state,
        JobState::Running
    );
    assert_eq!(
        db.client.job_get(completed).await.unwrap().state,
        JobState::Completed
    );

    // And the good paths through the client.
    let retried = db.client.retry_job(completed).await.unwrap();
    assert_eq!(retried.state, JobState::Available);
    let cancelled = db.client.cancel_job(running).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let moved = db
        .client
        .retry_jobs(None, None, JobState::Cancelled)
        .await
        .unwrap();
    assert_eq!(
        moved.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![running]
    );
    let paused = db.client.pause_queue("default").await.unwrap();
    assert!(paused.paused);
    assert!(!db.client.resume_queue("default").await.unwrap().paused);
}

#[tokio::test]
async fn client_job_list_filters_newest_first() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let mut ids = Vec::new();
    for (kind, queue) in [
        ("a", "q1"),
        ("b", "q1"),
        ("a", "q2"),
        ("a", "q1"),
        ("a", "q1"),
    ] {
        let id = db
            .client
            .enqueue(NewJob::new(kind, json!({})).queue(queue))
            .await
            .unwrap()
            .id;
        ids.push(id);
    }
    let [j1, j2, j3, j4, j5] = ids[..] else {
        unreachable!()
    };
    force_state(&mut conn, j4, "failed", 1).await;

    let list = |filter: JobFilter| {
        let client = db.client.clone();
        async move {
            client
                .job_list(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(JobFilter::default()).await, vec![j5, j4, j3, j2, j1]);
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Available),
            ..Default::default()
        })
        .await,
        vec![j5, j3, j2, j1]
    );
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Failed),
            ..Default::default()
        })
        .await,
        vec![j4]
    );
    assert_eq!(
        list(JobFilter {
            queue: Some("q1".into()),
            ..Default::default()
        })
        .await,
        vec![j5, j4, j2, j1]
    );
    assert_eq!(
        list(JobFilter {
            queue: Some("q1".into()),
            kind: Some("a".into()),
            ..Default::default()
        })
        .await,
        vec![j5, j4, j1]
    );
    assert_eq!(
        list(JobFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        vec![j5, j4]
    );
    assert_eq!(
        list(JobFilter {
            before_id: Some(j4),
            ..Default::default()
        })
        .await,
        vec![j3, j2, j1]
    );
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Available),
            queue: Some("q1".into()),
            kind: Some("a".into()),
            before_id: Some(j5),
            limit: Some(10),
        })
        .await,
        vec![j1]
    );
    assert!(list(JobFilter {
        kind: Some("nothing".into()),
        ..Default::default()
    })
    .await
    .is_empty());

    for limit in [0, -1] {
        let err = db
            .client
            .job_list(&JobFilter {
                limit: Some(limit),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(msg) if msg.contains("limit")),
            "{err:?}"
        );
    }
}

/// A batch large enough for the client's COPY path, every optional field set: each job reads
/// back exactly as given, args and tags with characters a text format would have to escape.
#[tokio::test]
async fn client_bulk_enqueue_writes_every_field_as_given() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let now = db_clock(&mut conn).await;
    let later = now + chrono::Duration::hours(1);
    let tricky = "tab\there, newline\nthere, back\\slash, \"quoted\", \u{e9}t\u{e9} \u{1f600}";
    let jobs: Vec<NewJob> = (0..300_i32)
        .map(|n| {
            let mut job = NewJob::new(format!("bulk.k{}", n % 3), json!({"n": n, "s": tricky}))
                .queue(format!("q{}", n % 2))
                .priority(i16::try_from(n % 7).unwrap() - 3)
                .max_attempts(n % 5 + 1)
                .scheduled_at(if n % 4 == 0 { later } else { now })
                .meta(json!({"m": n, "s": tricky}));
            if n % 2 == 0 {
                job = job.target(format!("host-{}", n % 10));
            }
            if n % 3 == 0 {
                job = job.tags([format!("t{n}"), tricky.to_string(), "{a,b}".into()]);
            }
            job
        })
        .collect();
    let results = db.client.enqueue_many(jobs.clone()).await.unwrap();
    assert_eq!(results.len(), 300);
    assert!(results.windows(2).all(|w| w[0].id < w[1].id));
    for (n, result) in (0_i32..).zip(&results) {
        assert!(result.inserted);
        let job = job_row(&mut conn, result.id).await;
        assert_eq!(job.kind, format!("bulk.k{}", n % 3));
        assert_eq!(job.args, json!({"n": n, "s": tricky}), "args of job {n}");
        assert_eq!(job.queue, format!("q{}", n % 2));
        assert_eq!(i32::from(job.priority), n % 7 - 3);
        assert_eq!(job.max_attempts, n % 5 + 1);
        let (at, state) = if n % 4 == 0 {
            (later, JobState::Scheduled)
        } else {
            (now, JobState::Available)
        };
        assert_eq!(job.scheduled_at, at, "scheduled_at of job {n}");
        assert_eq!(job.state, state, "state of job {n}");
        assert_eq!(job.meta, json!({"m": n, "s": tricky}));
        let target = (n % 2 == 0).then(|| format!("host-{}", n % 10));
        assert_eq!(job.target, target);
        let tags: Vec<String> = if n % 3 == 0 {
            vec![format!("t{n}"), tricky.to_string(), "{a,b}".into()]
        } else {
            Vec::new()
        };
        assert_eq!(job.tags, tags, "tags of job {n}");
        assert!(job.unique_key.is_none());
    }
    let targets: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.targets")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(targets, 5, "each target was registered once");

    // A batch in which only some jobs set a field gets the defaults for the others.
    let mixed: Vec<NewJob> = (0..300)
        .map(|n| {
            let job = NewJob::new("bulk.mixed", json!({ "n": n }));
            if n % 2 == 0 {
                job.queue("set").max_attempts(3)
            } else {
                job
            }
        })
        .collect();
    let results = db.client.enqueue_many(mixed).await.unwrap();
    for (n, result) in (0..).zip(&results) {
        let job = job_row(&mut conn, result.id).await;
        assert_eq!(job.args, json!({ "n": n }));
        let expected = if n % 2 == 0 {
            ("set", 3)
        } else {
            ("default", 20)
        };
        assert_eq!((job.queue.as_str(), job.max_attempts), expected);
    }
}

/// Single enqueues name only the columns a job sets: every one of the 256 combinations of
/// the eight optional fields reads back as given, with the table's defaults for the rest,
/// and a taken unique key still returns the job that holds it.
#[tokio::test]
async fn client_single_enqueue_writes_every_combination_of_fields_as_given() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let now = db_clock(&mut conn).await;
    let later = now + chrono::Duration::hours(1);
    let tricky = "tab\there, \"quoted\", {a,b}, \u{e9}t\u{e9}";
    for set in 0_u16..256 {
        let has = |bit: u16| set & (1 << bit) != 0;
        let mut job = NewJob::new("single.k", json!({"set": set, "s": tricky}));
        if has(0) {
            job = job.queue("q1");
        }
        if has(1) {
            job = job.priority(-2);
        }
        if has(2) {
            job = job.max_attempts(3);
        }
        if has(3) {
            job = job.scheduled_at(later);
        }
        if has(4) {
            job = job.meta(json!({"m": tricky}));
        }
        if has(5) {
            job = job.target("host-1");
        }
        if has(6) {
            job = job.tags(["t", tricky]);
        }
        if has(7) {
            job = job.unique_key(format!("key-{set}"));
        }
        let enqueued = db.client.enqueue(job.clone()).await.unwrap();
        assert!(enqueued.inserted, "combination {set:#010b}");
        let row = job_row(&mut conn, enqueued.id).await;
        let what = format!("combination {set:#010b}");
        assert_eq!(row.kind, "single.k", "{what}");
        assert_eq!(row.args, json!({"set": set, "s": tricky}), "{what}");
        assert_eq!(row.queue, if has(0) { "q1" } else { "default" }, "{what}");
        assert_eq!(row.priority, if has(1) { -2 } else { 0 }, "{what}");
        assert_eq!(row.max_attempts, if has(2) { 3 } else { 20 }, "{what}");
        if has(3) {
            assert_eq!(row.scheduled_at, later, "{what}");
            assert_eq!(row.state, JobState::Scheduled, "{what}");
        } else {
            assert!(
                row.scheduled_at >= now && row.scheduled_at < later,
                "{what}"
            );
            assert_eq!(row.state, JobState::Available, "{what}");
        }
        let meta = if has(4) {
            json!({"m": tricky})
        } else {
            json!({})
        };
        assert_eq!(row.meta, meta, "{what}");
        assert_eq!(row.target.as_deref(), has(5).then_some("host-1"), "{what}");
        let tags: Vec<String> = if has(6) {
            vec!["t".into(), tricky.into()]
        } else {
            Vec::new()
        };
        assert_eq!(row.tags, tags, "{what}");
        let key = has(7).then(|| format!("key-{set}"));
        assert_eq!(row.unique_key, key, "{what}");
        if has(7) {
            let again = db.client.enqueue(job).await.unwrap();
            assert_eq!(
                again,
                Enqueued {
                    id: enqueued.id,
                    inserted: false
                },
                "{what}: a taken key returns its job"
            );
        }
    }
    assert_eq!(job_count(&mut conn).await, 256, "one row per combination");
}

/// A bad job deep in a large batch: nothing is written, the message names it by index, in
/// the client's own transaction and in the caller's.
#[tokio::test]
async fn client_bulk_enqueue_names_a_bad_job_and_writes_nothing() {
    let db = TestDb::new().await;
    let batch = |bad: Option<(usize, NewJob)>| -> Vec<NewJob> {
        let mut jobs: Vec<NewJob> = (0..400)
            .map(|n| NewJob::new("bulk", json!({ "n": n })))
            .collect();
        if let Some((index, job)) = bad {
            jobs[index] = job;
        }
        jobs
    };
    let cases = [
        (350, NewJob::new("no good", json!({})), "jobs[351].kind"),
        (9, NewJob::new("ok", json!({})).tags([""]), "jobs[10].tags"),
        (0, NewJob::new("ok", json!([1])), "jobs[1].args"),
        (
            399,
            NewJob::new("ok", json!({})).meta(json!(2)),
            "jobs[400].meta",
        ),
    ];
    for (index, job, needle) in cases {
        let err = db
            .client
            .enqueue_many(batch(Some((index, job))))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(msg) if msg.contains(needle)),
            "{needle}: {err:?}"
        );
    }
    assert!(state_counts(&db.pool).await.is_empty(), "nothing written");

    // Inside the caller's transaction: a good batch, then a bad one; the transaction is
    // aborted and rolls back both. A good batch in a committed transaction stays.
    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .enqueue_many_tx(&mut tx, batch(None))
        .await
        .unwrap();
    let bad = Some((5, NewJob::new("no good", json!({}))));
    let err = db
        .client
        .enqueue_many_tx(&mut tx, batch(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.contains("kind")),
        "{err:?}"
    );
    tx.rollback().await.unwrap();
    assert!(state_counts(&db.pool).await.is_empty(), "nothing written");

    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .enqueue_many_tx(&mut tx, batch(None))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(state_counts(&db.pool).await.get("available"), Some(&400));
}

/// One job inside the caller's transaction goes through the table's check: a bad one is a
/// typed error naming the check, and nothing is written.
#[tokio::test]
async fn client_enqueue_in_a_transaction_rejects_a_bad_job() {
    let db = TestDb::new().await;
    let cases = [
        (
            NewJob::new("ok", json!({})).max_attempts(0),
            "max_attempts_must_be_at_least_1",
        ),
        (NewJob::new("bad kind", json!({})), "kind 'bad kind'"),
        (NewJob::new("ok", json!({})).tags(["ok", ""]), "tags"),
    ];
    for (job, needle) in cases {
        let mut tx = db.pool.begin().await.unwrap();
        let err = db.client.enqueue_tx(&mut tx, job).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(msg) if msg.contains(needle)),
            "{needle}: {err:?}"
        );
        tx.rollback().await.unwrap();
    }
    // Outside a transaction the same jobs get bosun.enqueue's words.
    let err = db
        .client
        .enqueue(NewJob::new("ok", json!({})).tags(["ok", ""]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.starts_with("enqueue: tags must be")),
        "{err:?}"
    );
    assert!(state_counts(&db.pool).await.is_empty(), "nothing written");
}
