//! A small HTTP/1.1 load generator for `once` (and rustypaste, for comparison).
//!
//! Every client is one task with its own connections, driven through hyper's low-level
//! `client::conn::http1` over a `TcpStream` (TCP_NODELAY), so the generator decides exactly
//! when a connection is opened, reused and closed:
//!
//! - [`ConnectionMode::New`]: a fresh TCP connection for every HTTP request, sent with
//!   `Connection: close` (the server closes it after its answer);
//! - [`ConnectionMode::Keepalive`]: one connection per client and authority, reused for all
//!   of its requests, and opened again when the server closes it.
//!
//! Workloads: [`run_get`] (one URL, the generator's own ceiling), [`run_once_cycle`] (create,
//! upload, claim, download), [`run_rustypaste_cycle`] (a rustypaste one-shot upload and its
//! download) and [`run_claim_storm`] (many claimers racing for one link).
//!
//! An operation that gets an unexpected status, an I/O error or the wrong bytes counts as an
//! error and the run goes on; the first few messages are kept in the report. Latencies are
//! kept per operation in microseconds (a `Vec<u32>` per client, merged at the end), so the
//! percentiles are exact.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use url::{Position, Url};

/// How many distinct error messages a run keeps (and the binary prints).
pub const KEPT_ERRORS: usize = 5;

/// The `User-Agent` of the claims (with `Accept: */*`, `once` answers a claim with a 303).
pub const USER_AGENT: &str = "once-loadgen";

/// When a client opens a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionMode {
    /// A fresh connection for every HTTP request, closed after its answer.
    New,
    /// One connection per client (and authority), reused; reopened when the server closes it.
    Keepalive,
}

impl ConnectionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionMode::New => "new",
            ConnectionMode::Keepalive => "keepalive",
        }
    }
}

/// When a run stops counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Operations started within this long after the warm-up.
    Duration(Duration),
    /// This many operations after the warm-up, over all clients (successful or not).
    Count(u64),
}

/// How a load run drives its workload.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent clients (tasks), each with its own connections.
    pub clients: usize,
    pub connection: ConnectionMode,
    pub stop: Stop,
    /// Operations in this first stretch run but are not counted.
    pub warmup: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            clients: 1,
            connection: ConnectionMode::Keepalive,
            stop: Stop::Duration(Duration::from_secs(10)),
            warmup: Duration::ZERO,
        }
    }
}

/// Latency percentiles in milliseconds (nearest rank over every recorded sample).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// From samples in microseconds (sorted in place).
    pub fn from_micros(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let rank = |q: f64| {
            let index = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            ms(samples[index] as u64)
        };
        let sum: u64 = samples.iter().map(|&s| s as u64).sum();
        Latency {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms(*samples.last().unwrap() as u64),
            mean: round3(sum as f64 / samples.len() as f64 / 1000.0),
        }
    }
}

fn ms(micros: u64) -> f64 {
    round3(micros as f64 / 1000.0)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The outcome of a load run (one JSON object on the binary's stdout).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub clients: usize,
    pub connection: ConnectionMode,
    /// Counted operations that succeeded.
    pub ops: u64,
    /// Counted operations that failed (they have no latency sample).
    pub errors: u64,
    pub warmup_ops: u64,
    pub warmup_errors: u64,
    /// From the end of the warm-up to the last counted operation's end.
    pub seconds: f64,
    /// `ops / seconds`.
    pub rate: f64,
    pub latency_ms: Latency,
    /// Every HTTP status seen in counted operations (an operation may make several requests).
    pub statuses: BTreeMap<String, u64>,
    /// TCP connections opened in counted and warm-up operations.
    pub connections: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

/// Up to [`KEPT_ERRORS`] distinct messages, shared by all clients; cheap once full.
#[derive(Default)]
struct ErrorLog {
    kept: Mutex<Vec<String>>,
    full: AtomicBool,
}

impl ErrorLog {
    fn push(&self, message: String) {
        if self.full.load(Ordering::Relaxed) {
            return;
        }
        let mut kept = self.kept.lock().unwrap();
        if kept.len() < KEPT_ERRORS && !kept.contains(&message) {
            kept.push(message);
        }
        if kept.len() >= KEPT_ERRORS {
            self.full.store(true, Ordering::Relaxed);
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.kept.lock().unwrap())
    }
}

/// HTTP statuses seen, indexed by code.
#[derive(Clone)]
struct Statuses(Vec<u64>);

impl Statuses {
    fn new() -> Self {
        Statuses(vec![0; 1000])
    }

    fn add(&mut self, status: StatusCode) {
        self.0[status.as_u16() as usize % 1000] += 1;
    }

    fn merge(&mut self, other: &Statuses) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine += theirs;
        }
    }

    fn to_map(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(code, count)| (code.to_string(), *count))
            .collect()
    }
}

