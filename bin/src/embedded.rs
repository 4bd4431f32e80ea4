//! A throwaway PostgreSQL server started from the machine's own PostgreSQL installation.
//!
//! With no `DATABASE_URL`, `bosun` (and the test suite) runs against a fresh server in a
//! temporary directory on a free loopback port, so that trying Bosun needs nothing but an
//! installed PostgreSQL. The server is removed when the [`EmbeddedPostgres`] is dropped, and a
//! small watchdog process removes it too if this process dies without dropping it (kill -9).
//!
//! PostgreSQL refuses to run as root; as root the server runs as the `postgres` system user
//! (or `nobody`). The server gets its own process group so that Ctrl-C in a terminal reaches
//! only `bosun`, which can then shut down gracefully while the database is still up.
//! Durability is traded for speed (`fsync=off`): the data is thrown away anyway.

use std::{
    fmt,
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Where PostgreSQL's server programs are looked for, after `PATH`.
const INSTALL_DIR_GLOBS: &[&str] = &[
    "/usr/lib/postgresql", // Debian, Ubuntu: /usr/lib/postgresql/<version>/bin
    "/usr/pgsql-",         // RHEL, Fedora (PGDG): /usr/pgsql-<version>/bin
    "/opt/homebrew/opt/postgresql@", // macOS (Apple silicon)
    "/usr/local/opt/postgresql@", // macOS (Intel)
];
const FIXED_DIRS: &[&str] = &["/usr/local/pgsql/bin", "/usr/lib/postgresql/bin"];

/// How to get PostgreSQL when none is installed.
pub const INSTALL_HINT: &str = "no PostgreSQL installation found (looked for initdb and pg_ctl on PATH and under /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin).
Either point bosun at a server with DATABASE_URL=postgres://user@host/db (or --database-url),
or install PostgreSQL so bosun can start a throwaway one:
  Debian/Ubuntu:  sudo apt-get install -y postgresql
  Fedora/RHEL:    sudo dnf install -y postgresql-server
  macOS:          brew install postgresql@16";

/// Why the embedded server could not start.
#[derive(Debug)]
pub enum EmbeddedError {
    /// No PostgreSQL installation was found; the text says how to install one.
    NotInstalled,
    /// A step failed; the text says which and includes the server's log when there is one.
    Failed(String),
}

impl fmt::Display for EmbeddedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbeddedError::NotInstalled => f.write_str(INSTALL_HINT),
            EmbeddedError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for EmbeddedError {}

/// A running throwaway server. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl EmbeddedPostgres {
    /// Find PostgreSQL, create a cluster in a temporary directory and start it.
    ///
    /// # Errors
    /// [`EmbeddedError::NotInstalled`] when no installation is found; [`EmbeddedError::Failed`]
    /// when initdb or the server fails (with the server log).
    pub fn start() -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::NotInstalled)?;
        let run_as = if current_uid() == Some(0) {
            Some(unprivileged_user()?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!("bosun-pg-{}-{}", std::process::id(), nonce()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed(&format!("creating {}", dir.display()), e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed("setting permissions", e))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| failed("handing the directory to the server's user", e))?;
        }
        let mut server = EmbeddedPostgres {
            dir,
            bin_dir,
            port: 0,
            run_as,
            stopped: false,
        };
        server.spawn_watchdog()?;
        server.initdb()?;
        // A port can be taken between our probe and the server's bind; try a few.
        let mut last_error = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| EmbeddedError::Failed("server did not start".into())))
    }

    /// A connection URL for the server's `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection URL for database `database` on this server.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://bosun@127.0.0.1:{}/{database}", self.port)
    }

    /// The directory holding the cluster and its log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PostgreSQL server programs in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Stop the server, keeping its files (start it again with [`EmbeddedPostgres::restart`]).
    ///
    /// # Errors
    /// [`EmbeddedError::Failed`] if pg_ctl fails.
    pub fn stop(&mut self, mode: &str) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        self.run_pg_tool(
            "pg_ctl",
            &["-D", &data, "-m", mode, "-w", "stop"],
            "stopping the server",
        )
    }

    /// Start a stopped server again on the same port.
    ///
    /// # Errors
    /// [`EmbeddedError::Failed`] if it does not start.
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.pg_ctl_start()
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        self.run_pg_tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "bosun",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            "initdb",
        )
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        self.run_pg_tool(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
            "starting the server",
        )
    }

    fn run_pg_tool(&self, tool: &str, args: &[&str], what: &str) -> Result<(), EmbeddedError> {
        let mut command = Command::new(self.bin_dir.join(tool));
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("LC_ALL", "C")
            // Keep terminal signals (Ctrl-C) away from the server.
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        let output = command
            .output()
            .map_err(|e| failed(&format!("running {tool}"), e))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(EmbeddedError::Failed(format!(
            "{what} failed ({}):\n{}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            log.lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )))
    }

    /// A shell loop that outlives us: once this process is gone, it stops the server
    /// (SIGQUIT to the postmaster: immediate shutdown) and deletes the directory.
    fn spawn_watchdog(&self) -> Result<(), EmbeddedError> {
        let script = format!(
            "trap '' INT TERM HUP; while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -f '{dir}/data/postmaster.pid' ]; then kill -QUIT \"$(head -n 1 '{dir}/data/postmaster.pid')\" 2>/dev/null; sleep 2; fi; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(drop)
            .map_err(|e| failed("starting the cleanup watchdog", e))
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = self.stop("immediate");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn failed(what: &str, error: impl fmt::Display) -> EmbeddedError {
    EmbeddedError::Failed(format!("embedded PostgreSQL: {what}: {error}"))
}

/// The directory holding `initdb` and `pg_ctl`: PATH first, then the usual install places
/// (the newest version when several are installed).
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_tools(&dir) {
                // Debian puts wrappers or symlinks on PATH; resolve to the real directory so
                // the server binary next to initdb is found.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_tools(d))
                    .unwrap_or(dir);
                return Some(real);
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = Vec::new();
    for prefix in INSTALL_DIR_GLOBS {
        let (parent, stem) = match prefix.rsplit_once('/') {
            Some((parent, stem)) => (parent, stem),
            None => continue,
        };
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(stem) else {
                continue;
            };
            let version: u32 = rest
                .split('.')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let dir = entry.path().join("bin");
            if has_tools(&dir) {
                candidates.push((version, dir));
            }
        }
    }
    candidates.sort();
    candidates
        .pop()
        .map(|(_, dir)| dir)
        .or_else(|| FIXED_DIRS.iter().map(PathBuf::from).find(|d| has_tools(d)))
}

fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved fs
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The uid and gid of `postgres`, or of `nobody` when there is no `postgres` user.
fn unprivileged_user() -> Result<(u32, u32), EmbeddedError> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| failed("reading /etc/passwd to find an unprivileged user", e))?;
    let lookup = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4 && fields[0] == name {
                Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
            } else {
                None
            }
        })
    };
    lookup("postgres").or_else(|| lookup("nobody")).ok_or_else(|| {
        EmbeddedError::Failed(
            "embedded PostgreSQL: running as root, and there is neither a `postgres` nor a `nobody` user to run the server as".into(),
        )
    })
}

fn free_port() -> Result<u16, EmbeddedError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| failed("finding a free port", e))
}

fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:08x}", hasher.finish() & 0xffff_ffff)
}
