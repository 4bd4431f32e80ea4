//! LISTEN for the notifications the schema sends: `bosun_jobs` (jobs became claimable, payload:
//! comma-separated queues or `*`) and `bosun_control` (JSON commands such as a cancel).
//!
//! Internal: used by Bosun's own runtime, CLI and bench, not covered by semver (hidden from
//! the documentation).
//!
//! Notifications are hints. A worker that misses one (connection lost, LISTEN turned off
//! behind a transaction-mode pooler) still finds the work by polling, so nothing here is
//! needed for correctness, only for latency.

use serde::Deserialize;
use sqlx::{postgres::PgListener, PgPool};

use crate::Result;

/// Channel of insert wake-ups.
pub const JOBS_CHANNEL: &str = "bosun_jobs";
/// Channel of control commands (cancel a running job).
pub const CONTROL_CHANNEL: &str = "bosun_control";

/// A notification, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Jobs became claimable in these queues (`None`: possibly in any queue).
    JobsAvailable(Option<Vec<String>>),
    /// An operator cancelled job `id` while attempt `attempt` was running.
    Cancel {
        /// The job.
        id: i64,
        /// The attempt that was running.
        attempt: i32,
    },
    /// An operator cancelled saga `saga_id`: its running step should stop.
    CancelSaga {
        /// The saga.
        saga_id: uuid::Uuid,
    },
    /// Target `target` was expunged: the maintenance leader should reap its work now.
    TargetExpunged {
        /// The target.
        target: String,
    },
    /// The connection was lost and has been re-established: notifications may have been
    /// missed, so look for work everywhere.
    Reconnected,
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum ControlPayload {
    Cancel { id: i64, attempt: i32 },
    CancelSaga { saga_id: uuid::Uuid },
    TargetExpunged { target: String },
}

/// A dedicated connection that listens on Bosun's channels.
#[derive(Debug)]
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    /// Open a connection from `pool`'s settings and LISTEN on both channels.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the connection or LISTEN fails.
    pub async fn connect(pool: &PgPool) -> Result<Self> {
        let mut inner = PgListener::connect_with(pool).await?;
        inner.listen_all([JOBS_CHANNEL, CONTROL_CHANNEL]).await?;
        Ok(Listener { inner })
    }

    /// The next notice. Payloads Bosun does not understand are skipped.
    ///
    /// # Errors
    /// [`crate::Error::Database`] when the connection fails in a way it cannot recover from
    /// by itself; connect again then.
    pub async fn recv(&mut self) -> Result<Notice> {
        loop {
            let Some(notification) = self.inner.try_recv().await? else {
                return Ok(Notice::Reconnected);
            };
            let payload = notification.payload();
            match notification.channel() {
                JOBS_CHANNEL if payload == "*" => return Ok(Notice::JobsAvailable(None)),
                JOBS_CHANNEL => {
                    return Ok(Notice::JobsAvailable(Some(
                        payload.split(',').map(str::to_string).collect(),
                    )))
                }
                CONTROL_CHANNEL => match serde_json::from_str::<ControlPayload>(payload) {
                    Ok(ControlPayload::Cancel { id, attempt }) => {
                        return Ok(Notice::Cancel { id, attempt })
                    }
                    Ok(ControlPayload::CancelSaga { saga_id }) => {
                        return Ok(Notice::CancelSaga { saga_id })
                    }
                    Ok(ControlPayload::TargetExpunged { target }) => {
                        return Ok(Notice::TargetExpunged { target })
                    }
                    Err(_) => {}
                },
                _ => {}
            }
        }
    }
}
