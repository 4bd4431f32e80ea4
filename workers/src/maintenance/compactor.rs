//! The compactor: gives back what `bosun.jobs` grew by while vacuum could not run.
//!
//! While something holds the vacuum horizon back, every claim, completion and prune leaves
//! a row version nothing may remove, so the heap and its indexes grow with the throughput.
//! Once the horizon moves, vacuum makes that space reusable, but the files keep their size:
//! a btree never shrinks, and vacuum gives back only empty pages at the heap's end (and not
//! at all on this table, `vacuum_truncate = false`, since a truncation on every vacuum would
//! take the table's lock over and over). So the compactor remembers each file's usual size,
//! and when one has grown well past it and the dead versions are gone again:
//!
//! * an index is rebuilt with `REINDEX INDEX CONCURRENTLY` (no lock that writes wait on; it
//!   waits for older snapshots itself), one per run;
//! * the heap is truncated with `VACUUM (TRUNCATE)` once the pages past its usual size hold
//!   no live row (a scan of those pages only); until then new rows fill the free space lower
//!   down and the jobs at the end pass their retention, and it looks again every
//!   [`CompactorConfig::tail_check_every`].
//!
//! The usual size follows the table's own growth: the largest size seen while not grown
//! past it, falling by a tenth a minute. A rebuilt index that is still large (its rows are
//! live) becomes its usual size. Like the vacuumer, the compactor only acts when its role
//! owns the table. An index left invalid by a rebuild that did not finish (a killed process)
//! is dropped first.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use bosun_queue::{
    cleanup::{
        index_drop, index_rebuild, jobs_dead_rows, jobs_invalid_indexes, jobs_storage,
        jobs_tail_live, jobs_vacuum_truncate,
    },
    Client,
};
use tracing::info;

use super::service::Service;

/// Heap page size.
const PAGE: i64 = 8192;
/// An index counts as grown past its usual size at twice that plus this.
const INDEX_SLACK: i64 = 1 << 20;
/// The heap counts as grown at one and a half times its usual size plus this.
const HEAP_SLACK: i64 = 8 << 20;
/// Dead versions count as gone below this many, or a quarter of the live rows.
const DEAD_GONE: i64 = 10_000;

/// Compactor settings.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Whether the leader compacts at all.
    pub enabled: bool,
    /// How often it looks at the end of a grown heap.
    pub tail_check_every: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            enabled: true,
            tail_check_every: Duration::from_secs(30),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compaction {
    /// Nothing was needed, or could be done yet.
    None,
    /// An index left invalid was dropped.
    DroppedInvalid(String),
    /// An index was rebuilt: its name, bytes before and after.
    Rebuilt(String, i64, i64),
    /// The heap's empty end was given back: bytes before and after.
    Truncated(i64, i64),
}

/// The usual sizes, and when they last decayed.
#[derive(Debug)]
struct Usual {
    heap: Option<i64>,
    indexes: HashMap<String, i64>,
    decayed: Instant,
    tail_checked: Option<Instant>,
}

/// The compactor service.
#[derive(Debug)]
pub struct Compactor {
    client: Client,
    config: CompactorConfig,
    usual: Mutex<Usual>,
}

/// Whether `bytes` is well past `usual` (times `factor`, plus `slack`).
fn grown(bytes: i64, usual: i64, factor: f64, slack: i64) -> bool {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)] // sizes far below 2^52
    let limit = (usual as f64 * factor) as i64 + slack;
    bytes > limit
}

impl Compactor {
    /// A compactor on `client`'s database.
    pub fn new(client: Client, config: CompactorConfig) -> Self {
        Compactor {
            client,
            config,
            usual: Mutex::new(Usual {
                heap: None,
                indexes: HashMap::new(),
                decayed: Instant::now(),
                tail_checked: None,
            }),
        }
    }

