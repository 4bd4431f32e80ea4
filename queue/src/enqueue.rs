//! How the Rust client writes jobs, by batch shape, all under the rules of
//! `bosun.enqueue_arrays` (the path of `bosun.enqueue` and `bosun.enqueue_many` in SQL):
//!
//! - one job: a plain `INSERT` (`sql/enqueue_one.sql`), checked by the table, as cheap as any
//!   single-row insert;
//! - a large batch without unique keys: ids reserved up front, then a binary `COPY`, checked
//!   row by row by the table's trigger and constraints. A bad row rolls the batch back and the
//!   batch is tried again through `bosun.enqueue_arrays`, whose error names the bad job;
//! - anything else: `bosun.enqueue_arrays` in one round trip.
//!
//! Every path returns the ids in input order.

use sqlx::{Connection, PgConnection};

use crate::{copy_binary::CopyBuffer, Enqueued, Error, NewJob, Result};

/// Batches at least this large go through `COPY`: below it the extra round trips (begin,
/// reserve ids, copy, commit) cost more than they save.
const COPY_FROM: usize = 256;

/// Enqueue one job. A bad job is rejected by the table's check, whose message names the
/// rule; when the statement is the whole transaction (`own_transaction`), the job is tried
/// again through `bosun.enqueue_arrays` for the message `bosun.enqueue` gives. Inside a
/// caller's transaction that cannot be done: the error aborted it.
pub(crate) async fn one(
    conn: &mut PgConnection,
    job: &NewJob,
    own_transaction: bool,
) -> Result<Enqueued> {
    let inserted: Result<Option<i64>> = sqlx::query_scalar(include_str!("sql/enqueue_one.sql"))
        .bind(job.kind.as_str())
        .bind(&job.args)
        .bind(job.queue.as_deref())
        .bind(job.priority.map(i32::from))
        .bind(job.scheduled_at)
        .bind(job.max_attempts)
        .bind(job.unique_key.as_deref())
        .bind(job.target.as_deref())
        .bind(&job.tags)
        .bind(job.meta.as_ref())
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::from);
    match inserted {
        Ok(Some(id)) => Ok(Enqueued { id, inserted: true }),
        // The unique key is taken: the array path finds the job that holds it.
        Ok(None) => Ok(arrays(conn, std::slice::from_ref(job), false).await?[0]),
        Err(Error::InvalidArgument(_)) if own_transaction => {
            Ok(arrays(conn, std::slice::from_ref(job), false).await?[0])
        }
        Err(err) => Err(err),
    }
}

/// Enqueue a batch; one bad job and none is written.
pub(crate) async fn many(conn: &mut PgConnection, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
    match CopyColumns::for_batch(jobs) {
        Some(columns) => match copy(conn, jobs, &columns).await {
            Err(Error::InvalidArgument(_)) => arrays(conn, jobs, true).await,
            result => result,
        },
        None => arrays(conn, jobs, true).await,
    }
}

/// The columns a `COPY` of a batch fills. A column goes in when every job sets it and is
/// left to the table's default when none does: a batch that mixes the two (or uses unique
/// keys, which need `ON CONFLICT`) takes the array path.
#[derive(Debug, PartialEq)]
struct CopyColumns {
    queue: bool,
    priority: bool,
    max_attempts: bool,
    scheduled_at: bool,
    meta: bool,
    target: bool,
    tags: bool,
}

impl CopyColumns {
    fn for_batch(jobs: &[NewJob]) -> Option<Self> {
        if jobs.len() < COPY_FROM || jobs.iter().any(|j| j.unique_key.is_some()) {
            return None;
        }
        let all_or_none = |set: fn(&NewJob) -> bool| {
            let count = jobs.iter().filter(|j| set(j)).count();
            (count == 0 || count == jobs.len()).then_some(count > 0)
        };
        Some(CopyColumns {
            queue: all_or_none(|j| j.queue.is_some())?,
            priority: all_or_none(|j| j.priority.is_some())?,
            max_attempts: all_or_none(|j| j.max_attempts.is_some())?,
            scheduled_at: all_or_none(|j| j.scheduled_at.is_some())?,
            meta: all_or_none(|j| j.meta.is_some())?,
            target: jobs.iter().any(|j| j.target.is_some()),
            tags: jobs.iter().any(|j| !j.tags.is_empty()),
        })
    }