/// What one client records.
struct ClientStats {
    samples: Vec<u32>,
    statuses: Statuses,
    /// Whether the operation under way is counted (statuses of warm-up operations are not).
    measuring: bool,
    errors: u64,
    warmup_ops: u64,
    warmup_errors: u64,
    last_done: Option<Instant>,
}

impl ClientStats {
    fn new() -> Self {
        ClientStats {
            samples: Vec::with_capacity(4096),
            statuses: Statuses::new(),
            measuring: false,
            errors: 0,
            warmup_ops: 0,
            warmup_errors: 0,
            last_done: None,
        }
    }

    fn status(&mut self, status: StatusCode) {
        if self.measuring {
            self.statuses.add(status);
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// One authority (`host[:port]`) a client talks to, and its open connection.
struct Endpoint {
    authority: String,
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<Sender>,
}

/// One client's connections, at most one per authority (the server, and where an S3 ticket
/// or download link points).
struct Http {
    mode: ConnectionMode,
    endpoints: Vec<Endpoint>,
    connects: u64,
}

/// An operation's error: a message, built only when something went wrong.
type OpResult<T = ()> = Result<T, String>;

async fn connect(addr: SocketAddr) -> OpResult<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        // Its errors reach the request that was under way.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn resolve(url: &Url) -> OpResult<SocketAddr> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("no port in {url}"))?;
    match url.host() {
        Some(url::Host::Ipv4(ip)) => Ok(SocketAddr::new(ip.into(), port)),
        Some(url::Host::Ipv6(ip)) => Ok(SocketAddr::new(ip.into(), port)),
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("resolve {name}: {e}"))?
            .next()
            .ok_or_else(|| format!("{name} has no address")),
        None => Err(format!("no host in {url}")),
    }
}

/// The request target of `url` on a connection to its authority: path and query.
fn origin_form(url: &Url) -> OpResult<Uri> {
    Uri::try_from(&url[Position::BeforePath..Position::AfterQuery])
        .map_err(|e| format!("bad request target in {url}: {e}"))
}

fn request(method: Method, uri: Uri, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    request
}

impl Http {
    fn new(mode: ConnectionMode) -> Self {
        Http {
            mode,
            endpoints: Vec::with_capacity(2),
            connects: 0,
        }
    }

    /// The endpoint of `url`'s authority, added (resolved, not connected) on first use.
    async fn endpoint(&mut self, url: &Url) -> OpResult<usize> {
        if url.scheme() != "http" {
            return Err(format!("only http:// URLs are supported: {url}"));
        }
        let authority = &url[Position::BeforeHost..Position::AfterPort];
        if let Some(index) = self
            .endpoints
            .iter()
            .position(|endpoint| endpoint.authority == authority)
        {
            return Ok(index);
        }
        let addr = resolve(url).await?;
        let host = HeaderValue::from_str(authority).map_err(|e| format!("bad host: {e}"))?;
        self.endpoints.push(Endpoint {
            authority: authority.to_owned(),
            addr,
            host,
            sender: None,
        });
        Ok(self.endpoints.len() - 1)
    }

    /// Sends `request` to endpoint `index` (adding `Host`), on a fresh or the kept connection.
    async fn send(
        &mut self,
        index: usize,
        mut request: Request<Full<Bytes>>,
    ) -> OpResult<Response<Incoming>> {
        let endpoint = &mut self.endpoints[index];
        request
            .headers_mut()
            .insert(header::HOST, endpoint.host.clone());
        match self.mode {
            ConnectionMode::New => {
                request
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                // The previous connection (its answer read to the end) goes now.
                endpoint.sender = None;
                self.connects += 1;
                let sender = endpoint.sender.insert(connect(endpoint.addr).await?);
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("{}: {e}", endpoint.authority))
            }
            ConnectionMode::Keepalive => {
                if let Some(sender) = &mut endpoint.sender
                    && sender.ready().await.is_err()
                {
                    endpoint.sender = None;
                }
                let sender = match &mut endpoint.sender {
                    Some(sender) => sender,
                    None => {
                        self.connects += 1;
                        endpoint.sender.insert(connect(endpoint.addr).await?)
                    }
                };
                match sender.send_request(request).await {
                    Ok(response) => Ok(response),
                    Err(e) => {
                        endpoint.sender = None;
                        Err(format!("{}: {e}", endpoint.authority))
                    }
                }
            }
        }
    }
}

/// Reads and drops a body; its length.
async fn drain(mut body: Incoming) -> OpResult<u64> {
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading a body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            length += data.len() as u64;
        }
    }
    Ok(length)
}

