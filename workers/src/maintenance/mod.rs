//! Maintenance: services that keep the jobs table healthy, run by exactly one replica.
//!
//! Every worker process runs this loop. Each tick it tries to take or renew the
//! `maintenance` leadership (a row in `bosun.leaders` with a term on the database clock);
//! the one that holds it runs every service's `run_once`. If the leader dies, its term runs
//! out and another replica takes over on its next tick, so handover takes at most the lease
//! plus one interval.
//!
//! Why leader-only: the services are idempotent and would be correct on every replica, but
//! N replicas scanning for the same rows is N times the load for the same result.
//!
//! Services: the scheduler (periodic jobs), the rescuer (jobs of dead workers), the reaper
//! (work on expunged targets; also run at once when an expunge is announced), the pruner
//! (finished jobs past their retention), the vacuumer (dead row versions, when autovacuum
//! falls behind), the compactor (what the table grew by while vacuum could not run) and the
//! floor raiser (where claims start their walk of each queue). There is no stager: claims take `scheduled` and `retryable` rows directly
//! once `scheduled_at` has passed, so no job waits on a periodic move to `available`.
//!
//! The pruner's passes and the vacuumer's `VACUUM` run on tasks of their own ([`service::Runs`]),
//! on the client's connections: on a large table a `VACUUM` takes minutes, and under
//! sustained load a prune pass lasts as long as jobs keep passing their retention faster
//! than it deletes them. In this loop either would hold up the leadership's renewal, the
//! rescuer and the reaper, and a pass that never ended would keep the vacuumer from ever
//! starting, while the dead rows it leaves make every later batch slower. Neither holds one of
//! the worker's own connections for that long either: those are the claims' and the
//! completions'. A prune pass stops when the leadership is lost (the new leader prunes), a `VACUUM` is left
//! to finish its work; both stop at shutdown.
//!
//! Writing a service: one file, a `Config` with defaults, an `async fn run_once` that takes
//! no input, works in batches until a batch comes back short, and returns counts, and an
//! implementation of [`service::Service`] (its name, that `run_once`, how to report a run);
//! [`leader`] registers it with its interval. It does not retry inside a run; the next run is
//! the retry.

pub mod compactor;
pub mod floors;
mod leader;
pub mod pruner;
pub mod reaper;
pub mod rescuer;
pub mod sampler;
pub mod scheduler;
mod service;
pub mod vacuumer;

pub(crate) use leader::Maintenance;
