//! The compactor: gives back what `bosun.jobs` grew by while vacuum could not run.
//!
//! While something holds the vacuum horizon back, every claim, completion and prune leaves
//! a row version nothing may remove, so the heap and its indexes grow with the throughput.
//! Once the horizon moves, vacuum makes that space reusable, but the files keep their size:
//! a btree never shrinks, and vacuum gives back only empty pages at the heap's end (and not
//! at all on this table, `vacuum_truncate = false`, since a truncation on every vacuum would
//! take the table's lock over and over). So the compactor remembers each file's usual size,
//! and when one has grown well past it and the dead versions are gone again (an index is
//! measured in bytes per entry, as counted by its last vacuum, so one that grew with its
//! rows has not grown):
//!
//! * an index is rebuilt with `REINDEX INDEX CONCURRENTLY` (no lock that writes wait on),
//!   one per run, while no snapshot it can see is older than a thousand transactions and
//!   after a vacuum of its own showed the dead versions gone; the rebuild gives
//!   up after a second's wait for an older snapshot, since it would hold the horizon back
//!   itself while it waited. A rebuild that did not halve its index (its rows are live) is
//!   not tried again on it for ten minutes, then twice as long each time;
//! * the heap is truncated with `VACUUM (TRUNCATE)` once its last sixteenth (above its usual
//!   size) held no live row at two looks in a row, [`CompactorConfig::tail_check_every`]
//!   apart (a scan of those pages only). Vacuum then gives back whatever is empty at the end,
//!   and the next looks go on until the heap is back near its usual size. A table that fills
//!   and empties in rounds keeps its pages for the next round; while the horizon is held the
//!   end fills with live rows, so nothing is truncated then.
//!
//! The heap's usual size follows the table's own growth: the largest size seen while not
//! grown past it, falling by a tenth a minute. An index's is its fewest bytes per entry seen.
//! Like the vacuumer, the compactor only acts when its role owns the table. An index left
//! invalid by a rebuild that did not finish (a killed process) is dropped first.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use bosun_queue::{
    cleanup::{
        horizon_age, index_drop, index_rebuild, jobs_dead_rows, jobs_invalid_indexes, jobs_storage,
        jobs_tail_live, jobs_vacuum, jobs_vacuum_truncate, IndexStorage,
    },
    Client,
};
use tracing::info;

use super::service::Service;

/// Heap page size.
const PAGE: i64 = 8192;
/// An index counts as grown at three times the bytes its entries usually take, plus this.
const INDEX_SLACK: i64 = 1 << 20;
/// An index's bytes per entry are learnt once a vacuum or build has counted this many.
const COUNTED_ENTRIES_MIN: f64 = 1000.0;
/// Bytes per entry of an index not learnt yet (a btree of short keys takes 20 to 40).
const DENSITY_DEFAULT: f64 = 64.0;
/// After a vacuum of its own showed no index grown, the compactor does not look at the
/// indexes again for this long: between vacuums the counted entries lag behind an index that
/// grows with its rows.
const RECHECK_AFTER: Duration = Duration::from_secs(60);
/// The heap counts as grown at one and a half times its usual size plus this.
const HEAP_SLACK: i64 = 8 << 20;
/// Dead versions count as gone below this many, or a quarter of the live rows.
const DEAD_GONE: i64 = 10_000;
/// A snapshot older than this many transactions holds the horizon back: no index is judged
/// meanwhile (its counted entries are stale, and a rebuild would keep what the snapshot may
/// see).
const HORIZON_AGE_MAX: i64 = 1000;
/// The longest the compactor waits to look again while the horizon stays held.
const HELD_WAIT_MAX: Duration = Duration::from_secs(300);
/// A rebuild gives up when it waits longer than this for a lock or an older snapshot.
const REBUILD_WAIT: Duration = Duration::from_secs(1);
/// A rebuild that did not halve its index is not tried again on it for this long at first,
/// then twice as long each time (its rows are live: the index is as large as they make it).
const REBUILD_BACKOFF: Duration = Duration::from_secs(600);