/// Reads a body into `buf` (cleared first), refusing more than `limit` bytes.
async fn read_into(mut body: Incoming, buf: &mut Vec<u8>, limit: usize) -> OpResult {
    buf.clear();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading a body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                return Err(format!("body over {limit} bytes"));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(())
}

/// Reads a body and says whether it is exactly `expected`.
async fn body_equals(mut body: Incoming, expected: &[u8]) -> OpResult<bool> {
    let mut offset = 0;
    let mut same = true;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading a body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            let end = offset + data.len();
            same = same && end <= expected.len() && expected[offset..end] == data[..];
            offset = end;
        }
    }
    Ok(same && offset == expected.len())
}

/// An unexpected answer: its status and the start of its body.
async fn unexpected(what: &str, response: Response<Incoming>) -> String {
    let status = response.status();
    let mut buf = Vec::new();
    let _ = read_into(response.into_body(), &mut buf, 64 * 1024).await;
    buf.truncate(200);
    format!(
        "{what}: status {status}: {}",
        String::from_utf8_lossy(&buf).trim()
    )
}

/// A small, fast generator for the payloads (xorshift64*); not for secrets.
struct Rng(u64);

impl Rng {
    fn seeded(stream: u64) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng((time ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A client's payload: random bytes, with the first 8 overwritten by a number unique to the
/// client and operation, so every share has distinct content.
struct Payload {
    bytes: Vec<u8>,
    client: u64,
    seq: u64,
}

impl Payload {
    fn new(size: usize, client: u64) -> Self {
        let mut bytes = vec![0; size];
        Rng::seeded(client).fill(&mut bytes);
        Payload {
            bytes,
            client,
            seq: 0,
        }
    }

    /// The next distinct content, and its sequence number.
    fn next(&mut self) -> u64 {
        self.seq += 1;
        let tag = (self.client << 40 | self.seq).to_le_bytes();
        let n = self.bytes.len().min(8);
        self.bytes[..n].copy_from_slice(&tag[..n]);
        self.seq
    }
}

fn parse_base(base: &str) -> anyhow::Result<Url> {
    let url = Url::parse(base).with_context(|| format!("bad base URL {base:?}"))?;
    if url.scheme() != "http" {
        bail!("only http:// is supported: {base}");
    }
    Ok(url)
}

/// `base` with `path` appended to its path (`path` starts with `/`).
fn under(base: &Url, path: &str) -> anyhow::Result<Url> {
    let text = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&text).with_context(|| format!("bad URL {text:?}"))
}

// ----------------------------------------------------------------------------------------
// Workloads
// ----------------------------------------------------------------------------------------

/// `GET` of one URL: 200 expected, the body drained.
struct GetOp {
    endpoint: usize,
    uri: Uri,
}

impl GetOp {
    async fn run(&mut self, http: &mut Http, stats: &mut ClientStats) -> OpResult {
        let response = http
            .send(
                self.endpoint,
                request(Method::GET, self.uri.clone(), Bytes::new()),
            )
            .await?;
        stats.status(response.status());
        if response.status() != StatusCode::OK {
            return Err(unexpected("GET", response).await);
        }
        drain(response.into_body()).await?;
        Ok(())
    }
}

/// The answer to `POST /api/v1/shares`, as far as the cycle needs it.
#[derive(Deserialize)]
struct Created {
    id: String,
    upload: Option<Ticket>,
}

#[derive(Deserialize)]
struct Ticket {
    method: String,
    url: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    complete_url: Option<String>,
    #[serde(default)]
    multipart: Option<serde::de::IgnoredAny>,
}

/// What the small share cycle of `once` needs, per client.
struct OnceCycleOp {
    base: Url,
    endpoint: usize,
    create_uri: Uri,
    auth: HeaderValue,
    create_only: bool,
    payload: Payload,
    json: String,
    buf: Vec<u8>,
}

/// A created share whose bytes are up.
struct Shared {
    id: String,
}

impl OnceCycleOp {
    async fn new(
        http: &mut Http,
        base: &Url,
        token: &str,
        size: usize,
        create_only: bool,
        client: u64,
    ) -> OpResult<Self> {
        let create = under(base, "/api/v1/shares").map_err(|e| e.to_string())?;
        Ok(OnceCycleOp {
            base: base.clone(),
            endpoint: http.endpoint(base).await?,
            create_uri: origin_form(&create)?,
            auth: HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| format!("bad token: {e}"))?,
            create_only,
            payload: Payload::new(size, client),
            json: String::with_capacity(64),
            buf: Vec::with_capacity(4096),
        })
    }

    async fn run(&mut self, http: &mut Http, stats: &mut ClientStats) -> OpResult {
        let created = self.create(http, stats).await?;
        if self.create_only {
            return Ok(());
        }
        let shared = self.upload(http, stats, created).await?;
        let location = self.claim(http, stats, &shared.id).await?;
        self.download(http, stats, &location).await
    }

    /// a. `POST /api/v1/shares`: 201 with the share's id and upload ticket.
    async fn create(&mut self, http: &mut Http, stats: &mut ClientStats) -> OpResult<Created> {
        let seq = self.payload.next();
        self.json.clear();
        let _ = write!(
            self.json,
            r#"{{"filename":"small-{}-{seq}.bin","size":{}}}"#,
            self.payload.client,
            self.payload.bytes.len()
        );
        let mut create = request(
            Method::POST,
            self.create_uri.clone(),
            Bytes::copy_from_slice(self.json.as_bytes()),
        );
        let headers = create.headers_mut();
        headers.insert(header::AUTHORIZATION, self.auth.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let response = http.send(self.endpoint, create).await?;
        stats.status(response.status());
        if response.status() != StatusCode::CREATED {
            return Err(unexpected("create", response).await);
        }
        read_into(response.into_body(), &mut self.buf, 1 << 20).await?;
        serde_json::from_slice(&self.buf).map_err(|e| format!("create: bad JSON: {e}"))
    }

    /// b. The bytes to the ticket's URL with its headers (2xx), then `POST complete_url`
    /// when the ticket has one (direct uploads to S3).
    async fn upload(
        &mut self,
        http: &mut Http,
        stats: &mut ClientStats,
        created: Created,
    ) -> OpResult<Shared> {
        let ticket = created
            .upload
            .ok_or("create: the answer has no upload ticket")?;
        if ticket.multipart.is_some() {
            return Err("create: a multipart ticket (use a smaller --size)".into());
        }
        let url = ticket
            .url
            .as_deref()
            .ok_or("create: the ticket has no url")?;
        let url = self
            .base
            .join(url)
            .map_err(|e| format!("bad ticket URL {url:?}: {e}"))?;
        let endpoint = http.endpoint(&url).await?;
        let method = Method::from_bytes(ticket.method.as_bytes())
            .map_err(|e| format!("bad ticket method: {e}"))?;
        let mut upload = request(
            method,
            origin_form(&url)?,
            Bytes::copy_from_slice(&self.payload.bytes),
        );
        let headers = upload.headers_mut();
        for (name, value) in ticket.headers.iter().flatten() {
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("host") {
                continue;
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("bad ticket header {name:?}: {e}"))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| format!("bad ticket header: {e}"))?;
            headers.insert(name, value);
        }
        headers.insert(header::CONTENT_LENGTH, self.payload.bytes.len().into());
        let response = http.send(endpoint, upload).await?;
        stats.status(response.status());
        if !response.status().is_success() {
            return Err(unexpected("upload", response).await);
        }
        drain(response.into_body()).await?;

        if let Some(complete) = ticket.complete_url {
            let url = self
                .base
                .join(&complete)
                .map_err(|e| format!("bad complete_url {complete:?}: {e}"))?;
            let endpoint = http.endpoint(&url).await?;
            let mut request = request(Method::POST, origin_form(&url)?, Bytes::from_static(b"{}"));
            let headers = request.headers_mut();
            headers.insert(header::AUTHORIZATION, self.auth.clone());
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let response = http.send(endpoint, request).await?;
            stats.status(response.status());
            if !response.status().is_success() {
                return Err(unexpected("complete", response).await);
            }
            drain(response.into_body()).await?;
        }
        Ok(Shared { id: created.id })
    }

    /// c. `GET /s/ID` as a non-browser client: 303 to the bytes; the absolute `Location`.
    async fn claim(&mut self, http: &mut Http, stats: &mut ClientStats, id: &str) -> OpResult<Url> {
        let link = under(&self.base, &format!("/s/{id}")).map_err(|e| e.to_string())?;
        let response = http.send(self.endpoint, claim_request(&link)?).await?;
        stats.status(response.status());
        if response.status() != StatusCode::SEE_OTHER {
            return Err(unexpected("claim", response).await);
        }
        let location = location_of(&link, &response)?;
        drain(response.into_body()).await?;
        Ok(location)
    }

    /// d. `GET` the `Location`: 200 with exactly the uploaded bytes.
    async fn download(
        &mut self,
        http: &mut Http,
        stats: &mut ClientStats,
        location: &Url,
    ) -> OpResult {
        download(http, stats, location, &self.payload.bytes).await
    }
}

fn claim_request(link: &Url) -> OpResult<Request<Full<Bytes>>> {
    let mut claim = request(Method::GET, origin_form(link)?, Bytes::new());
    let headers = claim.headers_mut();
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    Ok(claim)
}

fn location_of(link: &Url, response: &Response<Incoming>) -> OpResult<Url> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .ok_or("claim: a 303 without Location")?
        .to_str()
        .map_err(|_| "claim: a Location that is not text")?;
    link.join(location)
        .map_err(|e| format!("claim: bad Location {location:?}: {e}"))
}

