//! A saga modelled on a real provisioning flow: snapshot a droplet, then delete the droplet.
//! The delete fails (the cloud answers HTTP 500), so compensation deletes the snapshot again,
//! and the ledger is printed at the end.
//!
//! The snapshot gets a deterministic name (`ctx.resource_name("snap")`, from the saga's key).
//! Before creating anything the step looks for a snapshot of that name and adopts it: if a
//! worker crashed after the cloud made the snapshot but before Bosun recorded the step, the
//! retry finds it instead of making a second one. Listings lag behind creation (eventual
//! consistency), so the lookup retries briefly before concluding that nothing exists.
//!
//! ```sh
//! DATABASE_URL=postgres://localhost/app cargo run -p bosun-examples --example snapshot_saga
//! ```

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bosun_queue::{saga, Client, SagaState};
use bosun_workers::{JobError, SagaDefinition, Step, StepContext, WorkerPool};
use serde::{Deserialize, Serialize};

/// A fake cloud API: snapshots appear in listings `LISTING_LAG` after they are created.
#[derive(Clone, Default)]
struct FakeCloud {
    snapshots: Arc<Mutex<BTreeMap<String, Instant>>>,
}

const LISTING_LAG: Duration = Duration::from_millis(300);

impl FakeCloud {
    fn create_snapshot(&self, name: &str) {
        self.snapshots
            .lock()
            .unwrap()
            .insert(name.to_string(), Instant::now());
    }

    fn list_snapshots(&self) -> Vec<String> {
        self.snapshots
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, created)| created.elapsed() >= LISTING_LAG)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn delete_snapshot(&self, name: &str) {
        // Deleting what is already gone counts as done (an HTTP 404 on delete).
        self.snapshots.lock().unwrap().remove(name);
    }
}

#[derive(Serialize, Deserialize)]
struct Inputs {
    droplet: u64,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    name: String,
    adopted: bool,
}

fn snapshot_saga(cloud: FakeCloud) -> SagaDefinition {
    let for_create = cloud.clone();
    let for_undo = cloud;
    SagaDefinition::new("example.droplet_snapshot")
        .step(
            Step::new("create_snapshot", move |ctx: StepContext| {
                let cloud = for_create.clone();
                async move {
                    let inputs: Inputs = ctx.inputs()?;
                    let name = ctx.resource_name("snap");
                    // Adopt a snapshot an earlier attempt made; listings lag, so look twice.
                    for _ in 0..2 {
                        if cloud.list_snapshots().contains(&name) {
                            return Ok(Snapshot {
                                name,
                                adopted: true,
                            });
                        }
                        tokio::time::sleep(LISTING_LAG).await;
                    }
                    println!("  snapshotting droplet {} as {name}", inputs.droplet);
                    cloud.create_snapshot(&name);
                    Ok(Snapshot {
                        name,
                        adopted: false,
                    })
                }
            })
            .undo(move |ctx: StepContext| {
                let cloud = for_undo.clone();
                async move {
                    let snapshot: Snapshot = ctx.output("create_snapshot")?;
                    println!("  compensating: deleting snapshot {}", snapshot.name);
                    cloud.delete_snapshot(&snapshot.name);
                    Ok(())
                }
            }),
        )
        .step(
            Step::new("delete_droplet", |_ctx: StepContext| async move {
                Err::<(), _>(JobError::retry("HTTP 500 from the droplet API"))
            })
            .max_attempts(2),
        )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set DATABASE_URL to a PostgreSQL database"))?;
    let client = Client::connect(&url).await?;
    client.migrate().await?;

    let cloud = FakeCloud::default();
    let key = format!("droplet-1234-{}", std::process::id());
    let id = client
        .start_saga(
            "example.droplet_snapshot",
            &key,
            &serde_json::json!({ "droplet": 1234 }),
        )
        .await?;
    println!("started saga {id} (key {key})");

    let pool = WorkerPool::builder(client.clone())
        .saga(snapshot_saga(cloud.clone()))
        .queue("default", 4)
        .poll_interval(Duration::from_millis(100))
        .build()?;
    let watcher = client.clone();
    pool.run_until(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match saga::saga_get(watcher.pool(), id).await {
                Ok(s)
                    if matches!(
                        s.state,
                        SagaState::Succeeded | SagaState::Compensated | SagaState::Stuck
                    ) =>
                {
                    return
                }
                _ => {}
            }
        }
    })
    .await?;

    let finished = saga::saga_get(client.pool(), id).await?;
    println!("saga {id}: {}", finished.state);
    for step in saga::saga_steps(client.pool(), id).await? {
        let error = step.error.map(|e| format!(" ({e})")).unwrap_or_default();
        println!("  {}: {}{error}", step.name, step.state);
    }
    println!("snapshots left in the cloud: {:?}", cloud.list_snapshots());
    Ok(())
}
