//! The sampler: reads queue depth, the oldest waiting job, live workers and finished sagas
//! from the database on an interval (leader only), and sets the matching gauges. One replica
//! pays for these queries, whatever the number of replicas or scrapes; see
//! `bosun.sample_queues` for which counts are exact and which are estimates.
//!
//! A series that disappears from a sample (a queue drained of a state) is set to 0 rather
//! than left at its last value, and a replica that stops leading sets its series to 0, so
//! that dashboards can take the `max` over replicas.

use std::{collections::BTreeSet, sync::Mutex};

use bosun_queue::{
    sampling::{sample, Sample},
    Client,
};

use super::service::Service;

/// Default: count finished jobs exactly below this many rows in the table, estimate above.
pub const EXACT_BELOW_DEFAULT: i64 = 100_000;

/// The sampler service.
#[derive(Debug)]
pub struct Sampler {
    client: Client,
    exact_below: i64,
    /// Label sets set on the last pass.
    last: Mutex<LastSet>,
}

/// The label sets a pass set: (queue, state) of `bosun_queue_jobs`, queue of the oldest-job
/// gauge.
#[derive(Debug, Default)]
struct LastSet {
    depth: BTreeSet<(String, String)>,
    waiting: BTreeSet<String>,
}

impl Sampler {
    /// A sampler on `client`'s database.
    pub fn new(client: Client, exact_below: i64) -> Self {
        Sampler {
            client,
            exact_below,
            last: Mutex::default(),
        }
    }

    /// One pass: read the sample and set the gauges.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a query fails; the gauges keep their values.
    pub async fn run_once(&self) -> bosun_queue::Result<Sample> {
        let sample = sample(self.client.db(), self.exact_below).await?;
        let depth: BTreeSet<_> = sample
            .queues
            .iter()
            .map(|c| (c.queue.clone(), c.state.clone()))
            .collect();
        let waiting: BTreeSet<_> = sample
            .oldest_available
            .iter()
            .map(|(queue, _)| queue.clone())
            .collect();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (queue, state) in last.depth.difference(&depth) {
            crate::metrics::queue_jobs(queue, state, 0.0);
        }
        for queue in last.waiting.difference(&waiting) {
            crate::metrics::oldest_available(queue, 0.0);
        }
        crate::metrics::sampled(&sample);
        *last = LastSet { depth, waiting };
        Ok(sample)
    }

    /// This replica stopped leading: zero what it set, so only the leader's values count.
    pub fn forget(&self) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (queue, state) in &last.depth {
            crate::metrics::queue_jobs(queue, state, 0.0);
        }
        for queue in &last.waiting {
            crate::metrics::oldest_available(queue, 0.0);
        }
        crate::metrics::workers_alive(0.0);
        *last = LastSet::default();
    }
}

impl Service for Sampler {
    type Report = Sample;

    fn name(&self) -> &'static str {
        "sampler"
    }

    async fn run_once(&self) -> bosun_queue::Result<Sample> {
        Sampler::run_once(self).await
    }

    fn report(&self, _: &Sample) {}

    fn leadership_lost(&self) {
        self.forget();
    }
}