async fn download(
    http: &mut Http,
    stats: &mut ClientStats,
    location: &Url,
    expected: &[u8],
) -> OpResult {
    let endpoint = http.endpoint(location).await?;
    let response = http
        .send(
            endpoint,
            request(Method::GET, origin_form(location)?, Bytes::new()),
        )
        .await?;
    stats.status(response.status());
    if response.status() != StatusCode::OK {
        return Err(unexpected("download", response).await);
    }
    if !body_equals(response.into_body(), expected).await? {
        return Err("download: the bytes differ from the upload".into());
    }
    Ok(())
}

/// A rustypaste (0.18) one-shot upload, `POST /` multipart with a `oneshot` part, and the one
/// download of the URL it answers.
struct RustypasteOp {
    base: Url,
    endpoint: usize,
    uri: Uri,
    auth: Option<HeaderValue>,
    content_type: HeaderValue,
    boundary: String,
    payload: Payload,
    body: Vec<u8>,
    buf: Vec<u8>,
}

impl RustypasteOp {
    async fn new(
        http: &mut Http,
        base: &Url,
        auth: Option<&str>,
        size: usize,
        client: u64,
    ) -> OpResult<Self> {
        let mut rng = Rng::seeded(client ^ 0x5eed);
        let boundary = format!("once-loadgen-{:016x}{:016x}", rng.next(), rng.next());
        Ok(RustypasteOp {
            base: base.clone(),
            endpoint: http.endpoint(base).await?,
            uri: origin_form(base)?,
            auth: auth
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(|e| format!("bad auth token: {e}"))?,
            content_type: HeaderValue::from_str(&format!(
                "multipart/form-data; boundary={boundary}"
            ))
            .map_err(|e| e.to_string())?,
            boundary,
            payload: Payload::new(size, client),
            body: Vec::with_capacity(size + 512),
            buf: Vec::with_capacity(512),
        })
    }

