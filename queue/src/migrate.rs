//! Embedded, numbered, reversible migrations.
//!
//! The files in `migrations/` (`NNNN_name.up.sql` / `.down.sql`) are embedded at build time by
//! `sqlx::migrate!`. Bosun applies them itself rather than through sqlx's runner so that its
//! bookkeeping lives in its own schema (`bosun.schema_migrations`) and never mixes with an
//! application's own `_sqlx_migrations` table, whose version numbers would collide with ours.
//!
//! Safety with many replicas: a whole run is one transaction that first takes a
//! transaction-scoped advisory lock, so replicas starting together queue up behind the first;
//! the later ones find everything applied and do nothing. PostgreSQL DDL is transactional, so
//! a failed migration leaves no half-applied schema behind.

use sqlx::{migrate::MigrationType, Executor, PgExecutor};

use crate::{Conn, Db, Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Advisory lock key shared by every Bosun migration run ("bosun:migrate").
const MIGRATE_LOCK_KEY: i64 = 0x626f_7375_6e3a_6d67;

/// One embedded migration, as listed by [`migrations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// Its number, e.g. 1 for `0001_jobs`.
    pub version: i64,
    /// Its name, e.g. `jobs`.
    pub description: String,
}

/// What a migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Versions applied (up) or reverted (down) by this run, in the order it did them.
    pub changed: Vec<i64>,
    /// The version the schema is at afterwards (0: no Bosun schema).
    pub current: i64,
}

/// Every migration this build knows, oldest first.
pub fn migrations() -> Vec<MigrationInfo> {
    MIGRATOR
        .iter()
        .filter(|m| is_up(m.migration_type))
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

/// The newest migration version this build knows.
pub fn latest_version() -> i64 {
    migrations().last().map_or(0, |m| m.version)
}

fn is_up(kind: MigrationType) -> bool {
    matches!(kind, MigrationType::ReversibleUp | MigrationType::Simple)
}

/// Apply every pending migration. Idempotent; safe to run from many replicas at once.
///
/// # Errors
/// [`Error::Migration`] if an applied migration's text differs from this build's (someone
/// edited a released migration) or the database is at a version this build does not know;
/// [`Error::Database`] if a statement fails (nothing is applied then).
pub async fn migrate_up<'a>(db: impl Into<Db<'a>>) -> Result<MigrateReport> {
    let db = db.into();
    let mut tx = db.begin().await?;
    prepare(db.on(&mut tx)).await?;
    let applied = applied_versions(db.on(&mut tx)).await?;
    let known = latest_version();
    if let Some((version, _)) = applied.iter().find(|(v, _)| *v > known) {
        return Err(Error::Migration(format!(
            "the database is at migration {version}, newer than this build knows ({known}); upgrade bosun"
        )));
    }
    let mut report = MigrateReport::default();
    for migration in MIGRATOR.iter().filter(|m| is_up(m.migration_type)) {
        match applied.iter().find(|(v, _)| *v == migration.version) {
            Some((_, checksum)) if checksum.as_slice() != &*migration.checksum => {
                return Err(Error::Migration(format!(
                    "migration {} ({}) was changed after it was applied",
                    migration.version, migration.description
                )));
            }
            Some(_) => {}
            None => {
                db.on(&mut tx)
                    .execute(sqlx::raw_sql(&migration.sql))
                    .await
                    .map_err(|e| {
                        Error::Migration(format!(
                            "migration {} ({}) failed: {e}",
                            migration.version, migration.description
                        ))
                    })?;
                sqlx::query(include_str!("sql/migration_insert.sql"))
                    .bind(migration.version)
                    .bind(&*migration.description)
                    .bind(&*migration.checksum)
                    .execute(db.on(&mut tx))
                    .await?;
                report.changed.push(migration.version);
            }
        }
    }
    report.current = applied_versions(db.on(&mut tx))
        .await?
        .last()
        .map_or(0, |(v, _)| *v);
    tx.commit().await?;
    Ok(report)
}

/// Revert migrations down to `target` (exclusive: `0` removes the Bosun schema entirely,
/// jobs included). Runs in one transaction under the same lock as [`migrate_up`].
///
/// # Errors
/// [`Error::InvalidArgument`] for a negative target; otherwise as [`migrate_up`].
pub async fn migrate_down<'a>(db: impl Into<Db<'a>>, target: i64) -> Result<MigrateReport> {
    let db = db.into();
    if target < 0 {
        return Err(Error::InvalidArgument(format!(
            "target version must be 0 or more, got {target}"
        )));
    }
    let mut tx = db.begin().await?;
    prepare(db.on(&mut tx)).await?;
    let applied = applied_versions(db.on(&mut tx)).await?;
    let mut report = MigrateReport::default();
    for (version, _) in applied.iter().rev().filter(|(v, _)| *v > target) {
        let down = MIGRATOR
            .iter()
            .find(|m| m.version == *version && m.migration_type == MigrationType::ReversibleDown)
            .ok_or_else(|| {
                Error::Migration(format!("migration {version} has no down migration"))
            })?;
        db.on(&mut tx)
            .execute(sqlx::raw_sql(&down.sql))
            .await
            .map_err(|e| Error::Migration(format!("reverting migration {version} failed: {e}")))?;
        sqlx::query(include_str!("sql/migration_delete.sql"))
            .bind(version)
            .execute(db.on(&mut tx))
            .await?;
        report.changed.push(*version);
    }
    report.current = applied_versions(db.on(&mut tx))
        .await?
        .last()
        .map_or(0, |(v, _)| *v);
    if target == 0 {
        // Nothing of Bosun's is left but the bookkeeping: remove it and the schema, unless
        // someone put objects of their own into it.
        db.on(&mut tx)
            .execute(sqlx::raw_sql(include_str!(
                "sql/scripts/migrate_drop_schema.sql"
            )))
            .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// The version the database is at (0 when Bosun was never migrated there).
///
/// # Errors
/// [`Error::Database`] if the query fails.
pub async fn current_version(pool: impl PgExecutor<'_> + Copy) -> Result<i64> {
    let version: Option<i64> = sqlx::query_scalar(include_str!("sql/migration_table_missing.sql"))
        .fetch_one(pool)
        .await?;
    if let Some(zero) = version {
        return Ok(zero);
    }
    let max: Option<i64> = sqlx::query_scalar(include_str!("sql/migration_current.sql"))
        .fetch_one(pool)
        .await?;
    Ok(max.unwrap_or(0))
}

/// Take the migration lock and make sure the schema and bookkeeping table exist.
async fn prepare(mut conn: Conn<'_>) -> Result<()> {
    sqlx::query(include_str!("sql/migrate_lock.sql"))
        .bind(MIGRATE_LOCK_KEY)
        .execute(conn.reborrow())
        .await?;
    conn.execute(sqlx::raw_sql(include_str!(
        "sql/scripts/migrate_prepare.sql"
    )))
    .await?;
    Ok(())
}

async fn applied_versions(conn: Conn<'_>) -> Result<Vec<(i64, Vec<u8>)>> {
    Ok(sqlx::query_as(include_str!("sql/migration_applied.sql"))
        .fetch_all(conn)
        .await?)
}
