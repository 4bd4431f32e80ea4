//! How the Rust client writes jobs, by batch shape, all under the rules of
//! `bosun.enqueue_arrays` (the path of `bosun.enqueue` and `bosun.enqueue_many` in SQL):
//!
//! - one job: a plain `INSERT` that names only the columns the job sets (the table's defaults
//!   fill the rest), checked by the table, so that it costs what any single-row insert of the
//!   same job costs (naming every column as `coalesce($n, default)` costs the server more
//!   per job);
//! - a large batch without unique keys: ids reserved up front, then a binary `COPY`, checked
//!   row by row by the table's trigger and constraints. A bad row rolls the batch back and the
//!   batch is tried again through `bosun.enqueue_arrays`, whose error names the bad job;
//! - anything else: `bosun.enqueue_arrays` in one round trip.
//!
//! Every path returns the ids in input order.
//!
//! The single-row `INSERT` and the `COPY` are the two statements of `bosun-queue` that are
//! built at run time rather than kept in `sql/`: their column lists follow what the jobs set.
//! `tests/sql_statements.rs` lets them through by the comment above each.

use crate::{copy_binary::CopyBuffer, Conn, Enqueued, Error, NewJob, Result};

/// Batches at least this large go through `COPY`: below it the extra round trips (begin,
/// reserve ids, copy, commit) cost more than they save.
const COPY_FROM: usize = 256;