    async fn run(&mut self, http: &mut Http, stats: &mut ClientStats) -> OpResult {
        let seq = self.payload.next();
        self.body.clear();
        let _ = write!(
            Utf8(&mut self.body),
            "--{}\r\nContent-Disposition: form-data; name=\"oneshot\"; \
             filename=\"small-{}-{seq}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            self.boundary,
            self.payload.client
        );
        self.body.extend_from_slice(&self.payload.bytes);
        let _ = write!(Utf8(&mut self.body), "\r\n--{}--\r\n", self.boundary);

        let mut upload = request(
            Method::POST,
            self.uri.clone(),
            Bytes::copy_from_slice(&self.body),
        );
        let headers = upload.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, self.body.len().into());
        if let Some(auth) = &self.auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        let response = http.send(self.endpoint, upload).await?;
        stats.status(response.status());
        if response.status() != StatusCode::OK {
            return Err(unexpected("upload", response).await);
        }
        read_into(response.into_body(), &mut self.buf, 64 * 1024).await?;
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| "upload: the answer is not text")?
            .trim();
        let url = self
            .base
            .join(text)
            .map_err(|e| format!("upload: bad URL {text:?}: {e}"))?;
        download(http, stats, &url, &self.payload.bytes).await
    }
}

/// `fmt::Write` into a byte buffer.
struct Utf8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

enum Op {
    Get(GetOp),
    OnceCycle(Box<OnceCycleOp>),
    Rustypaste(Box<RustypasteOp>),
}

impl Op {
    async fn run(&mut self, http: &mut Http, stats: &mut ClientStats) -> OpResult {
        match self {
            Op::Get(op) => op.run(http, stats).await,
            Op::OnceCycle(op) => op.run(http, stats).await,
            Op::Rustypaste(op) => op.run(http, stats).await,
        }
    }
}

/// What a client is told to do.
#[derive(Clone)]
enum Work {
    Get(Url),
    OnceCycle(Arc<OnceCycle>, Url),
    Rustypaste(Arc<RustypasteCycle>, Url),
}

impl Work {
    fn name(&self) -> &'static str {
        match self {
            Work::Get(_) => "get",
            Work::OnceCycle(cycle, _) if cycle.create_only => "once-create",
            Work::OnceCycle(..) => "once-cycle",
            Work::Rustypaste(..) => "rustypaste-cycle",
        }
    }

    async fn op(&self, http: &mut Http, client: u64) -> OpResult<Op> {
        Ok(match self {
            Work::Get(url) => Op::Get(GetOp {
                endpoint: http.endpoint(url).await?,
                uri: origin_form(url)?,
            }),
            Work::OnceCycle(cycle, base) => Op::OnceCycle(Box::new(
                OnceCycleOp::new(
                    http,
                    base,
                    &cycle.token,
                    cycle.size,
                    cycle.create_only,
                    client,
                )
                .await?,
            )),
            Work::Rustypaste(cycle, base) => Op::Rustypaste(Box::new(
                RustypasteOp::new(http, base, cycle.auth.as_deref(), cycle.size, client).await?,
            )),
        })
    }
}

