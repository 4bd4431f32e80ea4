//! The maintenance loop: every tick, take or renew the `maintenance` leadership, and while
//! leading run each registered service that is due.

use std::{sync::Arc, time::Duration};

use bosun_queue::{
    liveness::{leader_acquire, MAINTENANCE_LEADER},
    Client,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    compactor::{Compactor, CompactorConfig},
    floors::FloorRaiser,
    pruner::{Pruner, PrunerConfig},
    reaper::{Reaper, ReaperConfig},
    rescuer::{Rescuer, RescuerConfig},
    sampler::{Sampler, EXACT_BELOW_DEFAULT},
    scheduler::Scheduler,
    service::{Registered, Runs},
    vacuumer::{Vacuumer, VacuumerConfig},
};

/// What the maintenance loop needs.
pub(crate) struct Maintenance {
    /// On the worker's own connections: the election and the short services.
    pub(crate) own: Client,
    /// On the client's connections: the prune passes and the `VACUUM`, which hold a
    /// connection for as long as the table takes, which the hot path must not wait behind.
    pub(crate) client: Client,
    pub(crate) worker_id: Arc<str>,
    /// The leadership's term.
    pub(crate) lease: Duration,
    pub(crate) every: Duration,
    pub(crate) rescuer: RescuerConfig,
    pub(crate) reaper: ReaperConfig,
    pub(crate) pruner: PrunerConfig,
    pub(crate) prune_interval: Duration,
    pub(crate) vacuumer: VacuumerConfig,
    pub(crate) compactor: CompactorConfig,
    pub(crate) sample_interval: Duration,
    /// Told when a target is expunged: reap at once rather than at the next tick.
    pub(crate) expunged: Arc<Notify>,
}

/// How often the compactor looks at the table's size.
const COMPACT_EVERY: Duration = Duration::from_secs(2);

impl Maintenance {
    /// The services, in the order each tick runs them.
    fn services(&self) -> Vec<Registered> {
        let every_tick = Duration::ZERO;
        vec![
            Registered::new(Scheduler::new(self.own.clone()), every_tick, Runs::Inline),
            Registered::new(
                Rescuer::new(self.own.clone(), self.rescuer.clone()),
                every_tick,
                Runs::Inline,
            ),
            Registered::new(
                Reaper::new(self.own.clone(), self.reaper.clone()),
                every_tick,
                Runs::Inline,
            ),
            Registered::new(FloorRaiser::new(self.own.clone()), every_tick, Runs::Inline),
            Registered::new(
                Sampler::new(self.own.clone(), EXACT_BELOW_DEFAULT),
                self.sample_interval,
                Runs::Inline,
            ),
            // A running VACUUM is left to finish its work when the leadership moves.
            Registered::new(
                Vacuumer::new(self.client.clone(), self.vacuumer.clone()),
                every_tick,
                Runs::OwnTask {
                    stops_with_leadership: false,
                },
            ),
            // Rebuilds and truncations may take long; the new leader carries on.
            Registered::new(
                Compactor::new(self.client.clone(), self.compactor.clone()),
                COMPACT_EVERY,
                Runs::OwnTask {
                    stops_with_leadership: true,
                },
            ),
            // The new leader prunes.
            Registered::new(
                Pruner::new(self.client.clone(), self.pruner.clone()),
                self.prune_interval,
                Runs::OwnTask {
                    stops_with_leadership: true,
                },
            ),
        ]
    }

    /// Run until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut services = self.services();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.expunged.notified() => {}
                () = stop.cancelled() => {
                    // An interrupted VACUUM leaves the table as it was, less what it cleaned;
                    // an interrupted prune pass, the batches it finished.
                    services.iter_mut().for_each(Registered::stop);
                    return;
                }
            }
            let acquired = leader_acquire(
                self.own.db(),
                MAINTENANCE_LEADER,
                &self.worker_id,
                self.lease,
            )
            .await;
            match acquired {
                Ok(true) => {
                    if !leading {
                        info!("elected maintenance leader");
                    }
                    leading = true;
                    crate::metrics::leader(true);
                }
                Ok(false) => {
                    if leading {
                        info!("no longer the maintenance leader");
                        services.iter_mut().for_each(Registered::leadership_lost);
                    }
                    leading = false;
                    crate::metrics::leader(false);
                    continue;
                }
                Err(error) => {
                    warn!(%error, "leader election failed; next tick retries");
                    continue;
                }
            }
            for service in &mut services {
                service.run_if_due().await;
            }
        }
    }
}