/// Compactor settings.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Whether the leader compacts at all.
    pub enabled: bool,
    /// How often it looks at the end of a grown heap (default 10 s).
    pub tail_check_every: Duration,
    /// After a vacuum of its own found the horizon still held, how long it waits before it
    /// looks at the indexes again (default 10 s, twice as long each time it is still held, up
    /// to five minutes; a minute after one found no index grown).
    pub held_recheck_every: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            enabled: true,
            tail_check_every: Duration::from_secs(10),
            held_recheck_every: Duration::from_secs(10),
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
    /// Each index's fewest bytes per entry seen while not grown.
    densities: HashMap<String, f64>,
    /// Indexes a rebuild did not shrink: not before when, and the wait after the next.
    backoff: HashMap<String, (Instant, Duration)>,
    decayed: Instant,
    tail_checked: Option<Instant>,
    /// Whether the grown heap's end held no live row at the last look.
    tail_was_empty: bool,
    /// Not before when it looks at the indexes again, after a vacuum of its own, and the wait
    /// after the next that finds the horizon held.
    recheck_at: Option<Instant>,
    held_wait: Option<Duration>,
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
                densities: HashMap::new(),
                backoff: HashMap::new(),
                decayed: Instant::now(),
                tail_checked: None,
                tail_was_empty: false,
                recheck_at: None,
                held_wait: None,
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
        let held = horizon_age(db).await? > HORIZON_AGE_MAX;
        let (rebuild, decay) = {
            let mut usual = self.usual.lock().expect("compactor state");
            let decay = usual.decay();
            let mut rebuild = None;
            for index in &storage.indexes {
                // Judged by bytes per entry counted at the last vacuum: an index that grew
                // with its rows is not grown, and while the horizon is held, vacuums count
                // the entries of the versions they could not remove.
                if index.entries < 0.0 {
                    continue;
                }
                if usual.index_grown(index) {
                    let waiting = usual
                        .backoff
                        .get(&index.name)
                        .is_some_and(|(until, _)| Instant::now() < *until);
                    if !held && !waiting && rebuild.is_none() {
                        rebuild = Some((index.name.clone(), index.bytes));
                    }
                } else if index.entries >= COUNTED_ENTRIES_MIN {
                    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52
                    let density = index.bytes as f64 / index.entries;
                    let least = usual.density(&index.name).min(density);
                    usual.backoff.remove(&index.name);
                    usual.densities.insert(index.name.clone(), least);
                }
            }
            (rebuild, decay)
        };
        let rechecked_lately = {
            let usual = self.usual.lock().expect("compactor state");
            usual.recheck_at.is_some_and(|at| Instant::now() < at)
        };
        if let Some((name, before)) = rebuild.filter(|_| !rechecked_lately) {
            // The statistics may be behind: a horizon held a moment ago, entries added since
            // the last vacuum. A vacuum of one's own counts them afresh.
            jobs_vacuum(db).await?;
            let rows = jobs_dead_rows(db).await?;
            let fresh = jobs_storage(db).await?;
            let still = fresh
                .indexes
                .iter()
                .find(|index| index.name == name)
                .is_some_and(|index| {
                    index.entries >= 0.0
                        && self
                            .usual
                            .lock()
                            .expect("compactor state")
                            .index_grown(index)
                });
            let held = rows.dead > DEAD_GONE.max(rows.live / 4);
            if !still || held {
                let mut usual = self.usual.lock().expect("compactor state");
                let wait = if held {
                    // Twice as long each time the horizon is still held, up to five minutes.
                    let wait = usual.held_wait.unwrap_or(self.config.held_recheck_every);
                    usual.held_wait = Some(wait.saturating_mul(2).min(HELD_WAIT_MAX));
                    wait
                } else {
                    usual.held_wait = None;
                    RECHECK_AFTER
                };
                usual.recheck_at = Some(Instant::now() + wait);
                return Ok(Compaction::None);
            }
            self.usual.lock().expect("compactor state").held_wait = None;
            index_rebuild(self.client.pool(), &name, REBUILD_WAIT).await?;
            let after = jobs_storage(db)
                .await?
                .indexes
                .into_iter()
                .find(|index| index.name == name)
                .map_or(0, |index| index.bytes);
            let mut usual = self.usual.lock().expect("compactor state");
            if after > before / 2 {
                let wait = usual
                    .backoff
                    .get(&name)
                    .map_or(REBUILD_BACKOFF, |(_, wait)| wait.saturating_mul(2));
                usual
                    .backoff
                    .insert(name.clone(), (Instant::now() + wait, wait));
            }
            return Ok(Compaction::Rebuilt(name, before, after));
        }
        let tail_from = {
            let mut usual = self.usual.lock().expect("compactor state");
            let before = usual.heap.unwrap_or(storage.heap);
            if !grown(storage.heap, before, 1.5, HEAP_SLACK) {
                usual.heap = Some(decayed(before, decay).max(storage.heap));
                usual.tail_was_empty = false;
                return Ok(Compaction::None);
            }
            let due = usual
                .tail_checked
                .is_none_or(|at| at.elapsed() >= self.config.tail_check_every);
            if !due {
                return Ok(Compaction::None);
            }
            usual.tail_checked = Some(Instant::now());
            // The end a vacuum would give back (a sixteenth of the pages, as PostgreSQL's
            // own threshold has it), but nothing below the usual size and a quarter.
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let keep = (before as f64 * 1.25) as i64 / PAGE;
            let pages = storage.heap / PAGE;
            (pages - (pages / 16).max(1)).max(keep)
        };
        // Empty at two looks in a row: a table that fills and empties in rounds keeps its
        // pages for the next round.
        let empty = !jobs_tail_live(db, tail_from).await?;
        let was_empty = std::mem::replace(
            &mut self.usual.lock().expect("compactor state").tail_was_empty,
            empty,
        );
        if !(empty && was_empty) {
            return Ok(Compaction::None);
        }
        jobs_vacuum_truncate(db).await?;
        let after = jobs_storage(db).await?.heap;
        Ok(Compaction::Truncated(storage.heap, after))
    }
}

impl Usual {
    /// The bytes per entry `index` usually takes.
    fn density(&self, index: &str) -> f64 {
        self.densities
            .get(index)
            .copied()
            .unwrap_or(DENSITY_DEFAULT)
    }

    /// Whether `index` (its entries counted) takes well past the bytes its entries usually do.
    fn index_grown(&self, index: &IndexStorage) -> bool {
        #[allow(clippy::cast_possible_truncation)] // sizes far below 2^52
        let usual = (self.density(&index.name) * index.entries) as i64;
        grown(index.bytes, usual, 3.0, INDEX_SLACK)
    }

    /// The factor by which the heap's usual size falls at this run: a tenth for every whole
    /// minute since it last fell, so that a table that shrank for good stops being measured
    /// against its old size. A heap grown past its usual size keeps it instead.
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
