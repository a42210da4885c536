//! Black-box test harness: runs the real `once` binary on a random loopback port with its own
//! data directory, and talks HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use once_domain::ApiToken;
use sha2::{Digest, Sha256};

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
        let dir = tempfile::tempdir().expect("temp dir");
        let token = ApiToken::generate().reveal();
        let mut all_env = vec![
            ("ONCE_BOOTSTRAP_KEY".to_owned(), token.clone()),
            ("ONCE_REAP_INTERVAL".to_owned(), "0s".to_owned()),
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
        self.dir.path().join("data")
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

/// The server's `/metrics` text.
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
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

/// The output of a client command that must have succeeded.
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "once failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
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
        // Multipart tickets have no single URL, only part URLs.
        upload_url: json["upload"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
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

/// A TCP proxy in front of the bucket that injects one kind of fault; everything else passes
/// through untouched (presigned URLs stay valid: the Host header is forwarded as sent).
pub struct FaultyProxy {
    pub endpoint: String,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FaultyProxy {
    /// Cuts, once, the connection carrying the first request whose bytes contain `needle`,
    /// after passing `cut_after` more bytes of it: a real network failure mid-upload.
    pub fn cutting(upstream: &str, needle: &'static [u8], cut_after: usize) -> Self {
        Self::start(upstream, Some((needle, cut_after)), false)
    }

    /// Turns every `412 Precondition Failed` into `200 OK`: a store that ignores
    /// `If-None-Match` and lets a second upload overwrite the first (as Garage does).
    pub fn ignoring_conditional_writes(upstream: &str) -> Self {
        Self::start(upstream, None, true)
    }

    fn start(upstream: &str, cut: Option<(&'static [u8], usize)>, hide_412: bool) -> Self {
        let (needle, cut_after) = cut.unwrap_or((b"", 0));
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let counter = cuts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut client_back, mut server_back) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_back.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut chunk = buffer[..n].to_vec();
                        const REFUSED: &[u8] = b"HTTP/1.1 412 Precondition Failed\r\n";
                        if hide_412 && chunk.starts_with(REFUSED) {
                            chunk.splice(..REFUSED.len(), b"HTTP/1.1 200 OK\r\n".iter().copied());
                        }
                        if client_back.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                    let _ = client_back.shutdown(std::net::Shutdown::Both);
                });
                let (armed, counter) = (armed.clone(), counter.clone());
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    // The tail of what came before, so a needle split across reads is found.
                    let mut window: Vec<u8> = Vec::new();
                    let mut left_before_cut: Option<usize> = None;
                    loop {
                        let n = match client.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut chunk = &buffer[..n];
                        if left_before_cut.is_none() && !needle.is_empty() {
                            window.extend_from_slice(chunk);
                            if window.windows(needle.len()).any(|w| w == needle)
                                && armed.swap(false, Ordering::SeqCst)
                            {
                                left_before_cut = Some(cut_after);
                            }
                            let keep = window.len().saturating_sub(needle.len());
                            window.drain(..keep);
                        }
                        if let Some(left) = left_before_cut.as_mut() {
                            if chunk.len() >= *left {
                                chunk = &chunk[..*left];
                                let _ = server.write_all(chunk);
                                counter.fetch_add(1, Ordering::SeqCst);
                                let _ = client.shutdown(std::net::Shutdown::Both);
                                let _ = server.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            *left -= chunk.len();
                        }
                        if server.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { endpoint, cuts }
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }
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

/// Writes a file of `mib` MiB quickly: one pseudo-random MiB, each copy stamped with its
/// index so that misplaced parts are caught.
pub fn write_big_file(path: &Path, mib: usize) {
    let block = payload(1024 * 1024, 99);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for index in 0..mib {
        file.write_all(&(index as u64).to_le_bytes()).unwrap();
        file.write_all(&block[8..]).unwrap();
    }
    file.flush().unwrap();
}

/// True when the two files hold the same bytes (compared in chunks, not loaded whole).
pub fn same_file_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::io::BufReader::new(std::fs::File::open(a).unwrap()),
        std::io::BufReader::new(std::fs::File::open(b).unwrap()),
    );
    let (mut left, mut right) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut left).unwrap();
        if n == 0 {
            return b.read(&mut right).unwrap() == 0;
        }
        if b.read_exact(&mut right[..n]).is_err() || left[..n] != right[..n] {
            return false;
        }
    }
}