/// Enqueue one job. A bad job is rejected by the table's check, whose message names the
/// rule; when the statement is the whole transaction (`own_transaction`), the job is tried
/// again through `bosun.enqueue_arrays` for the message `bosun.enqueue` gives. Inside a
/// caller's transaction that cannot be done: the error aborted it.
///
/// A unique key that is taken inserts nothing (`ON CONFLICT DO NOTHING`, no row back): the
/// array path then finds the job that holds it.
pub(crate) async fn one(
    mut conn: Conn<'_>,
    job: &NewJob,
    own_transaction: bool,
) -> Result<Enqueued> {
    let statement = Columns::of_job(job).insert_statement();
    // The values the job sets, in the order of `Columns::list`.
    let mut query = sqlx::query_scalar(&statement)
        .bind(job.kind.as_str())
        .bind(&job.args);
    if let Some(queue) = &job.queue {
        query = query.bind(queue.as_str());
    }
    if let Some(priority) = job.priority {
        query = query.bind(priority);
    }
    if let Some(max_attempts) = job.max_attempts {
        query = query.bind(max_attempts);
    }
    if let Some(at) = job.scheduled_at {
        query = query.bind(at);
    }
    if let Some(meta) = &job.meta {
        query = query.bind(meta);
    }
    if let Some(target) = &job.target {
        query = query.bind(target.as_str());
    }
    if !job.tags.is_empty() {
        query = query.bind(&job.tags);
    }
    if let Some(key) = &job.unique_key {
        query = query.bind(key.as_str());
    }
    let inserted: Result<Option<i64>> = query
        .fetch_optional(conn.reborrow())
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
pub(crate) async fn many(mut conn: Conn<'_>, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
    match Columns::for_copy(jobs) {
        Some(columns) => match copy(conn.reborrow(), jobs, &columns).await {
            Err(Error::InvalidArgument(_)) => arrays(conn, jobs, true).await,
            result => result,
        },
        None => arrays(conn, jobs, true).await,
    }
}

/// The optional columns a statement names, besides `kind` and `args` (and, in a `COPY`, the
/// reserved `id`). A column left out gets the table's default, which is what a job that does
/// not set it asks for.
#[derive(Debug, PartialEq)]
struct Columns {
    queue: bool,
    priority: bool,
    max_attempts: bool,
    scheduled_at: bool,
    meta: bool,
    target: bool,
    tags: bool,
    unique_key: bool,
}

impl Columns {
    /// The columns `job` sets.
    fn of_job(job: &NewJob) -> Self {
        Columns {
            queue: job.queue.is_some(),
            priority: job.priority.is_some(),
            max_attempts: job.max_attempts.is_some(),
            scheduled_at: job.scheduled_at.is_some(),
            meta: job.meta.is_some(),
            target: job.target.is_some(),
            tags: !job.tags.is_empty(),
            unique_key: job.unique_key.is_some(),
        }
    }

    /// The columns a `COPY` of a batch fills, if the batch goes through `COPY`. A column goes
    /// in when every job sets it and is left to the table's default when none does; a batch
    /// that mixes the two (or uses unique keys, which need `ON CONFLICT`) takes the array
    /// path. Targets and tags, whose defaults are a NULL and an empty array, go in when any
    /// job sets them.
    fn for_copy(jobs: &[NewJob]) -> Option<Self> {
        if jobs.len() < COPY_FROM || jobs.iter().any(|j| j.unique_key.is_some()) {
            return None;
        }
        let all_or_none = |set: fn(&NewJob) -> bool| {
            let count = jobs.iter().filter(|j| set(j)).count();
            (count == 0 || count == jobs.len()).then_some(count > 0)
        };
        Some(Columns {
            queue: all_or_none(|j| j.queue.is_some())?,
            priority: all_or_none(|j| j.priority.is_some())?,
            max_attempts: all_or_none(|j| j.max_attempts.is_some())?,
            scheduled_at: all_or_none(|j| j.scheduled_at.is_some())?,
            meta: all_or_none(|j| j.meta.is_some())?,
            target: jobs.iter().any(|j| j.target.is_some()),
            tags: jobs.iter().any(|j| !j.tags.is_empty()),
            unique_key: false,
        })
    }

    /// `(name, named)` for every column after `kind` and `args`, in the order values are
    /// written (bound, or encoded in a `COPY` row).
    fn list(&self) -> [(&'static str, bool); 8] {
        [
            ("queue", self.queue),
            ("priority", self.priority),
            ("max_attempts", self.max_attempts),
            ("scheduled_at", self.scheduled_at),
            ("meta", self.meta),
            ("target", self.target),
            ("tags", self.tags),
            ("unique_key", self.unique_key),
        ]
    }

    /// The names, in order, after `leading`.
    fn names(&self, leading: &[&'static str]) -> Vec<&'static str> {
        let named = self
            .list()
            .into_iter()
            .filter_map(|(name, used)| used.then_some(name));
        leading.iter().copied().chain(named).collect()
    }

    /// The single-row `INSERT` of a job that sets these columns, its values bound in order.
    fn insert_statement(&self) -> String {
        let names = self.names(&["kind", "args"]);
        let values: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
        let on_conflict = if self.unique_key {
            " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING"
        } else {
            ""
        };
        // SQL built at run time: the columns are those the job sets.
        format!(
            "INSERT INTO bosun.jobs ({}) VALUES ({}){on_conflict} RETURNING id",
            names.join(", "),
            values.join(", ")
        )
    }

    fn copy_statement(&self) -> String {
        // SQL built at run time: the columns are those the batch sets.
        format!(
            "COPY bosun.jobs ({}) FROM STDIN (FORMAT binary)",
            self.names(&["id", "kind", "args"]).join(", ")
        )
    }

    fn copy_count(&self) -> i16 {
        let used = self.names(&["id", "kind", "args"]).len();
        i16::try_from(used).expect("ten columns at most")
    }
}

/// Reserve ids, then `COPY` the batch in, in one transaction (a savepoint inside the caller's).
async fn copy(mut conn: Conn<'_>, jobs: &[NewJob], columns: &Columns) -> Result<Vec<Enqueued>> {
    let pooler = conn.pooler();
    let mut tx = conn.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(include_str!("sql/enqueue_reserve_ids.sql"))
        .bind(i64::try_from(jobs.len()).expect("fewer than 2^63 jobs"))
        .fetch_all(Conn::new(&mut tx, pooler))
        .await?;
    let payload = encode(jobs, &ids, columns);
    let mut copy_in = tx.copy_in_raw(&columns.copy_statement()).await?;
    copy_in.send(payload).await?;
    copy_in.finish().await?;
    tx.commit().await?;
    Ok(ids
        .into_iter()
        .map(|id| Enqueued { id, inserted: true })
        .collect())
}

fn encode(jobs: &[NewJob], ids: &[i64], columns: &Columns) -> Vec<u8> {
    let fields = columns.copy_count();
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
async fn arrays(conn: Conn<'_>, jobs: &[NewJob], labelled: bool) -> Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let on_conflict = jobs[0].on_conflict;
    if let Some(other) = jobs.iter().position(|j| j.on_conflict != on_conflict) {
        return Err(Error::InvalidArgument(format!(
            "jobs[{}] has on_conflict {} but jobs[1] has {}: the jobs of one batch take one",
            other + 1,
            jobs[other].on_conflict.as_str(),
            on_conflict.as_str()
        )));
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
        .bind(on_conflict.as_str())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, inserted)| Enqueued { id, inserted })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_that_sets_nothing_is_inserted_as_kind_and_args_alone() {
        let job = NewJob::new("echo", serde_json::json!({}));
        assert_eq!(
            Columns::of_job(&job).insert_statement(),
            "INSERT INTO bosun.jobs (kind, args) VALUES ($1, $2) RETURNING id"
        );
    }

    #[test]
    fn a_single_insert_names_what_the_job_sets_in_binding_order() {
        let job = NewJob::new("echo", serde_json::json!({}))
            .queue("mail")
            .priority(3)
            .tags(["a"])
            .unique_key("k");
        assert_eq!(
            Columns::of_job(&job).insert_statement(),
            "INSERT INTO bosun.jobs (kind, args, queue, priority, tags, unique_key) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING RETURNING id"
        );
    }

    #[test]
    fn a_copy_names_the_reserved_id_first_and_never_a_unique_key() {
        let jobs: Vec<NewJob> = (0..COPY_FROM)
            .map(|_| NewJob::new("echo", serde_json::json!({})).queue("mail"))
            .collect();
        let columns = Columns::for_copy(&jobs).expect("a batch this large is copied");
        assert_eq!(
            columns.copy_statement(),
            "COPY bosun.jobs (id, kind, args, queue) FROM STDIN (FORMAT binary)"
        );
        assert_eq!(columns.copy_count(), 4);
        let mut keyed = jobs;
        keyed[0] = NewJob::new("echo", serde_json::json!({})).unique_key("k");
        assert_eq!(Columns::for_copy(&keyed), None);
    }
}