    /// One step: drop an invalid index, rebuild one grown index, or truncate a grown heap's
    /// empty end, whichever comes first; otherwise note the usual sizes.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a statement fails.
    pub async fn run_once(&self) -> bosun_queue::Result<Compaction> {
        if !self.config.enabled {
            return Ok(Compaction::None);
        }
        let db = self.client.db();
        let rows = jobs_dead_rows(db).await?;
        if !rows.may_vacuum {
            return Ok(Compaction::None);
        }
        if let Some(name) = jobs_invalid_indexes(db).await?.into_iter().next() {
            index_drop(db, &name).await?;
            return Ok(Compaction::DroppedInvalid(name));
        }
        let storage = jobs_storage(db).await?;
        let dead_gone = !rows.vacuuming && rows.dead <= DEAD_GONE.max(rows.live / 4);
        let (rebuild, decay) = {
            let mut usual = self.usual.lock().expect("compactor state");
            let decay = usual.decay();
            let mut rebuild = None;
            for (name, bytes) in &storage.indexes {
                let before = *usual.indexes.get(name).unwrap_or(bytes);
                if grown(*bytes, before, 2.0, INDEX_SLACK) {
                    if dead_gone && rebuild.is_none() {
                        rebuild = Some((name.clone(), *bytes));
                    }
                } else {
                    usual
                        .indexes
                        .insert(name.clone(), decayed(before, decay).max(*bytes));
                }
            }
            (rebuild, decay)
        };
        if let Some((name, before)) = rebuild {
            index_rebuild(db, &name).await?;
            let after = jobs_storage(db)
                .await?
                .indexes
                .into_iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, bytes)| bytes);
            let mut usual = self.usual.lock().expect("compactor state");
            let known = usual.indexes.entry(name.clone()).or_insert(after);
            *known = (*known).max(after);
            return Ok(Compaction::Rebuilt(name, before, after));
        }
        let tail_from = {
            let mut usual = self.usual.lock().expect("compactor state");
            let before = usual.heap.unwrap_or(storage.heap);
            if !grown(storage.heap, before, 1.5, HEAP_SLACK) {
                usual.heap = Some(decayed(before, decay).max(storage.heap));
                return Ok(Compaction::None);
            }
            let due = usual
                .tail_checked
                .is_none_or(|at| at.elapsed() >= self.config.tail_check_every);
            if !dead_gone || !due {
                return Ok(Compaction::None);
            }
            usual.tail_checked = Some(Instant::now());
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let keep = (before as f64 * 1.25) as i64;
            (keep + PAGE - 1) / PAGE
        };
        if jobs_tail_live(db, tail_from).await? {
            return Ok(Compaction::None);
        }
        jobs_vacuum_truncate(db).await?;
        let after = jobs_storage(db).await?.heap;
        Ok(Compaction::Truncated(storage.heap, after))
    }
}

impl Usual {
    /// The factor by which usual sizes fall at this run: a tenth for every whole minute
    /// since they last fell, so that a table that shrank for good stops being measured
    /// against its old size. Sizes grown past their usual one keep it instead.
    fn decay(&mut self) -> f64 {
        let minutes = self.decayed.elapsed().as_secs() / 60;
        if minutes == 0 {
            return 1.0;
        }
        self.decayed = Instant::now();
        0.9_f64.powi(i32::try_from(minutes).unwrap_or(i32::MAX))
    }
}

/// `bytes` fallen by `factor`.
fn decayed(bytes: i64, factor: f64) -> i64 {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)] // sizes far below 2^52
    let bytes = (bytes as f64 * factor) as i64;
    bytes
}

impl Service for Compactor {
    type Report = Compaction;

    fn name(&self) -> &'static str {
        "compactor"
    }

    async fn run_once(&self) -> bosun_queue::Result<Compaction> {
        Compactor::run_once(self).await
    }

    fn report(&self, done: &Compaction) {
        match done {
            Compaction::None => {}
            Compaction::DroppedInvalid(index) => {
                info!(index, "dropped an index a rebuild left invalid");
            }
            Compaction::Rebuilt(index, before, after) => {
                info!(index, before, after, "rebuilt a grown index of bosun.jobs");
            }
            Compaction::Truncated(before, after) => {
                info!(before, after, "gave back the empty end of bosun.jobs");
            }
        }
    }
}
