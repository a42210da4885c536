//! Test support (feature `testing`): a real S3-compatible server, `s3s-fs`, started on a random
//! loopback port with its own data directory. It verifies SigV4 signatures, expiry, signed
//! `Content-Length` and `If-None-Match`, so tests of presigned URLs prove something.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::s3::S3Settings;

pub const ACCESS_KEY: &str = "ONCETESTACCESSKEY";
pub const SECRET_KEY: &str = "once-test-secret-key-0123456789abcdef";
pub const BUCKET: &str = "once-test";

pub struct S3TestServer {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

fn binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("ONCE_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    candidates.into_iter().find(|path| path.is_file())
}

/// Whether a missing test service must fail the run (CI) or only skip with a message.
pub fn services_required() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty() && value != "false")
        || std::env::var_os("ONCE_REQUIRE_S3").is_some_and(|value| value == "1")
}

impl S3TestServer {
    /// Starts s3s-fs, or explains why not: in CI a missing server fails the test loudly,
    /// elsewhere the test is skipped with a message on stderr.
    pub fn start() -> Option<Self> {
        let Some(binary) = binary() else {
            let message =
                "s3s-fs not found (install: cargo install s3s-fs@0.14.1 --features binary)";
            assert!(!services_required(), "{message}");
            eprintln!("S3 tests did NOT run: {message}");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket dir");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start s3s-fs");
            let endpoint = format!("http://127.0.0.1:{port}");
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Self {
                        child,
                        endpoint,
                        dir,
                    });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start");
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.parse().unwrap(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            path_style: true,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            session_token: None,
            prefix: String::new(),
            multipart_threshold: 64 * 1024 * 1024,
            trust_conditional_writes: false,
        }
    }

    /// The environment that points `once serve` at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ONCE_S3_ENDPOINT".into(), self.endpoint.clone()),
            ("ONCE_S3_BUCKET".into(), BUCKET.into()),
            ("ONCE_S3_REGION".into(), "us-east-1".into()),
            ("ONCE_S3_PATH_STYLE".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ]
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