/// What all clients of a run share.
struct Run {
    warmup_end: Instant,
    end: Option<Instant>,
    count: Option<u64>,
    issued: AtomicU64,
    errors: ErrorLog,
}

async fn client(run: Arc<Run>, work: Work, mode: ConnectionMode, id: u64) -> (ClientStats, u64) {
    let mut http = Http::new(mode);
    let mut stats = ClientStats::new();
    let mut op = match work.op(&mut http, id).await {
        Ok(op) => op,
        Err(message) => {
            stats.errors += 1;
            run.errors.push(message);
            return (stats, 0);
        }
    };
    loop {
        let start = Instant::now();
        let measuring = start >= run.warmup_end;
        if measuring {
            if run.end.is_some_and(|end| start >= end) {
                break;
            }
            if let Some(count) = run.count
                && run.issued.fetch_add(1, Ordering::Relaxed) >= count
            {
                break;
            }
        }
        stats.measuring = measuring;
        let result = op.run(&mut http, &mut stats).await;
        let done = Instant::now();
        match (measuring, result) {
            (true, Ok(())) => {
                let micros = done.duration_since(start).as_micros();
                stats.samples.push(micros.min(u32::MAX as u128) as u32);
                stats.last_done = Some(done);
            }
            (true, Err(message)) => {
                stats.errors += 1;
                stats.last_done = Some(done);
                run.errors.push(message);
            }
            (false, Ok(())) => stats.warmup_ops += 1,
            (false, Err(message)) => {
                stats.warmup_errors += 1;
                run.errors.push(format!("(warm-up) {message}"));
            }
        }
    }
    (stats, http.connects)
}

async fn drive(config: &LoadConfig, work: Work) -> anyhow::Result<Report> {
    if config.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let start = Instant::now();
    let warmup_end = start + config.warmup;
    let run = Arc::new(Run {
        warmup_end,
        end: match config.stop {
            Stop::Duration(duration) => Some(warmup_end + duration),
            Stop::Count(_) => None,
        },
        count: match config.stop {
            Stop::Count(count) => Some(count),
            Stop::Duration(_) => None,
        },
        issued: AtomicU64::new(0),
        errors: ErrorLog::default(),
    });
    let tasks: Vec<_> = (0..config.clients)
        .map(|id| {
            tokio::spawn(client(
                run.clone(),
                work.clone(),
                config.connection,
                id as u64,
            ))
        })
        .collect();
    let mut samples = Vec::new();
    let mut statuses = Statuses::new();
    let (mut errors, mut warmup_ops, mut warmup_errors, mut connections) = (0, 0, 0, 0);
    let mut last_done: Option<Instant> = None;
    for task in tasks {
        let (stats, connects) = task.await.context("a client panicked")?;
        samples.extend_from_slice(&stats.samples);
        statuses.merge(&stats.statuses);
        errors += stats.errors;
        warmup_ops += stats.warmup_ops;
        warmup_errors += stats.warmup_errors;
        connections += connects;
        last_done = last_done.max(stats.last_done);
    }
    let seconds = last_done
        .map(|done| done.saturating_duration_since(warmup_end).as_secs_f64())
        .unwrap_or(0.0);
    let ops = samples.len() as u64;
    Ok(Report {
        workload: work.name(),
        clients: config.clients,
        connection: config.connection,
        ops,
        errors,
        warmup_ops,
        warmup_errors,
        seconds: round3(seconds),
        rate: if seconds > 0.0 {
            round1(ops as f64 / seconds)
        } else {
            0.0
        },
        latency_ms: Latency::from_micros(&mut samples),
        statuses: statuses.to_map(),
        connections,
        first_errors: run.errors.take(),
    })
}

/// Repeated `GET url` (200 expected, body drained): the generator's own ceiling against a
/// tiny static answer.
pub async fn run_get(config: &LoadConfig, url: &str) -> anyhow::Result<Report> {
    let url = parse_base(url)?;
    drive(config, Work::Get(url)).await
}

/// The small share cycle of `once`.
#[derive(Debug, Clone)]
pub struct OnceCycle {
    /// `http://HOST:PORT` of the server.
    pub base: String,
    /// An API key (`KEYID.SECRET`), sent as `Authorization: Bearer`.
    pub token: String,
    /// Bytes per share.
    pub size: usize,
    /// An operation is only the create (`POST /api/v1/shares`).
    pub create_only: bool,
}

