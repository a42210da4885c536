//! Webhooks: a receiver in the test gets every event signed as Standard Webhooks describes
//! (checked here with HMAC-SHA256 directly, not with the library the server signs with), a
//! receiver that hangs does not hold up the requests whose events it would get, and events
//! written while it was down, and across a crash of the server, arrive once it is back:
//! each exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::*;

const SECRET_BYTES: [u8; 32] = *b"a webhook secret of 32 bytes !!!";

pub(crate) fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(SECRET_BYTES))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Answers 204 and keeps the delivery.
    Up,
    /// Answers 503.
    Down,
    /// Holds every delivery until the mode changes, then answers 503.
    Hang,
}

#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct Seen {
    accepted: Vec<Delivery>,
    refused: usize,
}

pub(crate) struct Receiver {
    pub(crate) url: String,
    mode: tokio::sync::watch::Sender<Mode>,
    seen: Arc<Mutex<Seen>>,
}

type ReceiverState = (tokio::sync::watch::Receiver<Mode>, Arc<Mutex<Seen>>);

async fn hook(
    State((mode, seen)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut mode = mode;
    let current = *mode.borrow_and_update();
    match current {
        Mode::Up => {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            seen.lock().unwrap().accepted.push(Delivery {
                id: header("webhook-id"),
                timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"),
                body: body.to_vec(),
            });
            StatusCode::NO_CONTENT
        }
        Mode::Down => {
            seen.lock().unwrap().refused += 1;
            StatusCode::SERVICE_UNAVAILABLE
        }
        Mode::Hang => {
            let _ = mode.changed().await;
            seen.lock().unwrap().refused += 1;
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let (mode, watch) = tokio::sync::watch::channel(Mode::Up);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state((watch, seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, mode, seen }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub(crate) fn accepted(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().accepted.clone()
    }

    fn refused(&self) -> usize {
        self.seen.lock().unwrap().refused
    }

    /// Waits (bounded) until `done` holds for the accepted deliveries.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        for _ in 0..1200 {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "waited 120 s for {what}; got {:#?}",
            events(&self.accepted())
        );
    }
}

/// Checks a delivery's signature as the specification says a receiver must: HMAC-SHA256 with
/// the secret's bytes over `id.timestamp.body`, base64, as one of the `v1,` signatures.
fn verify(delivery: &Delivery) -> Value {
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET_BYTES).unwrap();
    mac.update(delivery.id.as_bytes());
    mac.update(b".");
    mac.update(delivery.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&delivery.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        delivery
            .signature
            .split(' ')
            .any(|signature| signature == expected),
        "bad signature {} on {}",
        delivery.signature,
        String::from_utf8_lossy(&delivery.body)
    );
    assert!(delivery.id.starts_with("msg_"), "{}", delivery.id);
    let timestamp: i64 = delivery.timestamp.parse().expect("a unix timestamp");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - timestamp).abs() < 300,
        "timestamp {timestamp} is not now"
    );
    serde_json::from_slice(&delivery.body).expect("a JSON body")
}

pub(crate) fn events(deliveries: &[Delivery]) -> Vec<Value> {
    deliveries.iter().map(verify).collect()
}

pub(crate) fn count_of(deliveries: &[Delivery], kind: &str) -> usize {
    events(deliveries)
        .iter()
        .filter(|event| event["type"] == kind)
        .count()
}

fn webhook_env(receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("ONCE_WEBHOOK_URL", receiver.url.clone()),
        ("ONCE_WEBHOOK_SECRET", secret()),
        ("ONCE_NOTIFY_RETRY", "1s".into()),
    ]
}

fn start(receiver: &Receiver, extra: &[(&str, &str)]) -> Server {
    let env = webhook_env(receiver);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Server::start_with(&all)
}

