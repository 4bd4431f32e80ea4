//! The worker's own connections: a small pool, apart from the client's, for the statements
//! its liveness and its rate hang on (claims, outcomes, heartbeats, lease checks,
//! maintenance).
//!
//! Why not the client's pool: handlers share that one, and a burst of handlers holding its
//! connections would hold up claims, completions and, worst, heartbeats, until a live
//! worker looks dead. And why so small: a pool grows to its maximum under a busy loop (a
//! connection given back is returned on a task of its own, so the next acquire often finds
//! none idle and opens another), and every extra server process costs the database a fork
//! and a cold cache of plans and catalogs; with several worker processes starting at once
//! that warm-up is a visible part of a drain.

use std::sync::{Arc, OnceLock};

use bosun_queue::{Client, Db};

/// Connections besides one per queue (for its claims): one for the batched completions,
/// which the rest (heartbeats, lease checks, failed attempts, maintenance) share with the
/// claims. Every connection is a server process to start and warm up, and a worker opens all
/// of them in its first few milliseconds: with several workers starting together, a
/// connection more each slows the drain more than the work it takes off the others.
const BESIDES_QUEUES: usize = 1;
/// Most connections, however many queues the worker works.
const MAX: usize = 10;

/// A handle on the worker's own pool, made on first use: a pool needs a Tokio runtime,
/// which building a [`crate::WorkerPool`] may lack. Clones share the pool.
#[derive(Clone)]
pub(crate) struct OwnConnections(Arc<Inner>);

struct Inner {
    client: Client,
    queues: usize,
    own: OnceLock<Client>,
}

impl OwnConnections {
    /// Connections on `client`'s database, sized for `queues` queues.
    pub(crate) fn new(client: Client, queues: usize) -> OwnConnections {
        OwnConnections(Arc::new(Inner {
            client,
            queues,
            own: OnceLock::new(),
        }))
    }

    /// The executor for statements on these connections.
    pub(crate) fn db(&self) -> Db<'_> {
        self.client().db()
    }

    /// A client on these connections (the maintenance services take one).
    pub(crate) fn client(&self) -> &Client {
        self.0.own.get_or_init(|| {
            let connections = (self.0.queues + BESIDES_QUEUES).min(MAX);
            self.0
                .client
                .with_separate_pool(u32::try_from(connections).unwrap_or(u32::MAX))
        })
    }
}
