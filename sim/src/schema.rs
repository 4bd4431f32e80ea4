//! The `bosun_example` schema is made on first use rather than by a migration, because it is
//! not part of Bosun's own: a call that finds it missing makes it and runs once more.

use std::future::Future;

use sqlx::PgExecutor;

use bosun_queue::Result;

/// Run `call`; when the schema does not exist yet, make it and run `call` once more.
pub(crate) async fn on_schema<T, F, Fut>(pool: impl PgExecutor<'_> + Copy, call: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    match call().await {
        Err(error) if is_missing_schema(&error) => {
            sqlx::raw_sql(include_str!("sql/scripts/schema_create.sql"))
                .execute(pool)
                .await?;
            Ok(call().await?)
        }
        result => Ok(result?),
    }
}

/// Undefined table (42P01) or undefined schema (3F000).
pub(crate) fn is_missing_schema(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P01" || code == "3F000")
}

/// This process's id, as the call log and the holds record it.
pub(crate) fn pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}