/// A plain share sent and downloaded; its link.
async fn send_and_download(server: &Server, dir: &std::path::Path, name: &str) -> String {
    std::fs::write(dir.join(name), b"webhook test").unwrap();
    let link = link_of(server, dir, &["send", "--no-encrypt", "-q", name]);
    let (_, bytes) = download(&link).await;
    assert_eq!(bytes, b"webhook test");
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumed_share_and_a_fulfilled_request_are_told_signed() {
    let receiver = Receiver::start().await;
    let server = start(&receiver, &[]);
    let work = tempfile::tempdir().unwrap();
    let link = send_and_download(&server, work.path(), "report MARKER.txt").await;

    let request = create_request(&server, json!({})).await;
    let upload_url = format!("{}/hello.txt", request["url"].as_str().unwrap());
    let answer = client()
        .put(&upload_url)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );

    let accepted = receiver
        .wait_for("claimed, consumed and fulfilled", |seen| seen.len() >= 3)
        .await;
    let events = events(&accepted);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["share.claimed", "share.consumed", "request.fulfilled"],
        "{events:#?}"
    );
    let share_id = link.rsplit('/').next().unwrap();
    let consumed = &events[1];
    assert_eq!(consumed["data"]["filename"], "report MARKER.txt");
    assert_eq!(consumed["data"]["downloads_left"], 0);
    assert_eq!(consumed["data"]["encrypted"], false);
    // Only the first characters of the id: the whole one would let the receiver download.
    let label = consumed["data"]["share"].as_str().unwrap();
    assert!(share_id.starts_with(label.trim_end_matches('…')) && label.len() < share_id.len());
    for event in &events {
        assert!(
            !event.to_string().contains(share_id),
            "a capability in {event}"
        );
        assert!(event["timestamp"].as_str().is_some(), "{event}");
    }
    let request_id = request["id"].as_str().unwrap();
    assert!(!events[2].to_string().contains(request_id), "{}", events[2]);
    assert_eq!(events[2]["data"]["size"], 5);
    // Distinct ids, one delivery each.
    let ids: std::collections::HashSet<&str> = accepted.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains(
            "once_notification_deliveries_total{channel=\"webhook\",outcome=\"delivered\"} 3"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_out_a_hanging_receiver_and_a_crash_and_then_arrive_once_each() {
    let receiver = Receiver::start().await;
    let mut server = start(&receiver, &[]);
    let work = tempfile::tempdir().unwrap();

    // A receiver that takes the connection and never answers: every request still answers at
    // once (well inside the 10 s a delivery may take), because a request only writes the
    // event into the outbox.
    receiver.set(Mode::Hang);
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut links = Vec::new();
    for n in 0..3 {
        let name = format!("during-outage-{n}.txt");
        std::fs::write(work.path().join(&name), b"x").unwrap();
        let link = link_of(&server, work.path(), &["send", "--no-encrypt", "-q", &name]);
        let claim = quick
            .get(&link)
            .header("user-agent", "curl/8.0")
            .send()
            .await
            .expect("a claim answers while the receiver hangs");
        assert_eq!(claim.status(), 303);
        links.push(link);
    }
    // Then it refuses outright; the server keeps retrying with its doubling wait.
    receiver.set(Mode::Down);
    for _ in 0..300 {
        if receiver.refused() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver.refused() >= 3, "no delivery was even tried");
    assert!(receiver.accepted().is_empty());

    // A crash (SIGKILL) with everything undelivered, and a fresh process on the same database.
    server.kill();
    server.restart();
    receiver.set(Mode::Up);
    let accepted = receiver
        .wait_for("six events after the restart", |seen| seen.len() >= 6)
        .await;
    // Give a duplicate the time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = {
        let again = receiver.accepted();
        assert_eq!(
            again.len(),
            accepted.len(),
            "a later duplicate: {:#?}",
            events(&again)
        );
        again
    };
    assert_eq!(count_of(&accepted, "share.claimed"), 3);
    assert_eq!(count_of(&accepted, "share.consumed"), 3);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for delivery in &accepted {
        *per_id.entry(delivery.id.as_str()).or_default() += 1;
    }
    assert!(per_id.values().all(|&n| n == 1), "{per_id:?}");
    assert_eq!(per_id.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_and_a_third_upload_to_a_used_ticket_raise_the_alarm() {
    let receiver = Receiver::start().await;
    let server = start(&receiver, &[]);
    let share = create_share(&server, json!({"filename": "once.bin", "size": 4})).await;
    send_to_ticket(&server, &share, b"good".to_vec())
        .await
        .unwrap();
    for attempt in [b"evil".to_vec(), b"worse".to_vec()] {
        let refused = send_to_ticket(&server, &share, attempt).await;
        assert!(refused.is_err(), "a used ticket took a second upload");
        if server.is_s3() {
            // The bucket refused the PUT itself; the server hears of the attempt when the
            // client reports it complete, and refuses that.
            assert_eq!(
                complete(&server, &share).await,
                Err((409, "slot_used".into()))
            );
        }
    }
    // And one to an upload request that has its file.
    let request = create_request(&server, json!({})).await;
    let url = request["url"].as_str().unwrap().to_owned();
    fulfil_then_refuse(&url).await;
    let accepted = receiver
        .wait_for("three duplicate alarms", |seen| {
            count_of(seen, "upload.duplicate") >= 3
        })
        .await;
    let alarms: Vec<Value> = events(&accepted)
        .into_iter()
        .filter(|event| event["type"] == "upload.duplicate")
        .collect();
    assert_eq!(alarms.len(), 3, "{alarms:#?}");
    for alarm in &alarms[..2] {
        let label = alarm["data"]["share"].as_str().unwrap();
        assert!(share.id.starts_with(label.trim_end_matches('…')), "{label}");
    }
    let label = alarms[2]["data"]["request"].as_str().unwrap();
    let request_id = request["id"].as_str().unwrap();
    assert!(
        request_id.starts_with(label.trim_end_matches('…')),
        "{label}"
    );
    assert_eq!(alarms[2]["data"]["declared_size"], 1);

    // The evidence, in the owner's views: who sent what, by hash, and the bytes kept aside.
    // On S3 a second PUT to a used ticket is refused by the bucket itself (or kept there as a
    // later version): the server never sees those bytes, so only the request's upload (which
    // streams through the server) is evidence there.
    if !server.is_s3() {
        let view = owner_view(&server, &share.id).await;
        let refused = view["refused"]
            .as_array()
            .expect("refused uploads in the view");
        assert_eq!(refused.len(), 2, "{view}");
        for (record, bytes) in refused.iter().zip([&b"evil"[..], &b"worse"[..]]) {
            assert_eq!(record["sha256"], sha256_hex(bytes), "{record}");
            assert_eq!(record["received_size"], bytes.len(), "{record}");
            assert_eq!(record["declared_size"], bytes.len(), "{record}");
            assert_eq!(record["client_address"], "127.0.0.1", "{record}");
            assert_eq!(record["user_agent"], "curl/8.5.0", "{record}");
            assert_eq!(record["kept"], true, "{record}");
            assert_eq!(record["truncated"], false, "{record}");
        }
        let kept: Vec<Vec<u8>> = server
            .blob_files()
            .iter()
            .map(|path| std::fs::read(path).unwrap())
            .collect();
        assert!(
            kept.iter().any(|bytes| bytes == b"evil"),
            "the bytes are kept aside"
        );
        assert!(
            kept.iter().any(|bytes| bytes == b"worse"),
            "the bytes are kept aside"
        );
        // Never served: the link still gives the first upload, and the owner's view names no
        // place the kept bytes could be fetched from.
        let (_, served) = download(share.json["url"].as_str().unwrap()).await;
        assert_eq!(served, b"good");
        assert!(!view.to_string().contains("blob"), "{view}");
        let work = tempfile::tempdir().unwrap();
        let status = stdout(&once_client(&server, work.path(), &["status", &share.id]));
        assert_eq!(status.matches("refused upload").count(), 2, "{status}");
        assert!(status.contains(&sha256_hex(b"evil")), "{status}");
    }
    let view = request_view(&server, request_id).await;
    let refused = view["refused"]
        .as_array()
        .expect("refused uploads of the request");
    assert_eq!(refused.len(), 1, "{view}");
    assert_eq!(refused[0]["sha256"], sha256_hex(b"x"));
    assert_eq!(refused[0]["kept"], true);
    assert_eq!(view["refused_uploads"], 1);
}

/// A refused upload is read only up to `evidence_max_bytes`, and only the first
/// `evidence_max_count` per share keep their bytes; the rest are recorded and hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_capped_in_size_and_count() {
    let receiver = Receiver::start().await;
    let server = start(
        &receiver,
        &[
            ("ONCE_EVIDENCE_MAX_BYTES", "1 KiB"),
            ("ONCE_EVIDENCE_MAX_COUNT", "1"),
            ("ONCE_EVIDENCE_RETENTION", "2s"),
            ("ONCE_ORPHAN_GRACE", "1s"),
        ],
    );
    let request = create_request(&server, json!({})).await;
    let url = request["url"].as_str().unwrap().to_owned();
    let answer = client()
        .put(format!("{url}/a.txt"))
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let big = payload(64 * 1024, 5);
    for body in [big.clone(), b"small".to_vec()] {
        let answer = client().put(format!("{url}/b.bin")).body(body).send().await;
        // The server may answer before it read all of a big body; either way it is refused.
        if let Ok(answer) = answer {
            assert_eq!(answer.status(), 409);
        }
    }
    let view = request_view(&server, request["id"].as_str().unwrap()).await;
    let refused = view["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{view}");
    assert_eq!(refused[0]["truncated"], true, "{view}");
    assert_eq!(refused[0]["received_size"], 1024, "{view}");
    assert_eq!(refused[0]["declared_size"], big.len(), "{view}");
    assert_eq!(refused[0]["sha256"], sha256_hex(&big[..1024]), "{view}");
    assert_eq!(refused[0]["kept"], true);
    assert_eq!(
        refused[1]["kept"], false,
        "over the count: recorded and hashed only"
    );
    assert_eq!(refused[1]["sha256"], sha256_hex(b"small"));

    // After evidence_retention the reaper drops the records, and then the kept bytes.
    let blobs_before = server.blob_files().len();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    server.reap();
    let view = request_view(&server, request["id"].as_str().unwrap()).await;
    assert!(view.get("refused").is_none(), "{view}");
    assert_eq!(
        server.blob_files().len(),
        blobs_before - 1,
        "the kept bytes are deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_that_expires_unread_is_told_when_the_reaper_retires_it() {
    let receiver = Receiver::start().await;
    let server = start(&receiver, &[]);
    let unread = create_share(
        &server,
        json!({"filename": "u.txt", "size": 2, "expires_in": 1}),
    )
    .await;
    send_to_ticket(&server, &unread, b"hi".to_vec())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.reap();
    let accepted = receiver
        .wait_for("share.expired_unread", |seen| {
            count_of(seen, "share.expired_unread") == 1
        })
        .await;
    let event = events(&accepted)
        .into_iter()
        .find(|event| event["type"] == "share.expired_unread")
        .unwrap();
    assert_eq!(event["data"]["filename"], "u.txt");
    assert_eq!(event["data"]["downloads_left"], 1);
}

#[test]
fn a_webhook_without_a_usable_secret_stops_the_start_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    for (secret, said) in [
        (None, "webhook_url needs webhook_secret"),
        (Some("hunter2"), "must start with whsec_"),
        (Some("whsec_c2hvcnQ="), "use 24 to 64 random bytes"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_once"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("ONCE_WEBHOOK_URL", "http://127.0.0.1:9/hook");
        if let Some(secret) = secret {
            command.env("ONCE_WEBHOOK_SECRET", secret);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(said), "{stderr}");
    }
}

/// Python's `aiosmtpd` as the mail server, keeping what it receives in a Maildir. It must be
/// installed (`scripts/test` does): without it this test fails, it never skips.
struct SmtpSink {
    child: std::process::Child,
    dir: tempfile::TempDir,
    url: String,
}

impl SmtpSink {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        for _ in 0..100 {
            if let Some(status) = child.try_wait().unwrap() {
                let mut said = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut said).unwrap();
                panic!(
                    "aiosmtpd exited ({status}): {said}\ninstall it with \
                     `python3 -m pip install aiosmtpd` (scripts/test does)"
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    child,
                    dir,
                    url: format!("smtp://127.0.0.1:{port}"),
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aiosmtpd did not listen on 127.0.0.1:{port} within 10 s");
    }

    fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join("maildir").join(folder))
            else {
                continue;
            };
            for entry in entries {
                messages.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        messages
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_by_e_mail_too() {
    let sink = SmtpSink::start();
    let receiver = Receiver::start().await;
    let server = start(
        &receiver,
        &[
            ("ONCE_SMTP_URL", &sink.url),
            ("ONCE_EMAIL_TO", "Owner <owner@example.test>"),
            ("ONCE_EMAIL_FROM", "once <once@example.test>"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    send_and_download(&server, work.path(), "quarterly.pdf").await;
    let mut messages = Vec::new();
    for _ in 0..300 {
        messages = sink.messages();
        if messages.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(messages.len(), 2, "{messages:#?}\n{}", server.log());
    let consumed = messages
        .iter()
        .find(|message| message.contains("was downloaded; its link is now used up"))
        .unwrap_or_else(|| panic!("no consumed mail: {messages:#?}"));
    assert!(consumed.contains("\"quarterly.pdf\""), "{consumed}");
    assert!(
        consumed.contains("To: Owner <owner@example.test>"),
        "{consumed}"
    );
    assert!(
        consumed.contains("From: once <once@example.test>"),
        "{consumed}"
    );
    assert!(consumed.contains("Message-ID: <msg_"), "{consumed}");
    assert!(
        consumed.contains("\"type\":\"share.consumed\""),
        "{consumed}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("a download of \"quarterly.pdf\" was claimed"))
    );
    // The webhook got its own copy of each event.
    let accepted = receiver
        .wait_for("two webhook events", |seen| seen.len() >= 2)
        .await;
    assert_eq!(count_of(&accepted, "share.consumed"), 1);
}
