//! Black-box test harness: runs the real `once` binary on a random loopback port with its own
//! data directory, and talks HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use once_domain::ApiToken;
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_once");

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub addr: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `once serve` with extra `ONCE_*` variables; the built-in reaper is off unless a
    /// test asks for it, so tests decide when reaping happens.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let token = ApiToken::generate().reveal();
        let mut all_env = vec![
            ("ONCE_BOOTSTRAP_KEY".to_owned(), token.clone()),
            ("ONCE_REAP_INTERVAL".to_owned(), "0s".to_owned()),
        ];
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut server = Server {
            child: None,
            base: String::new(),
            addr: "127.0.0.1:0".into(),
            token,
            dir,
            env: all_env,
        };
        server.spawn();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let mut command = Command::new(BIN);
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
        self.addr = url.trim_start_matches("http://").to_owned();
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

    pub fn blob_files(&self) -> Vec<PathBuf> {
        files_in(&self.data_dir().join("blobs"))
    }

    pub fn temp_files(&self) -> Vec<PathBuf> {
        files_in(&self.data_dir().join("tmp"))
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

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A client that never follows redirects, so tests see every step.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("curl/8.5.0")
        .build()
        .expect("client")
}

/// Deterministic pseudo-random bytes.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..size)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub struct CreatedShare {
    pub id: String,
    pub url: String,
    pub upload_url: String,
    pub json: serde_json::Value,
}

/// `POST /api/v1/shares`.
pub async fn create_share(server: &Server, body: serde_json::Value) -> CreatedShare {
    let response = client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", server.auth())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "create share: {}",
        response.text().await.unwrap()
    );
    let json: serde_json::Value = response.json().await.unwrap();
    CreatedShare {
        id: json["id"].as_str().unwrap().to_owned(),
        url: json["url"].as_str().unwrap().to_owned(),
        upload_url: json["upload"]["url"].as_str().unwrap().to_owned(),
        json,
    }
}

pub async fn upload(url: &str, bytes: Vec<u8>) -> reqwest::Response {
    client().put(url).body(bytes).send().await.unwrap()
}

/// Creates a share for `bytes` and uploads them; returns the share.
pub async fn share_bytes(
    server: &Server,
    filename: &str,
    bytes: &[u8],
    max_downloads: u32,
) -> CreatedShare {
    let share = create_share(
        server,
        serde_json::json!({
            "filename": filename, "size": bytes.len(), "max_downloads": max_downloads,
            "sha256": sha256_hex(bytes),
        }),
    )
    .await;
    let response = upload(&share.upload_url, bytes.to_vec()).await;
    assert_eq!(
        response.status(),
        201,
        "upload: {}",
        response.text().await.unwrap()
    );
    share
}

/// A plain GET of the link as curl would do it: the claim. Returns the response.
pub async fn claim(link: &str) -> reqwest::Response {
    client()
        .get(link)
        .header("Accept", "*/*")
        .send()
        .await
        .unwrap()
}

/// Claims and downloads; returns (download response headers, body).
pub async fn download(link: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = claim(link).await;
    assert_eq!(
        response.status(),
        303,
        "claim: {}",
        response.text().await.unwrap()
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let response = client().get(&location).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        json["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

pub async fn owner_view(server: &Server, id: &str) -> serde_json::Value {
    let response = client()
        .get(server.url(&format!("/api/v1/shares/{id}")))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Sends a PUT with a declared Content-Length but only `send` bytes of body, then drops the
/// connection, as a client that crashes or loses its network mid-upload.
pub fn cut_off_upload(url: &str, declared: usize, send: &[u8]) {
    let url = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let mut stream = TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(send).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);
}

/// Starts a raw GET and reads the headers plus `body_bytes` of the body, then returns the
/// still-open stream (drop it to cut the download off).
pub fn partial_get(url: &str, body_bytes: usize) -> (TcpStream, Vec<u8>) {
    let parsed = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let path = format!("{}?{}", parsed.path(), parsed.query().unwrap_or_default());
    let mut stream = TcpStream::connect(&host).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "connection closed early");
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let mut body = received[end + 4..].to_vec();
            while body.len() < body_bytes {
                let n = stream.read(&mut buffer).unwrap();
                assert!(n > 0, "connection closed early");
                body.extend_from_slice(&buffer[..n]);
            }
            body.truncate(body_bytes);
            return (stream, body);
        }
    }
}