/// One operation: create a share (`POST /api/v1/shares`, 201), send its bytes to the ticket
/// (2xx; then `complete_url` if the ticket has one), claim it (`GET /s/ID`, 303) and download
/// the `Location` (200, the same bytes). With `create_only`, just the create.
pub async fn run_once_cycle(config: &LoadConfig, cycle: &OnceCycle) -> anyhow::Result<Report> {
    let base = parse_base(&cycle.base)?;
    drive(config, Work::OnceCycle(Arc::new(cycle.clone()), base)).await
}

/// rustypaste's one-shot upload and download.
#[derive(Debug, Clone)]
pub struct RustypasteCycle {
    /// `http://HOST:PORT` of rustypaste.
    pub base: String,
    pub size: usize,
    /// Sent as `Authorization: TOKEN` when set.
    pub auth: Option<String>,
}

/// One operation: `POST /` multipart/form-data with a `oneshot` part (200, the file's URL as
/// the body), then `GET` that URL (200, the same bytes).
pub async fn run_rustypaste_cycle(
    config: &LoadConfig,
    cycle: &RustypasteCycle,
) -> anyhow::Result<Report> {
    let base = parse_base(&cycle.base)?;
    drive(config, Work::Rustypaste(Arc::new(cycle.clone()), base)).await
}

// ----------------------------------------------------------------------------------------
// Claim storm
// ----------------------------------------------------------------------------------------

/// Many claimers racing for one link.
#[derive(Debug, Clone)]
pub struct ClaimStorm {
    pub base: String,
    pub token: String,
    /// Connections, all open before any claim is sent.
    pub claimers: usize,
    /// Storms, each on a fresh share.
    pub rounds: usize,
    /// Bytes of each share.
    pub size: usize,
}

