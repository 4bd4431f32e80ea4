//! Keeping the tables small: delete finished jobs and sagas past their retention, in short
//! batches, vacuum `bosun.jobs` when autovacuum falls behind, and give back what it grew by
//! while vacuum could not run. The calls behind the pruner, the vacuumer and the compactor
//! in `bosun-workers`.
//!
//! Internal: used by Bosun's own runtime, not covered by semver (hidden from the
//! documentation).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::{JobState, Result};

/// Delete up to `limit` jobs in final `state` that finished more than `older_than` ago, and
/// not before `after` (when an earlier pass deleted everything older). Returns how many were
/// deleted.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a state that is not final; [`crate::Error::Database`]
/// if the delete fails.
pub async fn job_prune_batch(
    pool: impl PgExecutor<'_> + Copy,
    state: JobState,
    older_than: Duration,
    limit: i64,
    after: Option<DateTime<Utc>>,
) -> Result<u64> {
    if !state.is_final() {
        return Err(crate::Error::InvalidArgument(format!(
            "only completed, failed or cancelled jobs are pruned, not {state}"
        )));
    }
    Ok(sqlx::query(include_str!("sql/job_prune_batch.sql"))
        .bind(state)
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .bind(after)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Delete up to `limit` sagas that finished (succeeded or compensated) more than
/// `older_than` ago, with their ledgers. Returns how many were deleted.
///
/// # Errors
/// [`crate::Error::Database`] if the delete fails.
pub async fn saga_prune_batch(
    pool: impl PgExecutor<'_> + Copy,
    older_than: Duration,
    limit: i64,
) -> Result<u64> {
    Ok(sqlx::query(include_str!("sql/saga_prune_batch.sql"))
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Dead and live row versions of `bosun.jobs` per the statistics, for the vacuumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadRows {
    /// Row versions no transaction can see any more, not yet vacuumed.
    pub dead: i64,
    /// Live rows.
    pub live: i64,
    /// Whether a vacuum of the table (autovacuum or another) is running now.
    pub vacuuming: bool,
    /// Whether the connected role may vacuum the table (it is, or is a member of, its owner).
    pub may_vacuum: bool,
}

/// How many dead row versions `bosun.jobs` holds.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_dead_rows(pool: impl PgExecutor<'_> + Copy) -> Result<DeadRows> {
    Ok(sqlx::query_as(include_str!("sql/jobs_dead_rows.sql"))
        .fetch_one(pool)
        .await?)
}

/// `VACUUM bosun.jobs`: makes the space of dead row versions reusable and drops index
/// entries that lead to them. Takes no lock that claims, enqueues or completions wait on.
///
/// # Errors
/// [`crate::Error::Database`] if it fails (e.g. the role may not vacuum the table).
pub async fn jobs_vacuum(pool: impl PgExecutor<'_> + Copy) -> Result<()> {
    sqlx::raw_sql(include_str!("sql/scripts/jobs_vacuum.sql"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Bytes on disk of `bosun.jobs`: its heap, and each valid index by schema-qualified name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobsStorage {
    /// Bytes of the heap.
    pub heap: i64,
    /// Each index.
    pub indexes: Vec<IndexStorage>,
}

/// One index of `bosun.jobs` on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexStorage {
    /// Schema-qualified name (`bosun.jobs_pkey`).
    pub name: String,
    /// Bytes.
    pub bytes: i64,
    /// Entries it held at its last vacuum or build (`pg_class.reltuples`; negative if never
    /// counted).
    pub entries: f64,
}

/// What `bosun.jobs` takes on disk now.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_storage(pool: impl PgExecutor<'_> + Copy) -> Result<JobsStorage> {
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(include_str!("sql/jobs_storage.sql"))
        .fetch_all(pool)
        .await?;
    let mut storage = JobsStorage::default();
    for (name, bytes, entries) in rows {
        if name.is_empty() {
            storage.heap = bytes;
        } else {
            storage.indexes.push(IndexStorage {
                name,
                bytes,
                entries,
            });
        }
    }
    Ok(storage)
}

/// How many transactions old the oldest snapshot is that holds the vacuum horizon back, of
/// those this role can see (other sessions' only in full to their own role, superusers and
/// `pg_read_all_stats`; replication slots; prepared transactions). 0 if none.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn horizon_age(pool: impl PgExecutor<'_> + Copy) -> Result<i64> {
    Ok(sqlx::query_scalar(include_str!("sql/jobs_horizon_age.sql"))
        .fetch_one(pool)
        .await?)
}

/// Whether `bosun.jobs` holds a live row at heap page `page` or after it.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_tail_live(pool: impl PgExecutor<'_> + Copy, page: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(include_str!("sql/jobs_tail_live.sql"))
        .bind(page)
        .fetch_one(pool)
        .await?)
}

/// `VACUUM (TRUNCATE true) bosun.jobs`: vacuum, and give back the empty pages at the end of
/// the heap. The truncation's lock is taken only when free and let go within about 20 ms of
/// anyone waiting for the table.
///
/// # Errors
/// [`crate::Error::Database`] if it fails (e.g. the role may not vacuum the table).
pub async fn jobs_vacuum_truncate(pool: impl PgExecutor<'_> + Copy) -> Result<()> {
    sqlx::raw_sql(include_str!("sql/scripts/jobs_vacuum_truncate.sql"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Indexes of `bosun.jobs` that a `REINDEX CONCURRENTLY` left invalid when it did not finish.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_invalid_indexes(pool: impl PgExecutor<'_> + Copy) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar(include_str!("sql/jobs_invalid_indexes.sql"))
            .fetch_all(pool)
            .await?,
    )
}

/// `REINDEX INDEX CONCURRENTLY name`: build index `name` of `bosun.jobs` afresh beside the old
/// one and swap them, without a lock that writes wait on. It gives up (leaving an invalid
/// index behind, see [`jobs_invalid_indexes`]) when a wait, for a lock or for a snapshot older
/// than the build, lasts longer than `wait_at_most`: while something holds the vacuum
/// horizon back, a rebuild would wait for it, and would hold the horizon back itself (the
/// table's indexes are partial) meanwhile. `name` is one [`jobs_storage`] gave.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a name that is not a plain `schema.index`;
/// [`crate::Error::Database`] if it fails or gives up.
pub async fn index_rebuild(pool: &sqlx::PgPool, name: &str, wait_at_most: Duration) -> Result<()> {
    let name = qualified_identifier(name)?;
    // A connection of its own, with the timeout set when it opens: the statement cannot run
    // in a transaction, so the setting has to outlive one.
    let options = (*pool.connect_options()).clone().options([(
        "lock_timeout",
        format!("{}ms", wait_at_most.as_millis().max(1)),
    )]);
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    // SQL built at run time: an index's name cannot be a parameter.
    let sql = format!("REINDEX INDEX CONCURRENTLY {name}");
    let rebuilt = sqlx::raw_sql(&sql).execute(&own).await;
    own.close().await;
    rebuilt?;
    Ok(())
}

/// `DROP INDEX CONCURRENTLY name`, for an index [`jobs_invalid_indexes`] gave.
///
/// # Errors
/// As [`index_rebuild`].
pub async fn index_drop(pool: impl for<'e> PgExecutor<'e> + Copy, name: &str) -> Result<()> {
    let name = qualified_identifier(name)?;
    // SQL built at run time: an index's name cannot be a parameter.
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {name}");
    sqlx::raw_sql(&sql).execute(pool).await?;
    Ok(())
}

/// `name` if it is `schema.relation` of identifiers that need no quoting.
fn qualified_identifier(name: &str) -> Result<&str> {
    let plain = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match name.split_once('.') {
        Some((schema, relation)) if plain(schema) && plain(relation) => Ok(name),
        _ => Err(crate::Error::InvalidArgument(format!(
            "index name {}: use schema.index of lower-case letters, digits and _",
            crate::quote_short(name)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::qualified_identifier;

    #[test]
    fn only_plain_qualified_names_are_taken() {
        assert!(qualified_identifier("bosun.jobs_pkey").is_ok());
        for bad in [
            "jobs_pkey",
            "bosun.jobs; DROP TABLE x",
            "\"Bosun\".x",
            "bosun.",
            ".x",
        ] {
            assert!(qualified_identifier(bad).is_err(), "{bad}");
        }
    }
}
