//! The simulated cloud: resources are named rows in the `bosun_example` schema, so that every
//! worker process sees the same ones and they outlive a killed worker, as a real external
//! system would. Like many real APIs it is strongly consistent by name and eventually
//! consistent in listings: [`create`] of a name that exists answers "already exists" at once,
//! which is how a retried step finds and adopts what an earlier attempt made; [`list`] shows a
//! resource only some time after it was created (the `listing_lag` given at creation), so a
//! step that looked for its resource in a listing could miss it and make a second one. Every
//! call is written to a call log, so tests can count how often something was really created
//! or deleted.

use std::time::Duration;

use sqlx::PgExecutor;

use bosun_queue::Result;

use crate::schema::{on_schema, pid};

/// What [`create`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The resource was made by this call.
    New,
    /// A resource of that name existed already (made by an earlier attempt).
    Existing,
}

/// Create resource `name` of `kind` unless it exists. Listings show it after `listing_lag`.
///
/// # Errors
/// When the database cannot be reached.
pub async fn create(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    kind: &str,
    listing_lag: Duration,
) -> Result<Created> {
    let made: bool = on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/resource_create.sql"))
            .bind(name)
            .bind(kind)
            .bind(listing_lag.as_secs_f64())
            .bind(pid())
            .fetch_one(pool)
    })
    .await?;
    Ok(if made {
        Created::New
    } else {
        Created::Existing
    })
}

/// Delete resource `name`; true when it existed. Deleting what is gone is fine, like an HTTP
/// 404 on delete.
///
/// # Errors
/// When the database cannot be reached.
pub async fn delete(pool: impl PgExecutor<'_> + Copy, name: &str) -> Result<bool> {
    on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/resource_delete.sql"))
            .bind(name)
            .bind(pid())
            .fetch_one(pool)
    })
    .await
}

/// The resources whose name starts with `prefix` that listings show by now, sorted.
///
/// # Errors
/// When the database cannot be reached.
pub async fn list(pool: impl PgExecutor<'_> + Copy, prefix: &str) -> Result<Vec<String>> {
    on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/resource_list.sql"))
            .bind(prefix)
            .fetch_all(pool)
    })
    .await
}

/// The calls made on `name`, oldest first: `create`, `exists`, `delete` or `missing`.
///
/// # Errors
/// When the database cannot be reached.
pub async fn calls(pool: impl PgExecutor<'_> + Copy, name: &str) -> Result<Vec<String>> {
    on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/call_list.sql"))
            .bind(name)
            .fetch_all(pool)
    })
    .await
}
