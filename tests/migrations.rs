//! Migrations: up, down to zero, up again; idempotent; safe when replicas run them at once;
//! and migrations/schema.sql, the schema they make, kept in step with them.

use std::collections::BTreeMap;

use bosun_queue::migrate::{self, latest_version};
use bosun_tests::TestDb;

#[tokio::test]
async fn up_down_to_zero_and_up_again() {
    let db = TestDb::empty().await;
    assert_eq!(migrate::current_version(&db.pool).await.unwrap(), 0);

    let up = migrate::migrate_up(&db.pool).await.unwrap();
    assert_eq!(up.current, latest_version());
    assert_eq!(up.changed.len(), migrate::migrations().len());
    db.client
        .enqueue(bosun_queue::NewJob::new("echo", serde_json::json!({})))
        .await
        .unwrap();

    let down = migrate::migrate_down(&db.pool, 0).await.unwrap();
    assert_eq!(down.current, 0);
    let mut reverted = up.changed.clone();
    reverted.reverse();
    assert_eq!(down.changed, reverted, "reverted newest first");
    let schema: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'bosun'")
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    assert_eq!(schema, None, "down to zero removes the schema");

    let again = migrate::migrate_up(&db.pool).await.unwrap();
    assert_eq!(again.changed, up.changed);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "a fresh schema after going down and up");
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let db = TestDb::empty().await;
    migrate::migrate_up(&db.pool).await.unwrap();
    let second = migrate::migrate_up(&db.pool).await.unwrap();
    assert!(second.changed.is_empty());
    assert_eq!(second.current, latest_version());
}

#[tokio::test]
async fn replicas_migrating_at_once_apply_each_migration_once() {
    let db = TestDb::empty().await;
    let runs = (0..6).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(async move { migrate::migrate_up(&pool).await })
    });
    let mut applied = Vec::new();
    for run in runs {
        let report = run
            .await
            .unwrap()
            .expect("every concurrent migrate succeeds");
        assert_eq!(report.current, latest_version());
        applied.extend(report.changed);
    }
    applied.sort_unstable();
    let expected: Vec<i64> = migrate::migrations().iter().map(|m| m.version).collect();
    assert_eq!(
        applied, expected,
        "each migration applied by exactly one replica"
    );
}

#[tokio::test]
async fn down_to_the_current_version_changes_nothing_and_a_negative_one_is_refused() {
    let db = TestDb::empty().await;
    migrate::migrate_up(&db.pool).await.unwrap();
    let down = migrate::migrate_down(&db.pool, latest_version())
        .await
        .unwrap();
    assert!(down.changed.is_empty());
    assert_eq!(down.current, latest_version());
    let jobs_exists: bool = sqlx::query_scalar("SELECT to_regclass('bosun.jobs') IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(jobs_exists);
    assert!(matches!(
        migrate::migrate_down(&db.pool, -1).await,
        Err(bosun_queue::Error::InvalidArgument(_))
    ));
}

/// Every object of schema `bosun` with its definition, as the catalog has it.
async fn catalog(pool: &sqlx::PgPool) -> BTreeMap<(String, String), Option<String>> {
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as(include_str!("sql/schema_catalog.sql"))
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(kind, name, definition)| ((kind, name), definition))
        .collect()
}

/// migrations/schema.sql shows the schema as the migrations make it: a database made from
/// that file holds the same objects, with the same definitions, as a migrated one.
#[tokio::test]
async fn the_checked_in_schema_is_what_the_migrations_make() {
    let migrated = TestDb::empty().await;
    migrate::migrate_up(&migrated.pool).await.unwrap();
    let written = TestDb::empty().await;
    let mut tx = written.pool.begin().await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA bosun")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../migrations/schema.sql"))
        .execute(&mut *tx)
        .await
        .expect("migrations/schema.sql runs on an empty database");
    tx.commit().await.unwrap();

    let (want, have) = (catalog(&migrated.pool).await, catalog(&written.pool).await);
    assert!(want.len() > 100, "{} objects", want.len());
    let differ: Vec<String> = want
        .keys()
        .chain(have.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|key| want.get(*key) != have.get(*key))
        .map(|(kind, name)| format!("{kind} {name}"))
        .collect();
    assert!(
        differ.is_empty(),
        "migrations/schema.sql differs from what the migrations make in: {}; run \
         scripts/dump-schema on a freshly migrated database and commit what it writes",
        differ.join(", ")
    );
}
