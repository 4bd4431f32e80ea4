//! The helpers Bosun gives users' own tests hold what they promise: `bosun_queue::testing`
//! finds enqueued jobs by kind, queue and args containment and its assertions fail with the
//! jobs listed; `bosun_workers::testing` runs a handler inline writing nothing, and
//! `drain_queue` runs a queue dry through a real pool and counts each outcome.

use std::time::Duration;

use bosun_queue::{
    testing::{assert_enqueued, enqueued, refute_enqueued, JobMatch},
    Job, JobArgs, NewJob,
};
use bosun_tests::{
    force_state,
    pool_harness::{behave, Behave, Behaver, Record},
    snapshot, TestDb,
};
use bosun_workers::{
    testing::{claimed_job, drain_queue, perform_claimed, perform_job, Drained},
    JobContext, JobError, JobResult, Registry, Worker,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The panic message of `future`, run on a task of its own; panics if it did not panic.
async fn panic_message<F>(future: F) -> String
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Err(failed) = tokio::spawn(future).await else {
        panic!("the assertion should fail");
    };
    let payload = failed.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .expect("a panic message")
}

#[tokio::test]
async fn enqueued_matches_kind_queue_and_args_by_containment_among_waiting_jobs() {
    let db = TestDb::new().await;
    let mail = db
        .client
        .enqueue(
            NewJob::new("email.send", json!({"to": "a@b.c", "lang": {"code": "fr"}})).queue("mail"),
        )
        .await
        .unwrap()
        .id;
    let later = db
        .client
        .enqueue(
            NewJob::new("email.send", json!({"to": "x@y.z"}))
                .scheduled_at(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await
        .unwrap()
        .id;
    let done = db
        .client
        .enqueue(NewJob::new("email.send", json!({"to": "done@b.c"})))
        .await
        .unwrap()
        .id;
    force_state(&db.pool, done, "completed", 1).await;
    let running = db
        .client
        .enqueue(NewJob::new("email.send", json!({"to": "run@b.c"})))
        .await
        .unwrap()
        .id;
    force_state(&db.pool, running, "running", 1).await;

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = enqueued(db.client.db(), &JobMatch::default())
        .await
        .unwrap();
    assert_eq!(
        ids(all),
        [mail, later],
        "scheduled and available wait; others do not"
    );
    let kind = JobMatch::kind("email.send");
    assert_eq!(
        ids(enqueued(db.client.db(), &kind).await.unwrap()),
        [mail, later]
    );
    assert_eq!(
        ids(enqueued(db.client.db(), &kind.clone().queue("mail"))
            .await
            .unwrap()),
        [mail]
    );
    let nested = kind.clone().args(json!({"lang": {"code": "fr"}}));
    assert_eq!(ids(assert_enqueued(db.client.db(), &nested).await), [mail]);
    refute_enqueued(
        db.client.db(),
        &kind.clone().args(json!({"lang": {"code": "de"}})),
    )
    .await;
    refute_enqueued(
        db.client.db(),
        &kind.clone().args(json!({"to": "done@b.c"})),
    )
    .await;
    refute_enqueued(db.client.db(), &JobMatch::kind("email.other")).await;

    // A transaction sees the jobs it enqueued before it commits; others do not.
    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .enqueue_tx(&mut tx, NewJob::new("tx.job", json!({"n": 1})))
        .await
        .unwrap();
    assert_enqueued(&mut *tx, &JobMatch::kind("tx.job")).await;
    refute_enqueued(db.client.db(), &JobMatch::kind("tx.job")).await;
    tx.rollback().await.unwrap();
}

#[derive(Debug, Serialize, Deserialize)]
struct Welcome {
    user: i64,
}

impl JobArgs for Welcome {
    const KIND: &'static str = "welcome";
}

#[tokio::test]
async fn a_failed_assert_enqueued_lists_the_jobs_that_were_enqueued() {
    let db = TestDb::new().await;
    let message = panic_message({
        let client = db.client.clone();
        async move { assert_enqueued(client.db(), &JobMatch::kind("welcome")).await }
    })
    .await;
    assert!(
        message.contains(r#"expected an enqueued job matching kind "welcome", found none"#)
            && message.contains("no job is enqueued"),
        "{message}"
    );

    let other = db.client.enqueue(Welcome { user: 7 }).await.unwrap().id;
    let message = panic_message({
        let client = db.client.clone();
        async move { assert_enqueued(client.db(), &JobMatch::args_of(&Welcome { user: 8 })).await }
    })
    .await;
    assert!(
        message.contains(r#"matching kind "welcome", args containing {"user":8}, found none"#)
            && message.contains(&format!(
                r#"job {other}: kind "welcome", queue "default", available, args {{"user":7}}"#
            )),
        "{message}"
    );
    assert_enqueued(db.client.db(), &JobMatch::args_of(&Welcome { user: 7 })).await;
}

#[tokio::test]
async fn a_failed_refute_enqueued_lists_the_jobs_that_match() {
    let db = TestDb::new().await;
    refute_enqueued(db.client.db(), &JobMatch::of::<Welcome>()).await;
    let first = db.client.enqueue(Welcome { user: 1 }).await.unwrap().id;
    let second = db.client.enqueue(Welcome { user: 2 }).await.unwrap().id;
    let unrelated = db
        .client
        .enqueue(NewJob::new("other", json!({})))
        .await
        .unwrap()
        .id;
    let message = panic_message({
        let client = db.client.clone();
        async move { refute_enqueued(client.db(), &JobMatch::of::<Welcome>()).await }
    })
    .await;
    assert!(
        message.contains(r#"expected no enqueued job matching kind "welcome", found 2"#)
            && message.contains(&format!("job {first}: "))
            && message.contains(&format!("job {second}: "))
            && !message.contains(&format!("job {unrelated}: ")),
        "{message}"
    );
}

/// Says what its context held, through the result: an error naming the attempt, worker and
/// queue unless the args ask for success.
struct Introspect;

#[derive(Serialize, Deserialize)]
struct Look {
    succeed: bool,
}

impl JobArgs for Look {
    const KIND: &'static str = "test.look";
}

impl Worker for Introspect {
    type Args = Look;
    async fn work(&self, ctx: JobContext, args: Look) -> JobResult {
        if args.succeed && !ctx.is_cancelled() {
            return Ok(());
        }
        Err(JobError::permanent(format!(
            "attempt {} by {} on {} of {}",
            ctx.attempt(),
            ctx.worker_id(),
            ctx.job().queue,
            ctx.job().kind
        )))
    }
}

#[tokio::test]
async fn perform_job_returns_the_handlers_result_and_writes_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    db.client.enqueue(Welcome { user: 1 }).await.unwrap();
    let before = snapshot(&mut conn).await;

    assert!(perform_job(&db.client, &Introspect, Look { succeed: true })
        .await
        .is_ok());
    match perform_job(&db.client, &Introspect, Look { succeed: false }).await {
        Err(JobError::Permanent(e)) => {
            assert_eq!(
                e.to_string(),
                "attempt 1 by testing on default of test.look"
            );
        }
        other => panic!("expected the handler's permanent error, got {other:?}"),
    }
    let mut third = claimed_job(&Look { succeed: false });
    third.attempt = 3;
    third.queue = "slow".into();
    match perform_claimed(&db.client, &Introspect, third).await {
        Err(JobError::Permanent(e)) => {
            assert_eq!(e.to_string(), "attempt 3 by testing on slow of test.look");
        }
        other => panic!("expected the handler's permanent error, got {other:?}"),
    }
    // Args that do not decode end the attempt as in the pool, without running the handler.
    let mut bad = claimed_job(&Look { succeed: true });
    bad.args = json!({"succeed": "yes"});
    match perform_claimed(&db.client, &Introspect, bad).await {
        Err(JobError::Retry(e)) => {
            assert!(
                e.to_string()
                    .contains("could not decode args for kind test.look"),
                "{e}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_eq!(snapshot(&mut conn).await, before, "nothing was written");
}

/// Always fails, and would retry only in an hour.
struct FailsSlowly;

impl Worker for FailsSlowly {
    type Args = Record;
    async fn work(&self, _ctx: JobContext, _args: Record) -> JobResult {
        Err(JobError::retry("not yet"))
    }

    fn backoff(&self, _job: &Job) -> Duration {
        Duration::from_secs(3600)
    }
}

#[tokio::test]
async fn drain_queue_runs_every_due_job_and_counts_each_outcome() {
    let db = TestDb::new().await;
    let enqueue = |job: NewJob| {
        let client = db.client.clone();
        async move { client.enqueue(job).await.unwrap().id }
    };
    for _ in 0..3 {
        enqueue(behave(&Behave::Ok)).await;
    }
    enqueue(behave(&Behave::Permanent {
        message: "no".into(),
    }))
    .await;
    enqueue(behave(&Behave::Cancel)).await;
    enqueue(behave(&Behave::SnoozeOnce { ms: 3_600_000 })).await;
    // Fails and retries in an hour; out of attempts, fails for good.
    enqueue(NewJob::from_args(&Record { n: 1 }).unwrap()).await;
    enqueue(NewJob::from_args(&Record { n: 2 }).unwrap().max_attempts(1)).await;
    // Left alone: another queue, a job for later, a kind the registry does not run.
    let elsewhere = enqueue(behave(&Behave::Ok).queue("other")).await;
    let later =
        enqueue(behave(&Behave::Ok).scheduled_at(chrono::Utc::now() + chrono::Duration::hours(1)))
            .await;
    let unknown = enqueue(NewJob::new("test.unknown", json!({}))).await;

    let mut registry = Registry::new();
    registry.register(Behaver::default()).register(FailsSlowly);
    let drained = drain_queue(&db.client, &registry, "default").await;
    assert_eq!(
        drained,
        Drained {
            completed: 3,
            retryable: 1,
            failed: 2,
            cancelled: 1,
            snoozed: 1,
        }
    );
    for id in [elsewhere, later, unknown] {
        let job = db.client.job_get(id).await.unwrap();
        assert_eq!(job.attempt, 0, "job {id} ({}) was not run", job.kind);
    }
    // Nothing left to run: a second drain runs nothing.
    assert_eq!(
        drain_queue(&db.client, &registry, "default").await,
        Drained::default()
    );
}

#[tokio::test]
async fn drain_queue_runs_the_jobs_its_handlers_enqueue() {
    let db = TestDb::new().await;
    struct Chain;
    #[derive(Serialize, Deserialize)]
    struct Link {
        left: u32,
    }
    impl JobArgs for Link {
        const KIND: &'static str = "test.link";
    }
    impl Worker for Chain {
        type Args = Link;
        async fn work(&self, ctx: JobContext, args: Link) -> JobResult {
            if args.left > 0 {
                ctx.client()
                    .enqueue(Link {
                        left: args.left - 1,
                    })
                    .await?;
            }
            Ok(())
        }
    }
    db.client.enqueue(Link { left: 4 }).await.unwrap();
    let mut registry = Registry::new();
    registry.register(Chain);
    let drained = drain_queue(&db.client, &registry, "default").await;
    assert_eq!(
        drained,
        Drained {
            completed: 5,
            ..Drained::default()
        }
    );
    refute_enqueued(db.client.db(), &JobMatch::of::<Link>()).await;
}
