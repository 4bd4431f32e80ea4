//! The reconciler pattern, modelled on an export coordinator: read-only volumes must each be
//! exported through a storage *pantry*. A periodic job compares the volumes that want an
//! export with the export records that exist, starts a create saga for each missing one and a
//! delete saga for each surplus one, and treats records on an expunged pantry as gone, so
//! their volumes are exported again on a live pantry.
//!
//! Every saga key is derived from the export record (`export:create:<id>`,
//! `export:delete:<id>`), and a record is inserted only when its volume has no live one, so
//! overlapping or repeated reconciler runs start nothing twice. The sagas are attached to
//! their pantry as a Bosun target: expunging the pantry fails the sagas in flight on it and
//! counts their undos as done.
//!
//! ```sh
//! DATABASE_URL=postgres://localhost/app cargo run -p bosun-examples --example export_reconciler
//! ```
//!
//! It runs a short scenario and exits 0 when every stage reached the expected state: six
//! volumes exported across `pantry-a` and `pantry-b`; two volumes no longer wanted and their
//! exports deleted; `pantry-a` expunged and its exports recreated on `pantry-b`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bosun_queue::{sqlx, sqlx::PgPool, Client, JobArgs, NewJob};
use bosun_workers::{
    JobContext, JobError, JobResult, Periodic, SagaDefinition, Step, StepContext, Worker,
    WorkerPool,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

const SCHEMA: &str = "
    DROP SCHEMA IF EXISTS export_demo CASCADE;
    CREATE SCHEMA export_demo;
    -- What wants an export.
    CREATE TABLE export_demo.volumes (id integer PRIMARY KEY, wanted boolean NOT NULL);
    -- Export records: requested -> live -> deleted (or deleted when their pantry is gone).
    CREATE TABLE export_demo.exports (
        id        bigserial PRIMARY KEY,
        volume_id integer NOT NULL REFERENCES export_demo.volumes (id),
        pantry    text    NOT NULL,
        state     text    NOT NULL DEFAULT 'requested'
    );
    -- At most one record per volume that is not deleted.
    CREATE UNIQUE INDEX exports_one_active ON export_demo.exports (volume_id)
        WHERE state <> 'deleted';
    -- What each pantry holds: the simulated external system.
    CREATE TABLE export_demo.pantry_objects (pantry text, name text, PRIMARY KEY (pantry, name));";

/// Inputs of both sagas: one export record.
#[derive(Debug, Serialize, Deserialize)]
struct ExportRecord {
    export_id: i64,
    pantry: String,
}

impl ExportRecord {
    fn object(&self) -> String {
        format!("export-{}", self.export_id)
    }
}

fn pool_of(ctx: &StepContext) -> &PgPool {
    ctx.client().pool()
}

/// `export.create`: attach the volume's export object to the pantry (adopting one an earlier
/// attempt made), then mark the record live.
fn create_saga() -> SagaDefinition {
    SagaDefinition::new("export.create")
        .step(
            Step::new("attach", |ctx: StepContext| async move {
                let record: ExportRecord = ctx.inputs()?;
                sqlx::query(
                    "INSERT INTO export_demo.pantry_objects VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(&record.pantry)
                .bind(record.object())
                .execute(pool_of(&ctx))
                .await?;
                Ok(record.object())
            })
            .undo(|ctx: StepContext| async move {
                let record: ExportRecord = ctx.inputs()?;
                detach(pool_of(&ctx), &record).await
            }),
        )
        .step(Step::new("record", |ctx: StepContext| async move {
            let record: ExportRecord = ctx.inputs()?;
            sqlx::query(
                "UPDATE export_demo.exports SET state = 'live' WHERE id = $1 AND state = 'requested'",
            )
            .bind(record.export_id)
            .execute(pool_of(&ctx))
            .await?;
            Ok(())
        }))
}

/// `export.delete`: detach the object (already gone is fine), then mark the record deleted.
fn delete_saga() -> SagaDefinition {
    SagaDefinition::new("export.delete")
        .step(Step::new("detach", |ctx: StepContext| async move {
            let record: ExportRecord = ctx.inputs()?;
            detach(pool_of(&ctx), &record).await
        }))
        .step(Step::new("forget", |ctx: StepContext| async move {
            let record: ExportRecord = ctx.inputs()?;
            sqlx::query("UPDATE export_demo.exports SET state = 'deleted' WHERE id = $1")
                .bind(record.export_id)
                .execute(pool_of(&ctx))
                .await?;
            Ok(())
        }))
}

async fn detach(pool: &PgPool, record: &ExportRecord) -> Result<(), JobError> {
    sqlx::query("DELETE FROM export_demo.pantry_objects WHERE pantry = $1 AND name = $2")
        .bind(&record.pantry)
        .bind(record.object())
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct Reconcile {}

impl JobArgs for Reconcile {
    const KIND: &'static str = "export.reconcile";
}

/// The periodic reconciler.
struct Reconciler;

impl Worker for Reconciler {
    type Args = Reconcile;

    async fn work(&self, ctx: JobContext, _args: Reconcile) -> JobResult {
        let client = ctx.client();
        let pool = client.pool();
        // Records on an expunged pantry are gone: the pantry took them along.
        sqlx::query(
            "UPDATE export_demo.exports AS e SET state = 'deleted'
             FROM bosun.targets AS t
             WHERE t.name = e.pantry AND t.state = 'expunged' AND e.state <> 'deleted'",
        )
        .execute(pool)
        .await?;
        // Missing: a wanted volume without a record gets one on a live pantry.
        sqlx::query(
            "WITH live AS (
                 SELECT name, row_number() OVER (ORDER BY name) - 1 AS i, count(*) OVER () AS n
                 FROM bosun.targets WHERE kind = 'pantry' AND state = 'in_service'
             )
             INSERT INTO export_demo.exports (volume_id, pantry)
             SELECT v.id, live.name FROM export_demo.volumes AS v
             JOIN live ON live.i = v.id % live.n
             WHERE v.wanted
             ON CONFLICT DO NOTHING",
        )
        .execute(pool)
        .await?;
        let requested: Vec<(i64, String)> = sqlx::query_as(
            "SELECT e.id, e.pantry FROM export_demo.exports AS e
             JOIN export_demo.volumes AS v ON v.id = e.volume_id
             WHERE e.state = 'requested' AND v.wanted",
        )
        .fetch_all(pool)
        .await?;
        for (export_id, pantry) in requested {
            start(client, "export.create", export_id, pantry).await?;
        }
        // Surplus: a live record of a volume no longer wanted is deleted.
        let surplus: Vec<(i64, String)> = sqlx::query_as(
            "SELECT e.id, e.pantry FROM export_demo.exports AS e
             JOIN export_demo.volumes AS v ON v.id = e.volume_id
             WHERE e.state = 'live' AND NOT v.wanted",
        )
        .fetch_all(pool)
        .await?;
        for (export_id, pantry) in surplus {
            start(client, "export.delete", export_id, pantry).await?;
        }
        Ok(())
    }
}

/// Start `kind` for one record under a key derived from it: a repeat returns the saga that
/// exists. A pantry expunged since the record was read refuses it; the next run handles it.
async fn start(client: &Client, kind: &str, export_id: i64, pantry: String) -> JobResult {
    let verb = kind.trim_start_matches("export.");
    let key = format!("export:{verb}:{export_id}");
    let inputs = json!(ExportRecord {
        export_id,
        pantry: pantry.clone()
    });
    match client.start_saga_on(&pantry, kind, &key, &inputs).await {
        Ok(_) | Err(bosun_queue::Error::WrongState(_)) => Ok(()),
        Err(error) => Err(JobError::retry(error)),
    }
}

/// Live exports by pantry, sorted: `(volume, pantry)`.
async fn live_exports(pool: &PgPool) -> anyhow::Result<Vec<(i32, String)>> {
    Ok(sqlx::query_as(
        "SELECT volume_id, pantry FROM export_demo.exports WHERE state = 'live' ORDER BY volume_id",
    )
    .fetch_all(pool)
    .await?)
}

/// Wait until `check` holds for the live exports and no saga is in flight, then print them.
async fn wait_for(
    pool: &PgPool,
    what: &str,
    check: impl Fn(&[(i32, String)]) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = live_exports(pool).await?;
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bosun.sagas WHERE state IN ('running', 'compensating')",
        )
        .fetch_one(pool)
        .await?;
        if check(&live) && in_flight == 0 {
            println!("{what}: {live:?}");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for: {what}; live exports: {live:?}, sagas in flight: {in_flight}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL")?;
    let client = Client::connect(&url).await?;
    client.migrate().await?;
    let pool = client.pool().clone();
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    sqlx::query("INSERT INTO export_demo.volumes SELECT i, true FROM generate_series(1, 6) i")
        .execute(&pool)
        .await?;
    for pantry in ["pantry-a", "pantry-b"] {
        client.register_target(pantry, Some("pantry")).await?;
    }

    let every_second = Periodic::new(
        "export.reconcile",
        "* * * * * *",
        NewJob::new(Reconcile::KIND, json!({})),
    )?;
    let workers = WorkerPool::builder(client.clone())
        .register(Reconciler)
        .saga(create_saga())
        .saga(delete_saga())
        .periodic(every_second)
        .queue("default", 8)
        .poll_interval(Duration::from_millis(100))
        .maintenance_interval(Duration::from_millis(250))
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        workers
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });

    let outcome = async {
        wait_for(&pool, "six volumes exported on two pantries", |live| {
            live.len() == 6 && live.iter().any(|(_, p)| p == "pantry-a")
        })
        .await?;
        sqlx::query("UPDATE export_demo.volumes SET wanted = false WHERE id IN (5, 6)")
            .execute(&pool)
            .await?;
        wait_for(&pool, "volumes 5 and 6 no longer exported", |live| {
            live.iter().map(|(v, _)| *v).eq(1..=4)
        })
        .await?;
        client
            .expunge_target("pantry-a", Some("sled removed"))
            .await?;
        wait_for(
            &pool,
            "pantry-a expunged; its exports recreated on pantry-b",
            |live| {
                live.iter().map(|(v, _)| *v).eq(1..=4) && live.iter().all(|(_, p)| p == "pantry-b")
            },
        )
        .await?;
        let objects: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM export_demo.pantry_objects WHERE pantry = 'pantry-b'",
        )
        .fetch_one(&pool)
        .await?;
        println!("pantry-b holds {objects} export objects");
        anyhow::Ok(())
    }
    .await;
    let _ = stop.send(());
    running.await??;
    outcome
}