/// One storm.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimRound {
    pub round: usize,
    /// Claimers answered 303.
    pub winners: u64,
    /// Claimers that got no answer (I/O errors), plus a wrong download by the winner.
    pub errors: u64,
    pub statuses: BTreeMap<String, u64>,
    /// From the release to each claimer's answer (read to its end).
    pub latency_ms: Latency,
    /// Opening all the connections.
    pub connect_ms: f64,
    /// Whether the winner's `Location` gave back the uploaded bytes.
    pub winner_download_ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimStormReport {
    pub workload: &'static str,
    pub claimers: usize,
    pub rounds: usize,
    /// Over all rounds (one per round expected).
    pub winners: u64,
    /// Rounds without exactly one winner.
    pub bad_rounds: usize,
    pub errors: u64,
    pub statuses: BTreeMap<String, u64>,
    /// Over all claimers of all rounds.
    pub latency_ms: Latency,
    pub per_round: Vec<ClaimRound>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

/// What a claimer saw.
struct Claimed {
    status: Option<StatusCode>,
    micros: u32,
    location: Option<Url>,
}

async fn claimer(
    addr: SocketAddr,
    host: HeaderValue,
    link: Url,
    connected: Arc<tokio::sync::Semaphore>,
    mut release: tokio::sync::watch::Receiver<Option<Instant>>,
) -> OpResult<Claimed> {
    let sender = connect(addr).await;
    connected.add_permits(1);
    let mut sender = sender?;
    let mut claim = claim_request(&link)?;
    claim.headers_mut().insert(header::HOST, host);
    let released = release
        .wait_for(Option::is_some)
        .await
        .map_err(|_| "the storm was called off")?
        .expect("released");
    let response = sender
        .send_request(claim)
        .await
        .map_err(|e| format!("claim: {e}"))?;
    let status = response.status();
    let location = if status == StatusCode::SEE_OTHER {
        Some(location_of(&link, &response)?)
    } else {
        None
    };
    drain(response.into_body()).await?;
    let micros = released.elapsed().as_micros().min(u32::MAX as u128) as u32;
    Ok(Claimed {
        status: Some(status),
        micros,
        location,
    })
}

/// Creates a share with `size` bytes (as the cycle's steps a and b), opens `claimers`
/// connections, then releases every claim (`GET /s/ID`) at once; `rounds` times, each on a
/// fresh share. Exactly one winner (303) per round is expected.
pub async fn run_claim_storm(storm: &ClaimStorm) -> anyhow::Result<ClaimStormReport> {
    if storm.claimers == 0 {
        bail!("--claimers must be at least 1");
    }
    let base = parse_base(&storm.base)?;
    let errors = ErrorLog::default();
    let mut http = Http::new(ConnectionMode::Keepalive);
    let mut setup = OnceCycleOp::new(&mut http, &base, &storm.token, storm.size, false, 0)
        .await
        .map_err(anyhow::Error::msg)?;
    let (addr, host) = {
        let endpoint = &http.endpoints[setup.endpoint];
        (endpoint.addr, endpoint.host.clone())
    };
    let mut all = Vec::with_capacity(storm.claimers * storm.rounds);
    let mut rounds = Vec::with_capacity(storm.rounds);
    let mut statuses = Statuses::new();
    for round in 1..=storm.rounds {
        let mut scratch = ClientStats::new();
        let created = setup
            .create(&mut http, &mut scratch)
            .await
            .map_err(anyhow::Error::msg)?;
        let shared = setup
            .upload(&mut http, &mut scratch, created)
            .await
            .map_err(anyhow::Error::msg)?;
        let link = under(&base, &format!("/s/{}", shared.id))?;

        let connected = Arc::new(tokio::sync::Semaphore::new(0));
        let (release, released) = tokio::sync::watch::channel(None);
        let connecting = Instant::now();
        let tasks: Vec<_> = (0..storm.claimers)
            .map(|_| {
                tokio::spawn(claimer(
                    addr,
                    host.clone(),
                    link.clone(),
                    connected.clone(),
                    released.clone(),
                ))
            })
            .collect();
        let _all_connected = connected
            .acquire_many(storm.claimers as u32)
            .await
            .context("waiting for the claimers' connections")?;
        let connect_ms = round3(connecting.elapsed().as_secs_f64() * 1000.0);
        release.send_replace(Some(Instant::now()));

        let mut samples = Vec::with_capacity(storm.claimers);
        let mut round_statuses = Statuses::new();
        let mut round_errors = 0;
        let mut winners = 0;
        let mut location = None;
        for task in tasks {
            match task.await.context("a claimer panicked")? {
                Ok(claimed) => {
                    samples.push(claimed.micros);
                    if let Some(status) = claimed.status {
                        round_statuses.add(status);
                        if status == StatusCode::SEE_OTHER {
                            winners += 1;
                        }
                    }
                    location = location.or(claimed.location);
                }
                Err(message) => {
                    round_errors += 1;
                    errors.push(format!("round {round}: {message}"));
                }
            }
        }
        let mut winner_download_ok = false;
        if let Some(location) = location {
            match download(&mut http, &mut scratch, &location, &setup.payload.bytes).await {
                Ok(()) => winner_download_ok = true,
                Err(message) => {
                    round_errors += 1;
                    errors.push(format!("round {round}: winner's {message}"));
                }
            }
        }
        if winners != 1 {
            errors.push(format!("round {round}: {winners} winners"));
        }
        all.extend_from_slice(&samples);
        statuses.merge(&round_statuses);
        rounds.push(ClaimRound {
            round,
            winners,
            errors: round_errors,
            statuses: round_statuses.to_map(),
            latency_ms: Latency::from_micros(&mut samples),
            connect_ms,
            winner_download_ok,
        });
    }
    Ok(ClaimStormReport {
        workload: "claim-storm",
        claimers: storm.claimers,
        rounds: storm.rounds,
        winners: rounds.iter().map(|round| round.winners).sum(),
        bad_rounds: rounds.iter().filter(|round| round.winners != 1).count(),
        errors: rounds.iter().map(|round| round.errors).sum(),
        statuses: statuses.to_map(),
        latency_ms: Latency::from_micros(&mut all),
        per_round: rounds,
        first_errors: errors.take(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let latency = Latency::from_micros(&mut samples);
        assert_eq!(latency.p50, 50.0);
        assert_eq!(latency.p90, 90.0);
        assert_eq!(latency.p99, 99.0);
        assert_eq!(latency.max, 100.0);
        assert_eq!(latency.mean, 50.5);
        assert_eq!(Latency::from_micros(&mut []), Latency::default());
    }

    #[test]
    fn payloads_differ_per_operation_and_client() {
        let mut a = Payload::new(16, 1);
        let mut b = Payload::new(16, 2);
        a.next();
        let first = a.bytes.clone();
        a.next();
        assert_ne!(first, a.bytes);
        b.next();
        assert_ne!(first[..8], b.bytes[..8]);
        let mut tiny = Payload::new(3, 1);
        tiny.next();
        assert_eq!(tiny.bytes.len(), 3);
    }

    #[test]
    fn requests_go_to_path_and_query_of_their_authority() {
        let url = Url::parse("http://127.0.0.1:8080/b/up/x?sig=a%2Fb&e=1").unwrap();
        assert_eq!(origin_form(&url).unwrap(), "/b/up/x?sig=a%2Fb&e=1");
        assert_eq!(
            &url[Position::BeforeHost..Position::AfterPort],
            "127.0.0.1:8080"
        );
        let base = parse_base("http://127.0.0.1:1/").unwrap();
        assert_eq!(
            under(&base, "/s/abc").unwrap().as_str(),
            "http://127.0.0.1:1/s/abc"
        );
    }
}
