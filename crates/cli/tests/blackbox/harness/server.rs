//! The `once` binary as a process: `once serve` on a random loopback port with its own data
//! directory (and, where asked, its bytes on S3), restarted or killed at will, and the client
//! and maintenance commands run against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use once_domain::ApiToken;

use super::files_in;

pub const BIN: &str = env!("CARGO_BIN_EXE_once");

/// Where a test server keeps the bytes.
pub enum Storage {
    /// The embedded default: files in the data directory.
    Disk,
    /// s3s-fs, which checks signatures, expiry, lengths and conditional writes.
    S3(once_blob::testing::S3TestServer),
    /// moto with a versioned bucket, the server in versioning mode.
    Versioned(once_blob::testing::VersionedS3TestServer),
}

impl Storage {
    /// What `ONCE_TEST_BLOB` asks the whole suite to run on: `fs` (default) or `s3`.
    pub fn from_env() -> Self {
        match std::env::var("ONCE_TEST_BLOB").as_deref() {
            Ok("s3") => Storage::S3(once_blob::testing::S3TestServer::start().expect(
                "ONCE_TEST_BLOB=s3 needs s3s-fs (cargo install s3s-fs@0.14.1 --features binary)",
            )),
            Ok("fs") | Err(_) => Storage::Disk,
            Ok(other) => panic!("unknown ONCE_TEST_BLOB={other} (fs or s3)"),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Storage::Disk => Vec::new(),
            Storage::S3(s3) => s3.env(),
            Storage::Versioned(moto) => moto.env(),
        }
    }
}

pub struct Server {
    pub storage: Storage,
    child: Option<Child>,
    pub base: String,
    pub addr: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    /// The data directory: `data` in `dir`, unless a test put it elsewhere (a small volume).
    data: PathBuf,
    env: Vec<(String, String)>,
    /// RLIMIT_NOFILE for the server process, where a test needs a small one.
    fd_limit: Option<u32>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `once serve` with extra `ONCE_*` variables; the built-in reaper is off unless a
    /// test asks for it, so tests decide when reaping happens.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_on(Storage::from_env(), env)
    }

    /// Starts `once serve` on the given storage; `env` comes last, so it can override the
    /// storage's settings (e.g. point the S3 endpoint at a proxy).
    pub fn start_on(storage: Storage, env: &[(&str, &str)]) -> Self {
        Self::start_in(None, storage, env)
    }

    /// Starts `once serve` on the embedded store with its data directory at `data` (e.g. on a
    /// small volume that a test fills); its log stays in a temporary directory, so a full
    /// volume cannot hide what the server said.
    pub fn start_with_data_dir(data: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_in(Some(data.to_owned()), Storage::Disk, env)
    }

    fn start_in(data: Option<PathBuf>, storage: Storage, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = data.unwrap_or_else(|| dir.path().join("data"));
        let token = ApiToken::generate().reveal();
        let mut all_env = vec![
            ("ONCE_BOOTSTRAP_KEY".to_owned(), token.clone()),
            ("ONCE_REAP_INTERVAL".to_owned(), "0s".to_owned()),
            // Storm tests open hundreds of connections from 127.0.0.1; the hostile tests set
            // the documented default (64) back where they test it.
            (
                "ONCE_MAX_CONNECTIONS_PER_ADDRESS".to_owned(),
                "512".to_owned(),
            ),
        ];
        all_env.extend(storage.env());
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut server = Server {
            storage,
            child: None,
            base: String::new(),
            addr: "127.0.0.1:0".into(),
            token,
            dir,
            data,
            env: all_env,
            fd_limit: None,
        };
        server.spawn();
        server
    }

    /// Like [`Server::start_with`], with the server's open-file limit lowered to `fd_limit`
    /// (as `ulimit -n` would), so tests can show what happens when descriptors run short.
    pub fn start_with_fd_limit(env: &[(&str, &str)], fd_limit: u32) -> Self {
        let mut server = Self::start_with(env);
        server.fd_limit = Some(fd_limit);
        server.restart();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        // prlimit execs the server, so the child's pid stays the server's.
        let mut command = match self.fd_limit {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={limit}")).arg("--").arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .args(["serve", "--bind", &self.addr, "--data-dir"])
            .arg(self.data_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().expect("start once serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("once listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; log: {}", self.log()))
            .to_owned();
        self.addr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        self.base = url;
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    /// Starts again on the same address and data directory.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if std::net::TcpListener::bind(&self.addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for a clean exit after a signal, returning the exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs another `once` command against this server's data directory (same environment).
    pub fn once(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run once")
    }

    /// One `once reap` pass, which must succeed; returns its report (stdout).
    pub fn reap(&self) -> String {
        let output = self.once(&["reap"]);
        assert!(
            output.status.success(),
            "once reap failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn is_s3(&self) -> bool {
        !matches!(self.storage, Storage::Disk)
    }

    /// Stored blobs: files in the data directory, or objects in the s3s-fs bucket.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        match &self.storage {
            Storage::Disk => files_in(&self.data_dir().join("blobs")),
            Storage::S3(s3) => s3.objects(),
            Storage::Versioned(_) => panic!("count versions with versioned_bucket()"),
        }
    }

    /// The moto server of a versioning-mode test.
    pub fn versioned_bucket(&self) -> &once_blob::testing::VersionedS3TestServer {
        match &self.storage {
            Storage::Versioned(moto) => moto,
            _ => panic!("not a versioning-mode server"),
        }
    }

    /// Temporary files of uploads in progress (the S3 store keeps none on disk).
    pub fn temp_files(&self) -> Vec<PathBuf> {
        match &self.storage {
            Storage::Disk => files_in(&self.data_dir().join("tmp")),
            _ => Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the `once` client in `dir` against `server`, with a clean environment.
pub fn once_client(server: &Server, dir: &Path, args: &[&str]) -> Output {
    client_command(server, dir, args)
        .output()
        .expect("run once")
}

pub fn client_command(server: &Server, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("ONCE_SERVER", &server.base)
        .env("ONCE_KEY", &server.token)
        .env("HOME", dir)
        .stdin(Stdio::null());
    command
}

/// The one line a client command that must have succeeded printed (a link, a URL).
pub fn link_of(server: &Server, dir: &Path, args: &[&str]) -> String {
    stdout(&once_client(server, dir, args)).trim().to_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The output of a client command that must have succeeded.
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "once failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Bytes a process read and wrote through system calls (files and sockets alike), from
/// `/proc/PID/io`.
pub fn process_io_bytes(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            matches!(name, "rchar" | "wchar").then(|| value.trim().parse::<u64>().ok())?
        })
        .sum()
}
