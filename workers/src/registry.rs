//! Which kinds this process can run, and how to call each handler without knowing its type.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bosun_queue::{Job, JobArgs};
use futures_util::future::BoxFuture;

use crate::{attempt::Handled, JobContext, Worker};

/// A handler with its argument type erased: decodes JSON args, then runs.
pub(crate) trait ErasedWorker: Send + Sync {
    fn run(
        &self,
        ctx: JobContext,
        args: &serde_json::Value,
    ) -> Result<BoxFuture<'static, Handled>, serde_json::Error>;
    fn backoff(&self, job: &Job) -> Duration;
    fn timeout(&self) -> Option<Duration>;
    /// Whether the handler ends its attempt itself when it overruns the cancel grace (the saga
    /// runner does: its step must end through the saga); otherwise the executor aborts it.
    fn aborts_itself(&self) -> bool {
        false
    }
}

struct Erased<W>(Arc<W>);

impl<W: Worker> ErasedWorker for Erased<W> {
    fn run(
        &self,
        ctx: JobContext,
        args: &serde_json::Value,
    ) -> Result<BoxFuture<'static, Handled>, serde_json::Error> {
        let args = <W::Args as serde::Deserialize>::deserialize(args)?;
        let worker = Arc::clone(&self.0);
        Ok(Box::pin(async move {
            Handled::Returned(worker.work(ctx, args).await)
        }))
    }

    fn backoff(&self, job: &Job) -> Duration {
        self.0.backoff(job)
    }

    fn timeout(&self) -> Option<Duration> {
        self.0.timeout()
    }
}

/// The handlers of one worker process, by kind. A process claims only kinds it has.
#[derive(Clone, Default)]
pub struct Registry {
    workers: BTreeMap<String, Arc<dyn ErasedWorker>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Add a handler for `W::Args::KIND`, replacing any earlier one for that kind.
    pub fn register<W: Worker>(&mut self, worker: W) -> &mut Self {
        self.workers.insert(
            <W::Args as JobArgs>::KIND.to_string(),
            Arc::new(Erased(Arc::new(worker))),
        );
        self
    }

    /// Add an erased handler under `kind` (the saga runner registers `saga:<kind>`).
    pub(crate) fn register_erased(&mut self, kind: String, worker: Arc<dyn ErasedWorker>) {
        self.workers.insert(kind, worker);
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.workers.keys().cloned().collect()
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Arc<dyn ErasedWorker>> {
        self.workers.get(kind)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }
}
