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
    /// The S3-compatible server the blobs go to, when the suite runs with `ONCE_TEST_BLOB=s3`.
    pub s3: Option<once_blob::testing::S3TestServer>,
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
        let s3 = match std::env::var("ONCE_TEST_BLOB").as_deref() {
            Ok("s3") => Some(once_blob::testing::S3TestServer::start().expect(
                "ONCE_TEST_BLOB=s3 needs s3s-fs (cargo install s3s-fs@0.14.1 --features binary)",
            )),
            Ok("fs") | Err(_) => None,
            Ok(other) => panic!("unknown ONCE_TEST_BLOB={other} (fs or s3)"),
        };
        if let Some(s3) = &s3 {
            all_env.extend(s3.env());
        }
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut server = Server {
            s3,
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

    pub fn is_s3(&self) -> bool {
        self.s3.is_some()
    }

    /// Stored blobs: files in the data directory, or objects in the bucket.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        match &self.s3 {
            Some(s3) => s3.objects(),
            None => files_in(&self.data_dir().join("blobs")),
        }
    }

    /// Temporary files of uploads in progress (the S3 store keeps none on disk).
    pub fn temp_files(&self) -> Vec<PathBuf> {
        match &self.s3 {
            Some(_) => Vec::new(),
            None => files_in(&self.data_dir().join("tmp")),
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

/// Sends `bytes` as the ticket says (its URL and signed headers), then, when the ticket asks
/// for it (S3), reports the upload complete. Ok, or the refusal's status and code (for a
/// refusal by the bucket: `s3:<Code>` from its XML error).
pub async fn send_to_ticket(
    server: &Server,
    share: &CreatedShare,
    bytes: Vec<u8>,
) -> Result<(), (u16, String)> {
    send_to_url(server, share, &share.upload_url, bytes).await
}

/// Like [`send_to_ticket`] but to another (e.g. tampered) URL with the ticket's headers.
pub async fn send_to_url(
    server: &Server,
    share: &CreatedShare,
    url: &str,
    bytes: Vec<u8>,
) -> Result<(), (u16, String)> {
    let length = bytes.len();
    let mut request = client()
        .put(url)
        .header("content-length", length)
        .body(bytes);
    for (name, value) in share.json["upload"]["headers"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !name.eq_ignore_ascii_case("content-length") {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
    }
    let response = request.send().await.unwrap();
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    complete(server, share).await
}

/// `POST complete_url` when the ticket has one.
pub async fn complete(server: &Server, share: &CreatedShare) -> Result<(), (u16, String)> {
    let Some(complete_url) = share.json["upload"]["complete_url"].as_str() else {
        return Ok(());
    };
    let response = client()
        .post(complete_url)
        .header("Authorization", server.auth())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    if response.status().is_success() {
        Ok(())
    } else {
        Err(refusal(response).await)
    }
}

async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        return (
            status,
            json["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or_default();
    (status, format!("s3:{code}"))
}

/// The URL with its last character (part of the signature on both stores) changed.
pub fn tamper_signature(url: &str) -> String {
    let mut tampered = url.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    tampered
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
    send_to_ticket(server, &share, bytes.to_vec())
        .await
        .expect("upload");
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

/// Starts a raw GET and reads the headers plus at least `body_bytes` of the body (everything
/// read so far is returned), then returns the still-open stream (drop it to cut the download
/// off).
pub fn partial_get(url: &str, body_bytes: usize) -> (TcpStream, Vec<u8>) {
    let parsed = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let path = format!("{}?{}", parsed.path(), parsed.query().unwrap_or_default());
    let mut stream = TcpStream::connect(&host).unwrap();
    // A stalled transfer fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
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
            return (stream, body);
        }
    }
}
