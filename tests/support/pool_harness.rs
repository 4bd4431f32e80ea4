//! The harness of the worker pool tests (`worker_pool_*.rs`): a pool builder that polls
//! quickly, short ways to enqueue and read jobs, waiting for a pool to LISTEN, and the job
//! kinds and workers those tests share (a recorder, an order log, and `test.behave`, whose
//! args say how the attempt ends).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bosun_queue::{Client, Job, JobArgs, NewJob};
use bosun_workers::{JobContext, JobError, JobResult, Worker, WorkerPool};
use serde::{Deserialize, Serialize};

use crate::{eventually, RunningPool as Running, TestDb};

/// How long to wait for something that normally takes well under a second.
pub const WAIT: Duration = Duration::from_secs(10);

/// A builder with a 100 ms poll interval.
pub fn pool(client: &Client) -> bosun_workers::PoolBuilder {
    WorkerPool::builder(client.clone()).poll_interval(Duration::from_millis(100))
}

pub async fn job(client: &Client, id: i64) -> Job {
    client.job_get(id).await.unwrap()
}

pub async fn enqueue(client: &Client, job: NewJob) -> i64 {
    client.enqueue(job).await.unwrap().id
}

pub fn behave(what: &Behave) -> NewJob {
    NewJob::from_args(what).unwrap()
}

/// Connections of this database that have LISTENed on Bosun's channels and wait, idle.
pub async fn listeners(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle'
           AND query LIKE '%LISTEN \"bosun_jobs\"%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Wait until a pool's notifier listens, so a notification sent from now on reaches it.
pub async fn wait_listening(db: &TestDb) {
    eventually(WAIT, "the pool to LISTEN", || async {
        (listeners(db).await > 0).then_some(())
    })
    .await;
}

/// The `errors` column must hold exactly the entries `attempt_errors` parsed: none skipped.
pub fn raw_error_count(job: &Job) -> usize {
    job.errors.as_array().expect("errors is an array").len()
}

#[derive(Serialize, Deserialize)]
pub struct Record {
    pub n: i64,
}

impl JobArgs for Record {
    const KIND: &'static str = "test.record";
}

/// Writes one row per run into `runs` (created by the test).
pub struct Recorder;

impl Worker for Recorder {
    type Args = Record;
    async fn work(&self, ctx: JobContext, _args: Record) -> JobResult {
        sqlx::query("INSERT INTO runs (job_id, attempt, worker) VALUES ($1, $2, $3)")
            .bind(ctx.id())
            .bind(ctx.attempt())
            .bind(ctx.worker_id())
            .execute(ctx.client().pool())
            .await?;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
pub struct Order {
    pub label: String,
}

impl JobArgs for Order {
    const KIND: &'static str = "test.order";
}

/// Appends each job's label, in the order the jobs ran.
pub struct OrderWorker(pub Arc<Mutex<Vec<String>>>);

impl Worker for OrderWorker {
    type Args = Order;
    async fn work(&self, _ctx: JobContext, args: Order) -> JobResult {
        self.0.lock().unwrap().push(args.label);
        Ok(())
    }
}

/// A pool running `test.order` jobs on `concurrency` slots of the default queue, and the
/// labels of the jobs it ran, in order.
pub fn start_order_pool(db: &TestDb, concurrency: usize) -> (Arc<Mutex<Vec<String>>>, Running) {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let running = Running::start(
        pool(&db.client)
            .register(OrderWorker(Arc::clone(&ran)))
            .queue("default", concurrency)
            .build()
            .unwrap(),
    );
    (ran, running)
}

/// What the `test.behave` worker should do.
#[derive(Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Behave {
    Ok,
    Fail {
        message: String,
    },
    Permanent {
        message: String,
    },
    Panic,
    Cancel,
    SnoozeOnce {
        ms: u64,
    },
    Sleep {
        ms: u64,
    },
    /// Wait for `ctx.cancelled()`, note when it came, then claim success: a write that must be
    /// fenced out when the cancel came from an operator.
    CompleteOnCancel,
    /// Wait for `ctx.cancelled()`, note it, then give up with a retryable error.
    FailOnCancel,
}

impl JobArgs for Behave {
    const KIND: &'static str = "test.behave";
}

#[derive(Default)]
pub struct Behaver {
    /// Jobs whose handler saw `ctx.cancelled()` resolve, and when.
    pub saw_cancel: Arc<Mutex<Vec<(i64, Instant)>>>,
}

impl Behaver {
    async fn wait_for_cancel(&self, ctx: &JobContext) -> bool {
        tokio::select! {
            () = ctx.cancelled() => {
                self.saw_cancel.lock().unwrap().push((ctx.id(), Instant::now()));
                true
            }
            () = tokio::time::sleep(Duration::from_secs(30)) => false,
        }
    }
}

impl Worker for Behaver {
    type Args = Behave;
    async fn work(&self, ctx: JobContext, args: Behave) -> JobResult {
        match args {
            Behave::Ok => Ok(()),
            Behave::Fail { message } => Err(JobError::retry(message)),
            Behave::Permanent { message } => Err(JobError::permanent(message)),
            Behave::Panic => panic!("handler blew up"),
            Behave::Cancel => Err(JobError::cancel("not needed any more")),
            Behave::SnoozeOnce { ms } if ctx.attempt() == 1 => {
                Err(JobError::snooze(Duration::from_millis(ms)))
            }
            Behave::SnoozeOnce { .. } => Ok(()),
            Behave::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Behave::CompleteOnCancel => {
                self.wait_for_cancel(&ctx).await;
                Ok(())
            }
            Behave::FailOnCancel => {
                if self.wait_for_cancel(&ctx).await {
                    Err(JobError::retry("interrupted"))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn backoff(&self, _job: &Job) -> Duration {
        Duration::from_millis(200)
    }
}
