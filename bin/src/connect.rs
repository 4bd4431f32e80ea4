//! Resolving which database a command talks to: `--database-url` / `DATABASE_URL`, or else a
//! throwaway embedded server (migrated at once, since it starts empty).

use anyhow::{bail, Context};
use bosun_queue::{migrate, Client};

use crate::embedded::EmbeddedPostgres;

/// An open database, and the embedded server behind it if there is one (dropped last).
pub struct Database {
    /// The client.
    pub client: Client,
    /// Whether this is a throwaway server that disappears when bosun exits.
    pub throwaway: bool,
    /// The URL it was opened with.
    pub url: String,
    _embedded: Option<EmbeddedPostgres>,
}

/// Connect to `url`, or start a throwaway server when there is none.
///
/// # Errors
/// When the server cannot be reached or started.
pub async fn open(url: Option<&str>) -> anyhow::Result<Database> {
    if let Some(url) = url {
        let client = Client::connect(url)
            .await
            .context("connecting to the database given by --database-url / DATABASE_URL")?;
        return Ok(Database {
            client,
            throwaway: false,
            url: url.to_string(),
            _embedded: None,
        });
    }
    let embedded = tokio::task::spawn_blocking(EmbeddedPostgres::start)
        .await
        .context("starting the embedded PostgreSQL")??;
    eprintln!(
        "bosun: no DATABASE_URL given: started a throwaway PostgreSQL from {} at {}; it is removed when bosun exits",
        embedded.bin_dir().display(),
        embedded.url()
    );
    let client = Client::connect(&embedded.url())
        .await
        .context("connecting to the embedded PostgreSQL")?;
    client
        .migrate()
        .await
        .context("migrating the embedded PostgreSQL")?;
    Ok(Database {
        client,
        throwaway: true,
        url: embedded.url(),
        _embedded: Some(embedded),
    })
}

/// Fail with a clear message unless the schema is at the version this build needs.
///
/// # Errors
/// When the database is behind (run `bosun migrate`) or ahead (upgrade bosun).
pub async fn ensure_migrated(client: &Client) -> anyhow::Result<()> {
    let current = migrate::current_version(client.pool()).await?;
    let latest = migrate::latest_version();
    if current < latest {
        bail!("the database's Bosun schema is at version {current}, this bosun needs {latest}: run `bosun migrate` first");
    }
    if current > latest {
        bail!("the database's Bosun schema is at version {current}, newer than this bosun knows ({latest}): upgrade bosun");
    }
    Ok(())
}
