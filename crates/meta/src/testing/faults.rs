//! Faults for tests: a small volume that can be filled to the last byte ([`SmallVolume`], a
//! tmpfs) and a throw-away PostgreSQL cluster living on one ([`PrivateCluster`]) that can be
//! restarted or starved of disk without disturbing the shared test server.
//!
//! The rule is the PostgreSQL one of [`crate::testing`]: with `CI` set or
//! `ONCE_REQUIRE_FAULTS=1`, a fault that cannot be set up (no permission to mount, no
//! PostgreSQL binaries) fails the test loudly; otherwise the test prints
//! `fault test did NOT run: <reason>` to stderr and passes.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{ci, report_skip, unique_name};

/// Where the PostgreSQL server binaries are (`initdb`, `pg_ctl`); default: the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub const POSTGRES_BIN_VAR: &str = "ONCE_TEST_POSTGRES_BIN";

/// True when a fault that cannot be set up must fail the test instead of skipping it.
pub fn faults_required() -> bool {
    ci() || std::env::var("ONCE_REQUIRE_FAULTS").is_ok_and(|value| value.trim() == "1")
}

/// Applies the rule: panics when faults are required, otherwise reports the skip. The caller
/// returns early on `None`.
fn unavailable<T>(test: &str, reason: &str) -> Option<T> {
    if faults_required() {
        panic!("fault test {test} must run here (CI or ONCE_REQUIRE_FAULTS=1 is set) but {reason}");
    }
    report_skip(&format!(
        "fault test did NOT run: {reason} (test {test}; it needs root to mount a tmpfs; CI=true \
         or ONCE_REQUIRE_FAULTS=1 make this a failure)"
    ));
    None
}

