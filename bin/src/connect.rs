//! Resolving which database a command talks to: `--database-url` / `DATABASE_URL`. Only
//! `demo` and `bench` fall back to a throwaway embedded server (migrated at once, since it
//! starts empty): for any other command a server that vanishes on exit would lose what the
//! command wrote, so without a URL it is a usage error.

use anyhow::{bail, Context};
use bosun_queue::{migrate, Client, ClientOptions, Pooler};

use crate::{commands::Usage, embedded::EmbeddedPostgres};

/// What to say when a command needs a database and none was given.
pub const NO_DATABASE_URL: &str = "no database given: set DATABASE_URL=postgres://user@host/db or pass --database-url postgres://user@host/db (only `bosun demo` and `bosun bench` start a throwaway PostgreSQL of their own)";

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

/// Connect to `url` (through `pooler`); without one, fail with a usage error that says how to give one.
///
/// # Errors
/// [`Usage`] without a URL or with one that is not a PostgreSQL URL; otherwise when the
/// server cannot be reached.
pub async fn open(url: Option<&str>, pooler: Pooler) -> anyhow::Result<Database> {
    let Some(url) = url else {
        return Err(Usage(NO_DATABASE_URL.to_string()).into());
    };
    let client = match Client::connect_with(url, ClientOptions::new().pooler(pooler)).await {
        Ok(client) => client,
        Err(bosun_queue::Error::InvalidArgument(message)) => return Err(Usage(message).into()),
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context("connecting to the database given by --database-url / DATABASE_URL"))
        }
    };
    Ok(Database {
        client,
        throwaway: false,
        url: url.to_string(),
        _embedded: None,
    })
}

/// Connect to `url`, or start a throwaway server when there is none (`demo`, `bench`),
/// which is reached directly whatever `pooler` says.
///
/// # Errors
/// As [`open`], or when the throwaway server cannot be started.
pub async fn open_or_throwaway(url: Option<&str>, pooler: Pooler) -> anyhow::Result<Database> {
    if url.is_some() {
        return open(url, pooler).await;
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
    let current = migrate::current_version(client.db()).await?;
    let latest = migrate::latest_version();
    if current < latest {
        bail!("the database's Bosun schema is at version {current}, this bosun needs {latest}: run `bosun migrate` first");
    }
    if current > latest {
        bail!("the database's Bosun schema is at version {current}, newer than this bosun knows ({latest}): upgrade bosun");
    }
    Ok(())
}
