//! Real `bosun worker` processes for crash tests: start them with short heartbeats and
//! leases, signal them (kill -9, SIGSTOP, SIGCONT, SIGTERM) and read their logs.

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{bosun_bin, TestDb};

/// A `bosun worker` process; killed when dropped if still running.
pub struct Replica {
    /// The worker id it runs under.
    pub id: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    /// A replica of `db` working queue `default` with `concurrency` slots.
    pub fn start(db: &TestDb, id: &str, concurrency: u32) -> Replica {
        Replica::start_on(&db.url, &db.name, id, concurrency)
    }

    /// A replica of `db` working `queues`, with `extra` arguments of `bosun worker`.
    pub fn start_with_args(db: &TestDb, id: &str, queues: &str, extra: &[&str]) -> Replica {
        Replica::spawn_args(
            Command::new(bosun_bin()),
            &db.url,
            &db.name,
            id,
            queues,
            extra,
        )
    }

    /// A replica of `db` working `queues` (`name=slots,...`).
    pub fn start_queues(db: &TestDb, id: &str, queues: &str) -> Replica {
        Replica::spawn(Command::new(bosun_bin()), &db.url, &db.name, id, queues)
    }

    /// A replica on the database at `url`; its log goes to a temporary file named by `tag`.
    pub fn start_on(url: &str, tag: &str, id: &str, concurrency: u32) -> Replica {
        Replica::spawn(
            Command::new(bosun_bin()),
            url,
            tag,
            id,
            &format!("default={concurrency}"),
        )
    }

    /// Run `bosun worker` through `command` (the binary itself, or a wrapper such as
    /// faketime that then runs the binary) for `queues`.
    pub fn spawn(command: Command, url: &str, tag: &str, id: &str, queues: &str) -> Replica {
        Replica::spawn_args(command, url, tag, id, queues, &[])
    }

    /// [`Replica::spawn`] with `extra` arguments of `bosun worker` after the usual ones.
    pub fn spawn_args(
        mut command: Command,
        url: &str,
        tag: &str,
        id: &str,
        queues: &str,
        extra: &[&str],
    ) -> Replica {
        let log = std::env::temp_dir().join(format!("bosun-{tag}-{id}.log"));
        if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
            command.env("RUST_LOG", "warn");
        }
        let child = command
            .args([
                "worker",
                "--queues",
                queues,
                "--worker-id",
                id,
                "--poll-interval",
                "200ms",
                "--heartbeat-interval",
                "300ms",
                "--lease",
                "2s",
                "--maintenance-interval",
                "300ms",
                "--shutdown-timeout",
                "5s",
            ])
            .args(extra)
            .env("DATABASE_URL", url)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("worker log file"))
            .spawn()
            .expect("starting bosun worker");
        Replica {
            id: id.to_string(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the replica has logged so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send `signal` (e.g. `-STOP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {}", self.id);
    }

    /// kill -9 and reap.
    pub fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub async fn stop(mut self) {
        self.signal("-TERM");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "{} exits 0 on SIGTERM", self.id);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not stop within 10 s of SIGTERM", self.id);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
