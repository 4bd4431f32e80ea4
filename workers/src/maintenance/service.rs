//! The one interface every maintenance service registers through: a name, an interval, and
//! an idempotent `run_once`.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tracing::warn;

/// A maintenance service, as the leader runs it.
pub(crate) trait Service: Send + Sync + 'static {
    /// What one run did.
    type Report: Send;

    /// The service's name, in logs.
    fn name(&self) -> &'static str;

    /// One pass: works in batches until a batch comes back short. It does not retry inside
    /// a run; the next one is the retry.
    fn run_once(&self) -> impl Future<Output = bosun_queue::Result<Self::Report>> + Send;

    /// Log (and count in the metrics) what a run did.
    fn report(&self, report: &Self::Report);

    /// This replica stopped leading: undo what only the leader should show.
    fn leadership_lost(&self) {}
}

/// Where a service's runs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runs {
    /// In the leader's loop, one service after another.
    Inline,
    /// On a task of its own, at most one at a time: for runs that may last minutes and
    /// would hold up the leadership's renewal and the other services. Such a run stops at
    /// shutdown, and when the leadership is lost if `stops_with_leadership`.
    OwnTask { stops_with_leadership: bool },
}

/// A registered service.
pub(crate) struct Registered {
    /// Run it when this long has passed since its last run; zero: on every tick.
    every: Duration,
    runs: Runs,
    run: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
    leadership_lost: Box<dyn Fn() + Send + Sync>,
    last: Option<Instant>,
    task: Option<JoinHandle<()>>,
}

impl Registered {
    pub(crate) fn new<S: Service>(service: S, every: Duration, runs: Runs) -> Registered {
        let service = Arc::new(service);
        let runner = Arc::clone(&service);
        Registered {
            every,
            runs,
            run: Box::new(move || {
                let service = Arc::clone(&runner);
                Box::pin(async move {
                    match service.run_once().await {
                        Ok(report) => service.report(&report),
                        Err(error) => {
                            let service = service.name();
                            warn!(service, %error, "maintenance service failed; its next run retries");
                        }
                    }
                })
            }),
            leadership_lost: Box::new(move || service.leadership_lost()),
            last: None,
            task: None,
        }
    }

    /// Run it if it is due (and, on a task of its own, not still running).
    pub(crate) async fn run_if_due(&mut self) {
        if self.last.is_some_and(|at| at.elapsed() < self.every) {
            return;
        }
        match self.runs {
            Runs::Inline => {
                self.last = Some(Instant::now());
                (self.run)().await;
            }
            Runs::OwnTask { .. } => {
                if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
                    return;
                }
                self.last = Some(Instant::now());
                self.task = Some(tokio::spawn((self.run)()));
            }
        }
    }

    /// This replica stopped leading: the next term runs it at once.
    pub(crate) fn leadership_lost(&mut self) {
        (self.leadership_lost)();
        self.last = None;
        if let Runs::OwnTask {
            stops_with_leadership: true,
        } = self.runs
        {
            self.stop();
        }
    }

    /// Stop a run in progress on its own task, if any, at its next await.
    pub(crate) fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
