//! A worker binary of your own: define a typed job, register its worker, enqueue a few jobs
//! and work them until they are done (or until Ctrl-C).
//!
//! ```sh
//! DATABASE_URL=postgres://localhost/app cargo run -p bosun-examples --example worker
//! ```
//!
//! Behind PgBouncer in transaction mode, also set `BOSUN_POOLER=transaction`.

use std::time::Duration;

use bosun_queue::{Client, ClientOptions, JobArgs, JobFilter, JobOptions, JobState, Pooler};
use bosun_workers::{JobContext, JobError, JobResult, Worker, WorkerPool};
use serde::{Deserialize, Serialize};

/// The job: send a welcome email. Its kind and default queue are part of the type.
#[derive(Debug, Serialize, Deserialize)]
struct SendWelcome {
    user_id: i64,
    email: String,
}

impl JobArgs for SendWelcome {
    const KIND: &'static str = "example.send_welcome";

    fn options() -> JobOptions {
        JobOptions {
            queue: Some("mail".into()),
            max_attempts: Some(5),
            ..JobOptions::default()
        }
    }
}

struct WelcomeMailer;

impl Worker for WelcomeMailer {
    type Args = SendWelcome;

    async fn work(&self, ctx: JobContext, args: SendWelcome) -> JobResult {
        if !args.email.contains('@') {
            // Retrying cannot fix a malformed address: fail now, keep the attempts.
            return Err(JobError::permanent(format!(
                "not an email address: {}",
                args.email
            )));
        }
        println!(
            "job {} attempt {}: welcome mail to user {} <{}>",
            ctx.id(),
            ctx.attempt(),
            args.user_id,
            args.email
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .init();
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set DATABASE_URL to a PostgreSQL database"))?;
    let pooler: Pooler = std::env::var("BOSUN_POOLER")
        .map_or(Ok(Pooler::None), |mode| mode.parse())
        .map_err(|e| anyhow::anyhow!("BOSUN_POOLER: {e}"))?;
    let client = Client::connect_with(&url, ClientOptions::new().pooler(pooler)).await?;
    client.migrate().await?;

    let jobs = [
        SendWelcome {
            user_id: 1,
            email: "ada@example.com".into(),
        },
        SendWelcome {
            user_id: 2,
            email: "grace@example.com".into(),
        },
        SendWelcome {
            user_id: 3,
            email: "not-an-address".into(),
        },
    ];
    let enqueued = client.enqueue_many(jobs).await?;
    let last = enqueued.iter().map(|e| e.id).max().unwrap_or(0);

    let pool = WorkerPool::builder(client.clone())
        .register(WelcomeMailer)
        .queue("mail", 4)
        .build()?;
    let watcher = client.clone();
    let report = pool
        .run_until(async move {
            let filter = JobFilter {
                queue: Some("mail".into()),
                before_id: Some(last + 1),
                limit: Some(3),
                ..JobFilter::default()
            };
            loop {
                tokio::select! {
                    () = bosun_workers::shutdown_signal() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                if let Ok(jobs) = watcher.job_list(&filter).await {
                    if jobs.iter().all(|j| j.state.is_final()) {
                        for job in jobs {
                            let outcome = if job.state == JobState::Completed {
                                "sent"
                            } else {
                                "not sent"
                            };
                            println!("job {}: {} ({outcome})", job.id, job.state);
                        }
                        return;
                    }
                }
            }
        })
        .await?;
    let handed_back = report.released.len();
    let noun = if handed_back == 1 { "job" } else { "jobs" };
    println!("stopped; {handed_back} {noun} handed back");
    Ok(())
}
