//! Test support (feature `testing`): real S3-compatible servers started on random loopback
//! ports. `s3s-fs` verifies SigV4 signatures, expiry, signed `Content-Length` and
//! `If-None-Match`, so tests of presigned URLs prove something. moto's server is the one here
//! with bucket versioning; it checks no signatures, so it only backs tests of versioning mode.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::s3::{S3Settings, WriteGuard};

pub const ACCESS_KEY: &str = "ONCETESTACCESSKEY";
pub const SECRET_KEY: &str = "once-test-secret-key-0123456789abcdef";
pub const BUCKET: &str = "once-test";

pub struct S3TestServer {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

/// `name` from `$override_var`, the `PATH` or `~/.cargo/bin`.
fn binary(name: &str, override_var: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(override_var) {
        return Some(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin").join(name));
    }
    candidates.into_iter().find(|path| path.is_file())
}

/// Finds the server binary, or explains why not: in CI a missing server fails the test
/// loudly, elsewhere the test is skipped with a message on stderr.
fn require(name: &str, override_var: &str, install: &str) -> Option<PathBuf> {
    let found = binary(name, override_var);
    if found.is_none() {
        let message = format!("{name} not found (install: {install})");
        assert!(!services_required(), "{message}");
        eprintln!("S3 tests did NOT run: {message}");
    }
    found
}

/// Starts `command(port)` on free loopback ports until one answers TCP; `wait` bounds each try.
fn spawn_listening(name: &str, wait: Duration, command: impl Fn(u16) -> Command) -> (Child, u16) {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{name} did not start");
}

/// Whether a missing test service must fail the run (CI) or only skip with a message.
pub fn services_required() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty() && value != "false")
        || std::env::var_os("ONCE_REQUIRE_S3").is_some_and(|value| value == "1")
}

impl S3TestServer {
    /// Starts s3s-fs on a fresh data directory (None: not installed, outside CI).
    pub fn start() -> Option<Self> {
        let binary = require(
            "s3s-fs",
            "ONCE_S3S_FS",
            "cargo install s3s-fs@0.14.1 --features binary",
        )?;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket dir");
        let (child, port) = spawn_listening("s3s-fs", Duration::from_secs(2), |port| {
            let mut command = Command::new(&binary);
            command
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(dir.path());
            command
        });
        Some(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
        })
    }

    pub fn settings(&self) -> S3Settings {
        settings(&self.endpoint, WriteGuard::Auto)
    }

    /// The environment that points `once serve` at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        server_env(&self.endpoint, BUCKET)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Object files in the bucket (s3s-fs keeps its metadata as hidden JSON files beside them).
    pub fn objects(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![self.dir.path().join(BUCKET)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    }

    /// Bytes stored in the bucket's objects.
    pub fn stored_bytes(&self) -> u64 {
        self.objects()
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings(endpoint: &str, write_guard: WriteGuard) -> S3Settings {
    S3Settings {
        endpoint: endpoint.parse().unwrap(),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        path_style: true,
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        session_token: None,
        prefix: String::new(),
        write_guard,
    }
}

fn server_env(endpoint: &str, bucket: &str) -> Vec<(String, String)> {
    vec![
        ("ONCE_S3_ENDPOINT".into(), endpoint.to_owned()),
        ("ONCE_S3_BUCKET".into(), bucket.to_owned()),
        ("ONCE_S3_REGION".into(), "us-east-1".into()),
        ("ONCE_S3_PATH_STYLE".into(), "true".into()),
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
    ]
}

/// moto's S3 server with two buckets: [`BUCKET`] with versioning enabled and
/// [`UNVERSIONED_BUCKET`] without. Data lives in memory.
pub struct VersionedS3TestServer {
    child: Child,
    pub endpoint: String,
}

pub const UNVERSIONED_BUCKET: &str = "once-test-unversioned";

impl VersionedS3TestServer {
    /// Starts `moto_server` (None: not installed, outside CI). Blocking; callable from sync
    /// and async tests alike.
    pub fn start() -> Option<Self> {
        let binary = require(
            "moto_server",
            "ONCE_MOTO_SERVER",
            "pip install 'moto[server]'",
        )?;
        let (child, port) = spawn_listening("moto_server", Duration::from_secs(30), |port| {
            let mut command = Command::new(&binary);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        });
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let endpoint = server.endpoint.clone();
        // moto checks no signatures, so plain requests set the buckets up.
        on_own_runtime(async move {
            let http = reqwest::Client::new();
            for bucket in [BUCKET, UNVERSIONED_BUCKET] {
                let response = http
                    .put(format!("{endpoint}/{bucket}"))
                    .send()
                    .await
                    .expect("create bucket");
                assert!(
                    response.status().is_success(),
                    "create bucket: {response:?}"
                );
            }
            let response = http
                .put(format!("{endpoint}/{BUCKET}?versioning"))
                .body(
                    "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                     <Status>Enabled</Status></VersioningConfiguration>",
                )
                .send()
                .await
                .expect("enable versioning");
            assert!(
                response.status().is_success(),
                "enable versioning: {response:?}"
            );
        });
        Some(server)
    }

    /// Settings for the versioned bucket, in versioning mode.
    pub fn settings(&self) -> S3Settings {
        settings(&self.endpoint, WriteGuard::Versioning)
    }

    /// The environment that points `once serve` at the versioned bucket, in versioning mode.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = server_env(&self.endpoint, BUCKET);
        env.push(("ONCE_S3_WRITE_GUARD".into(), "versioning".into()));
        env
    }

    /// How many versions (delete markers included) the versioned bucket holds.
    pub fn version_count(&self) -> usize {
        self.list("versions").matches("<VersionId>").count()
    }

    /// How many multipart uploads are started and neither completed nor aborted.
    pub fn pending_multipart_uploads(&self) -> usize {
        self.list("uploads").matches("<UploadId>").count()
    }

    fn list(&self, subresource: &str) -> String {
        let url = format!("{}/{BUCKET}?{subresource}", self.endpoint);
        on_own_runtime(async move {
            let response = reqwest::get(&url).await.expect("list");
            assert!(response.status().is_success(), "list: {response:?}");
            response.text().await.expect("list body")
        })
    }
}

/// Runs `future` to completion on a fresh runtime in its own thread, so blocking helpers work
/// inside async tests too.
fn on_own_runtime<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future)
    })
    .join()
    .expect("helper thread")
}

impl Drop for VersionedS3TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