fn run(command: &mut Command) -> Result<Output, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|error| format!("{shown} could not start: {error}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{shown} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A tmpfs of a fixed size, mounted for one test and unmounted when dropped.
pub struct SmallVolume {
    path: PathBuf,
}

const FILLER: &str = "filler";

impl SmallVolume {
    /// Mounts a tmpfs of `bytes` on a fresh directory under the temporary directory. `None`
    /// (after reporting) when mounting is impossible and faults are not required.
    pub fn mount(test: &str, bytes: u64) -> Option<Self> {
        match Self::try_mount(bytes) {
            Ok(volume) => Some(volume),
            Err(reason) => unavailable(test, &format!("cannot mount a tmpfs: {reason}")),
        }
    }

    fn try_mount(bytes: u64) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("once-fault-{}", unique_name()));
        std::fs::create_dir_all(&path).map_err(|error| error.to_string())?;
        let volume = Self { path };
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0755"))
            .arg("tmpfs")
            .arg(&volume.path))?;
        Ok(volume)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes every free byte: writes a filler file until the volume refuses more. Returns the
    /// bytes taken. Blocking; call it from `spawn_blocking` inside a runtime.
    pub fn fill(&self) -> u64 {
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(self.path.join(FILLER))
            .expect("open the filler file");
        let mut taken = 0;
        // Large blocks first, then small ones, so that no usable page is left over.
        for block in [1 << 20, 1 << 12, 1 << 9, 1] {
            let chunk = vec![0xAB_u8; block];
            loop {
                match file.write(&chunk) {
                    Ok(0) => break,
                    Ok(written) => taken += written as u64,
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        taken
    }

    /// Gives back everything [`fill`](Self::fill) took.
    pub fn free(&self) {
        match std::fs::remove_file(self.path.join(FILLER)) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => panic!("cannot free the volume: {error}"),
        }
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        // Lazy, so that a file still open somewhere (a store not yet dropped) cannot keep the
        // mount alive; the kernel frees it when the last user goes.
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A PostgreSQL cluster of its own on a [`SmallVolume`], listening on a free 127.0.0.1 port,
/// trust authentication, user `postgres`. Stopped (immediately) and unmounted when dropped.
pub struct PrivateCluster {
    volume: SmallVolume,
    bin: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Initialises and starts a cluster on a tmpfs of `bytes` (at least ~40 MiB: the cluster
    /// itself takes ~30 MiB). `None` (after reporting) when that is impossible and faults are
    /// not required.
    pub fn start(test: &str, bytes: u64) -> Option<Self> {
        let volume = SmallVolume::mount(test, bytes)?;
        match Self::try_start(volume) {
            Ok(cluster) => Some(cluster),
            Err(reason) => unavailable(
                test,
                &format!("cannot start a private PostgreSQL cluster: {reason}"),
            ),
        }
    }

    fn try_start(volume: SmallVolume) -> Result<Self, String> {
        let bin = postgres_bin()?;
        run(Command::new("chown").arg("postgres").arg(volume.path()))?;
        let cluster = Self {
            bin,
            port: free_port()?,
            volume,
        };
        run(cluster
            .as_postgres("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "-A", "trust", "--no-sync"])
            // Small WAL segments: the cluster fits a small volume and fills it quickly.
            .arg("--wal-segsize=1"))?;
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn volume(&self) -> &SmallVolume {
        &self.volume
    }

    /// Takes every free byte of the cluster's volume, then writes WAL (a logical message and a
    /// segment switch, again and again) until the server refuses a write: PostgreSQL keeps
    /// committing into WAL segments it allocated earlier, so a full volume alone may refuse
    /// nothing for a long while. True once a write was refused (as an error, or by the server
    /// crashing and restarting, which is what it does when it cannot write its WAL). Blocking.
    pub fn fill(&self) -> bool {
        self.volume.fill();
        (0..64).any(|_| {
            let written = Command::new(self.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-p"])
                .arg(self.port.to_string())
                .args([
                    "-c",
                    "SELECT pg_logical_emit_message(false, 'once', 'fill')",
                ])
                .args(["-c", "SELECT pg_switch_wal()"])
                .output()
                .is_ok_and(|output| output.status.success());
            !written
        })
    }

    /// `pg_ctl restart -m <mode>` (`fast` or `immediate`); waits until it accepts connections.
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(&["restart", "-m", mode])
            .unwrap_or_else(|error| panic!("restart of the private cluster failed: {error}"));
    }

    /// `pg_ctl stop -m fast`: the server is down until [`ensure_running`](Self::ensure_running).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"])
            .unwrap_or_else(|error| panic!("stop of the private cluster failed: {error}"));
    }

    /// Starts the cluster if it is not running (after it stopped itself, e.g. on a full disk);
    /// true if it had to be started.
    pub fn ensure_running(&self) -> bool {
        let running = self
            .as_postgres("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data())
            .output()
            .is_ok_and(|output| output.status.success());
        if !running {
            self.pg_ctl(&["start"])
                .unwrap_or_else(|error| panic!("start of the private cluster failed: {error}"));
        }
        !running
    }

    /// The server log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.volume.path().join("log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.volume.path().join("data")
    }

    fn as_postgres(&self, program: &str) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program));
        command
    }

    fn pg_ctl(&self, action: &[&str]) -> Result<Output, String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c shared_buffers=8MB -c max_connections=50 -c max_wal_size=8MB -c min_wal_size=2MB",
            self.port,
            self.volume.path().display()
        );
        run(self
            .as_postgres("pg_ctl")
            .args(action)
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.volume.path().join("log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(options))
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

fn postgres_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(POSTGRES_BIN_VAR).filter(|bin| !bin.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .map_err(|error| format!("{}: {error} (set {POSTGRES_BIN_VAR})", root.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max_by_key(|(version, _)| *version);
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "no initdb under {} (set {POSTGRES_BIN_VAR})",
            root.display()
        )
    })
}

/// A port nobody listens on right now (the cluster binds it a moment later).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("no free port: {error}"))
}