    /// `(name, in the copy)` for every column, in the order rows are written.
    fn list(&self) -> [(&'static str, bool); 10] {
        [
            ("id", true),
            ("kind", true),
            ("args", true),
            ("queue", self.queue),
            ("priority", self.priority),
            ("max_attempts", self.max_attempts),
            ("scheduled_at", self.scheduled_at),
            ("meta", self.meta),
            ("target", self.target),
            ("tags", self.tags),
        ]
    }

    fn statement(&self) -> String {
        let names: Vec<&str> = self
            .list()
            .into_iter()
            .filter_map(|(name, used)| used.then_some(name))
            .collect();
        format!(
            "COPY bosun.jobs ({}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        )
    }

    fn count(&self) -> i16 {
        let used = self.list().into_iter().filter(|(_, used)| *used).count();
        i16::try_from(used).expect("ten columns at most")
    }
}

/// Reserve ids, then `COPY` the batch in, in one transaction (a savepoint inside the caller's).
async fn copy(
    conn: &mut PgConnection,
    jobs: &[NewJob],
    columns: &CopyColumns,
) -> Result<Vec<Enqueued>> {
    let mut tx = conn.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(include_str!("sql/enqueue_reserve_ids.sql"))
        .bind(i64::try_from(jobs.len()).expect("fewer than 2^63 jobs"))
        .fetch_all(&mut *tx)
        .await?;
    let payload = encode(jobs, &ids, columns);
    let mut copy_in = tx.copy_in_raw(&columns.statement()).await?;
    copy_in.send(payload).await?;
    copy_in.finish().await?;
    tx.commit().await?;
    Ok(ids
        .into_iter()
        .map(|id| Enqueued { id, inserted: true })
        .collect())
}

fn encode(jobs: &[NewJob], ids: &[i64], columns: &CopyColumns) -> Vec<u8> {
    let fields = columns.count();
    let mut out = CopyBuffer::with_capacity(jobs.len() * 64);
    for (job, &id) in jobs.iter().zip(ids) {
        out.row(fields);
        out.int8(id);
        out.text(&job.kind);
        out.jsonb(&job.args);
        if let (true, Some(queue)) = (columns.queue, &job.queue) {
            out.text(queue);
        }
        if let (true, Some(priority)) = (columns.priority, job.priority) {
            out.int2(priority);
        }
        if let (true, Some(max_attempts)) = (columns.max_attempts, job.max_attempts) {
            out.int4(max_attempts);
        }
        if let (true, Some(at)) = (columns.scheduled_at, job.scheduled_at) {
            out.timestamptz(at);
        }
        if let (true, Some(meta)) = (columns.meta, &job.meta) {
            out.jsonb(meta);
        }
        if columns.target {
            match &job.target {
                Some(target) => out.text(target),
                None => out.null(),
            }
        }
        if columns.tags {
            out.text_array(&job.tags);
        }
    }
    out.finish()
}

/// `bosun.enqueue_arrays` with the batch as parallel arrays. `labelled` names a bad job by
/// its index (`jobs[3].kind ...`), for batches.
async fn arrays(conn: &mut PgConnection, jobs: &[NewJob], labelled: bool) -> Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, bool)> = sqlx::query_as(include_str!("sql/enqueue.sql"))
        .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| &j.args).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_deref()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.priority.map(i32::from))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.scheduled_at).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.unique_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.target.as_deref()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| serde_json::json!(j.tags))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.meta.as_ref()).collect::<Vec<_>>())
        .bind(labelled)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, inserted)| Enqueued { id, inserted })
        .collect())
}
