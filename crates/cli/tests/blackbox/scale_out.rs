//! Scale-out, black box: three real `once serve` processes on their own loopback ports share one
//! fresh PostgreSQL database, one data directory (blobs and `master.key`) and one bootstrap key,
//! as several instances behind a load balancer would. One test runs them stateless instead:
//! nothing shared on disk, only PostgreSQL, an S3 bucket and the master secret in the
//! environment. Each test gets its own database (see
//! `once_meta::testing`): without a reachable PostgreSQL the tests say
//! `PostgreSQL suite did NOT run: …` and pass, unless `CI` or `ONCE_REQUIRE_POSTGRES=1` is set.
//!
//! The tests take a file lock so that only one of them runs at a time, even when nextest runs
//! them in parallel processes: each starts three servers with up to 16 database connections
//! apiece, and two storms at once would crowd a 2-core machine and PostgreSQL's default
//! 100 connections for no gain.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{BIN, client, error_code, files_in, payload, sha256_hex};
use futures::StreamExt;
use once_domain::{ApiToken, KeySecret};
use once_meta::testing::TestDatabase;

/// Requests in flight at once during a claim storm.
const IN_FLIGHT: usize = 50;

struct Instance {
    child: Option<Child>,
    base: String,
}

impl Instance {
    /// SIGKILL: no chance to finish anything, as in a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three instances on one database and one data directory. Field order matters on drop: the
/// servers stop before the database is dropped.
struct Cluster {
    instances: Vec<Instance>,
    token: String,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _lock: std::fs::File,
    _database: TestDatabase,
}

impl Cluster {
    /// None when PostgreSQL is not there and not required (the reason is already printed).
    async fn start(test: &str) -> Option<Cluster> {
        Self::start_with(test, Vec::new(), true).await
    }

    /// With `extra` environment; with `shared_disk` false each instance has its own data
    /// directory, so only what `extra` and PostgreSQL provide is shared.
    async fn start_with(
        test: &str,
        extra: Vec<(String, String)>,
        shared_disk: bool,
    ) -> Option<Cluster> {
        let lock = serialise_scale_out_tests();
        let database = TestDatabase::create(test).await?;
        let dir = tempfile::tempdir().expect("temp dir");
        let token = ApiToken::generate().reveal();
        let mut env = vec![
            ("ONCE_DATABASE_URL".to_owned(), database.url().to_owned()),
            ("ONCE_BOOTSTRAP_KEY".to_owned(), token.clone()),
            ("ONCE_REAP_INTERVAL".to_owned(), "0s".to_owned()),
            // The storms come from one address: they are about exact claims across
            // instances, not about the per-address request rate (limits.rs).
            ("ONCE_ADDRESS_RATE_LIMIT".to_owned(), "0".to_owned()),
        ];
        env.extend(extra);
        // All three start at the same moment: they race to migrate the empty database, to
        // create `master.key` and to insert the bootstrap key, as a fresh deployment would.
        let instances = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..3)
                .map(|n| {
                    let log = dir.path().join(format!("server-{n}.log"));
                    let data = if shared_disk {
                        dir.path().join("data")
                    } else {
                        dir.path().join(format!("data-{n}"))
                    };
                    let env = &env;
                    scope.spawn(move || spawn_instance(&data, env, &log))
                })
                .collect();
            starting
                .into_iter()
                .map(|thread| thread.join().expect("start an instance"))
                .collect::<Vec<_>>()
        });
        let cluster = Cluster {
            instances,
            token,
            env,
            dir,
            _lock: lock,
            _database: database,
        };
        let bases: Vec<_> = cluster.instances.iter().map(|i| i.base.clone()).collect();
        assert_eq!(
            bases.iter().collect::<std::collections::HashSet<_>>().len(),
            3,
            "three different ports: {bases:?}"
        );
        Some(cluster)
    }

    fn base(&self, n: usize) -> &str {
        &self.instances[n % 3].base
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn logs(&self) -> String {
        (0..3)
            .map(|n| {
                let path = self.dir.path().join(format!("server-{n}.log"));
                format!(
                    "--- server {n} ---\n{}",
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect()
    }

    /// `POST /api/v1/shares` on instance `n`, then the bytes to the ticket (and `complete`
    /// where the ticket asks for it). Returns the share id.
    async fn share_bytes(
        &self,
        n: usize,
        bytes: &[u8],
        max_downloads: u32,
        expires_in: u64,
    ) -> String {
        let json = self
            .create_share(
                n,
                serde_json::json!({
                    "filename": "scale.bin", "size": bytes.len(), "max_downloads": max_downloads,
                    "expires_in": expires_in, "sha256": sha256_hex(bytes),
                }),
            )
            .await;
        put_to_ticket(&json, bytes.to_vec()).await;
        if let Some(complete) = json["upload"]["complete_url"].as_str() {
            self.complete(complete).await;
        }
        json["id"].as_str().unwrap().to_owned()
    }

    /// `POST /api/v1/shares` on instance `n`; returns the created share.
    async fn create_share(&self, n: usize, body: serde_json::Value) -> serde_json::Value {
        let response = client()
            .post(format!("{}/api/v1/shares", self.base(n)))
            .header("Authorization", self.auth())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "create share");
        response.json().await.unwrap()
    }

    /// Reports a direct upload complete at `url` (any instance's `complete` route).
    async fn complete(&self, url: &str) {
        let response = client()
            .post(url)
            .header("Authorization", self.auth())
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "complete");
    }

    async fn owner_view(&self, n: usize, id: &str) -> serde_json::Value {
        let response = client()
            .get(format!("{}/api/v1/shares/{id}", self.base(n)))
            .header("Authorization", self.auth())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Starts `once <args> --data-dir <shared>` with the cluster's environment.
    fn once(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run once")
    }
}

/// PUTs `body` to a created share's upload ticket with the headers it signed.
async fn put_to_ticket(share: &serde_json::Value, body: Vec<u8>) {
    let mut upload = client()
        .put(share["upload"]["url"].as_str().unwrap())
        .body(body);
    for (name, value) in share["upload"]["headers"].as_object().into_iter().flatten() {
        if !name.eq_ignore_ascii_case("content-length") {
            upload = upload.header(name.as_str(), value.as_str().unwrap());
        }
    }
    let response = upload.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "upload: {}",
        response.status()
    );
}

fn spawn_instance(data: &Path, env: &[(String, String)], log: &Path) -> Instance {
    let log_file = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("start once serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let base = line
        .trim()
        .strip_prefix("once listening on ")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {line:?}; log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .to_owned();
    Instance {
        child: Some(child),
        base,
    }
}

/// One scale-out test at a time, across processes (see the module comment).
fn serialise_scale_out_tests() -> std::fs::File {
    let path = std::env::temp_dir().join("once-scale-out-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file");
    file.lock().expect("lock");
    file
}

/// What one claim got: the status, or None when the connection failed without an answer.
async fn claim(http: &reqwest::Client, url: String) -> Option<u16> {
    let response = http
        .get(url)
        .header("Accept", "*/*")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    // Read the (small) body so the connection goes back to the pool; an answer whose body is
    // cut off still counts as answered.
    let _ = response.bytes().await;
    Some(status)
}

/// Fires `urls` as claims, `IN_FLIGHT` at a time; returns each answer in the order of `urls`.
async fn storm(urls: Vec<String>) -> Vec<Option<u16>> {
    storm_watched(urls, |_| ())
        .await
        .into_iter()
        .map(|claimed| claimed.status)
        .collect()
}

struct Claimed {
    status: Option<u16>,
    /// How many answers had arrived when this claim was sent.
    answers_before: usize,
}

/// [`storm`], calling `on_answer(n)` when the n-th answer (1-based) arrives, while other claims
/// are in flight. The stream runs on one task, so `on_answer` finishes before the next claim
/// is sent.
async fn storm_watched(urls: Vec<String>, on_answer: impl Fn(usize)) -> Vec<Claimed> {
    let http = client();
    let answered = AtomicUsize::new(0);
    let (answered, on_answer) = (&answered, &on_answer);
    let mut results: Vec<(usize, Claimed)> = futures::stream::iter(urls.into_iter().enumerate())
        .map(|(index, url)| {
            let http = http.clone();
            async move {
                let answers_before = answered.load(Ordering::Relaxed);
                let status = claim(&http, url).await;
                on_answer(answered.fetch_add(1, Ordering::Relaxed) + 1);
                (
                    index,
                    Claimed {
                        status,
                        answers_before,
                    },
                )
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, claimed)| claimed).collect()
}

fn count(results: &[Option<u16>], status: u16) -> usize {
    results.iter().filter(|r| **r == Some(status)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_spread_over_three_instances_are_exact() {
    let Some(cluster) = Cluster::start("claims_spread_over_three_instances_are_exact").await else {
        return;
    };
    let started = Instant::now();

    // One share, max 5 downloads, 1,000 claims round-robin over the three instances.
    let id = cluster.share_bytes(0, &payload(64, 1), 5, 3600).await;
    let urls = (0..1000)
        .map(|n| format!("{}/s/{id}", cluster.base(n)))
        .collect();
    let results = storm(urls).await;
    assert_eq!(
        (count(&results, 303), count(&results, 410)),
        (5, 995),
        "{results:?}\n{}",
        cluster.logs()
    );
    assert_eq!(cluster.owner_view(2, &id).await["downloads_left"], 0);
    eprintln!("1 share x 1,000 claims: {:?}", started.elapsed());

    // 50 shares at once, each max 5 downloads. 1,000 claims each would be 50,000 requests,
    // too many for a 2-core machine in a test run: 100 claims per share (5,000 in all),
    // interleaved so every share is claimed concurrently on all three instances.
    let started = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..50)
        .map(|n| {
            let cluster = &cluster;
            async move {
                cluster
                    .share_bytes(n, &payload(64, n as u64), 5, 3600)
                    .await
            }
        })
        .buffered(8)
        .collect()
        .await;
    let urls = (0..50 * 100)
        .map(|n| format!("{}/s/{}", cluster.base(n), ids[n % 50]))
        .collect();
    let results = storm(urls).await;
    for (share, id) in ids.iter().enumerate() {
        let mine: Vec<_> = results.iter().skip(share).step_by(50).copied().collect();
        assert_eq!(
            (mine.len(), count(&mine, 303), count(&mine, 410)),
            (100, 5, 95),
            "share {id}: {mine:?}"
        );
    }
    eprintln!("50 shares x 100 claims: {:?}", started.elapsed());
    let logs = cluster.logs();
    assert!(
        !logs.contains("ERROR"),
        "an instance logged an error:\n{logs}"
    );
}

fn signed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    timestamp: i64,
) -> reqwest::RequestBuilder {
    let (key_id, secret) = token.split_once('.').unwrap();
    let secret = KeySecret::parse(secret).unwrap();
    let signature =
        once_domain::signing::request_signature(&secret, "GET", path, timestamp, &sha256_hex(b""));
    http.get(format!("{base}{path}"))
        .header("X-Once-Key", key_id)
        .header("X-Once-Timestamp", timestamp.to_string())
        .header("X-Once-Signature", signature)
}

#[tokio::test]
async fn a_signature_accepted_by_one_instance_is_a_replay_on_another() {
    let Some(cluster) =
        Cluster::start("a_signature_accepted_by_one_instance_is_a_replay_on_another").await
    else {
        return;
    };
    let http = client();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let path = "/api/v1/requests";
    let first = signed(&http, cluster.base(0), &cluster.token, path, now)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200, "instance A accepts the signed request");
    for n in [1, 2] {
        let replay = signed(&http, cluster.base(n), &cluster.token, path, now)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(replay).await,
            (401, "replayed_signature".into()),
            "instance {n} sees the replay"
        );
    }
    // Instance B verifies signatures at all (it unseals the key with the shared master secret):
    // a fresh signature is accepted there.
    let fresh = signed(&http, cluster.base(1), &cluster.token, path, now + 1)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200, "instance B accepts a new signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_reapers_at_once_delete_every_expired_blob_once() {
    let Some(cluster) =
        Cluster::start("three_reapers_at_once_delete_every_expired_blob_once").await
    else {
        return;
    };
    // More shares than one reaper batch (100), so the reapers really split the work.
    const SHARES: usize = 240;
    let ids: Vec<String> = futures::stream::iter(0..SHARES)
        .map(|n| {
            let cluster = &cluster;
            async move { cluster.share_bytes(n, &payload(32, n as u64), 1, 1).await }
        })
        .buffered(8)
        .collect()
        .await;
    let blobs = cluster.data_dir().join("blobs");
    assert_eq!(files_in(&blobs).len(), SHARES);
    // Every share expires one second after it was created.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let reapers: Vec<Child> = (0..3).map(|_| cluster.once(&["reap"])).collect();
    let mut reaped = 0;
    for reaper in reapers {
        let output = reaper.wait_with_output().expect("reap finishes");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "reap failed: {stdout}{stderr}");
        assert!(
            !stderr.to_lowercase().contains("error"),
            "a reaper logged an error: {stderr}"
        );
        let count: u64 = stdout
            .split("reaped ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `reaped N shares` in {stdout:?}"));
        eprintln!("reaper: {}", stdout.trim());
        reaped += count;
    }
    assert_eq!(
        reaped, SHARES as u64,
        "each share reaped by exactly one reaper"
    );
    assert_eq!(
        files_in(&blobs),
        Vec::<PathBuf>::new(),
        "every blob deleted"
    );
    for id in ids.iter().step_by(40) {
        let response = client()
            .get(format!("{}/s/{id}", cluster.base(1)))
            .header("Accept", "*/*")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 410);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_instance_mid_storm_loses_no_answered_claim() {
    let Some(mut cluster) =
        Cluster::start("sigkill_of_one_instance_mid_storm_loses_no_answered_claim").await
    else {
        return;
    };
    const MAX: u64 = 300;
    const CLAIMS: usize = 600;
    let id = cluster
        .share_bytes(0, &payload(64, 7), MAX as u32, 3600)
        .await;
    let urls: Vec<String> = (0..CLAIMS)
        .map(|n| format!("{}/s/{id}", cluster.base(n)))
        .collect();
    // Instance B is killed when the 120th answer arrives: the other claims in flight then
    // (about a third of IN_FLIGHT on B) die with it, and later ones to B find no listener.
    let killed_after = 120;
    let victim = Mutex::new(cluster.instances[1].child.take());
    let claims = storm_watched(urls, |answered| {
        if answered == killed_after
            && let Some(mut child) = victim.lock().unwrap().take()
        {
            child.kill().expect("SIGKILL instance B");
            child.wait().expect("reap instance B");
        }
    })
    .await;
    assert!(victim.lock().unwrap().is_none(), "instance B was killed");

    let results: Vec<Option<u16>> = claims.iter().map(|claimed| claimed.status).collect();
    let successes = count(&results, 303) as u64;
    let refused = count(&results, 410);
    let unanswered: Vec<usize> = (0..CLAIMS).filter(|n| results[*n].is_none()).collect();
    // Only claims sent before the kill can have reached B; those sent after found no listener.
    let cut_off = claims
        .iter()
        .filter(|claimed| claimed.status.is_none() && claimed.answers_before < killed_after)
        .count() as u64;
    for (n, result) in results.iter().enumerate() {
        match (n % 3, result) {
            (_, Some(303 | 410)) | (1, None) => {}
            (instance, other) => panic!("claim {n} on instance {instance}: {other:?}"),
        }
    }
    assert!(
        !unanswered.is_empty(),
        "the kill happened mid-storm (after {killed_after} answers), so some claims to B failed"
    );
    let view = cluster.owner_view(0, &id).await;
    let left = view["downloads_left"].as_u64().unwrap();
    let consumed = MAX - left;
    eprintln!(
        "killed B after {killed_after} answers: {successes} × 303, {refused} × 410, {} \
         unanswered ({cut_off} of them in flight on B when it died); {consumed} downloads \
         consumed, {} of them by claims B committed but never answered",
        unanswered.len(),
        consumed - successes.min(consumed)
    );
    assert!(successes <= MAX, "more successes than max_downloads");
    // No answered claim lost: every 303 is a decrement in the database.
    assert!(
        successes <= consumed,
        "{successes} successes but only {consumed} consumed"
    );
    // None extra: a decrement without a 303 can only be a claim that was in flight on B when
    // it was killed, committed by the database but never answered.
    assert!(
        consumed - successes <= cut_off,
        "{consumed} consumed, {successes} answered, {cut_off} cut off by the kill"
    );
    if refused > 0 {
        assert_eq!(left, 0, "410 (used up) only once every download is taken");
    }
    // The survivors keep serving: the owner view comes from C as well.
    assert_eq!(cluster.owner_view(2, &id).await["downloads_left"], left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_instances_share_only_postgres_and_a_bucket() {
    let Some(bucket) = once_blob::testing::S3TestServer::start() else {
        return;
    };
    let mut extra = bucket.env();
    extra.extend([
        // Nothing on a shared disk: the instances agree on URL signing and sealed keys only
        // through this secret.
        ("ONCE_MASTER_SECRET".to_owned(), "5e".repeat(32)),
        ("ONCE_CLAIM_LEASE".to_owned(), "1s".to_owned()),
    ]);
    let Some(cluster) = Cluster::start_with(
        "stateless_instances_share_only_postgres_and_a_bucket",
        extra,
        false,
    )
    .await
    else {
        return;
    };
    let http = client();
    let bytes = payload(3 * 1024 * 1024 + 5, 21);
    // Created on instance 0, uploaded to the bucket, completed on instance 1.
    let share = cluster
        .create_share(
            0,
            serde_json::json!({
                "filename": "stateless.bin", "size": bytes.len(), "sha256": sha256_hex(&bytes),
            }),
        )
        .await;
    put_to_ticket(&share, bytes.clone()).await;
    let id = share["id"].as_str().unwrap();
    cluster
        .complete(&format!("{}/api/v1/shares/{id}/complete", cluster.base(1)))
        .await;

    // Claimed from all three at once: exactly one wins, on whichever instance.
    let urls: Vec<String> = (0..60)
        .map(|n| format!("{}/s/{id}", cluster.base(n)))
        .collect();
    let results = storm(urls).await;
    assert_eq!(count(&results, 303), 1, "{results:?}\n{}", cluster.logs());
    assert_eq!(count(&results, 410), 59, "{results:?}");

    // A second share, created on instance 2 and claimed on instance 0, downloads straight
    // from the bucket.
    let second = cluster
        .create_share(2, serde_json::json!({"filename": "b.bin", "size": 4}))
        .await;
    put_to_ticket(&second, b"abcd".to_vec()).await;
    cluster
        .complete(second["upload"]["complete_url"].as_str().unwrap())
        .await;
    let claimed = http
        .get(format!(
            "{}/s/{}",
            cluster.base(0),
            second["id"].as_str().unwrap()
        ))
        .header("Accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 303);
    let location = claimed.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&bucket.endpoint), "{location}");
    assert_eq!(
        &http
            .get(&location)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()[..],
        b"abcd"
    );

    // After the leases one reaper, started anywhere, empties the bucket.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let output = cluster.once(&["reap"]).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(bucket.objects().is_empty(), "{:?}", bucket.objects());
}

/// Webhook events written on three instances, delivered by three delivery loops taking from
/// one outbox: every event arrives, each exactly once, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_deliver_each_webhook_event_once() {
    use crate::webhooks::{Receiver, count_of, events, secret};
    let receiver = Receiver::start().await;
    let Some(cluster) = Cluster::start_with(
        "three_instances_deliver_each_webhook_event_once",
        vec![
            ("ONCE_WEBHOOK_URL".to_owned(), receiver.url.clone()),
            ("ONCE_WEBHOOK_SECRET".to_owned(), secret()),
            ("ONCE_NOTIFY_RETRY".to_owned(), "1s".to_owned()),
        ],
        true,
    )
    .await
    else {
        return;
    };
    let http = client();
    const SHARES: usize = 12;
    for n in 0..SHARES {
        let id = cluster.share_bytes(n, b"fan out", 1, 600).await;
        // Claimed on another instance than the one that made it.
        let status = claim(&http, format!("{}/s/{id}", cluster.base(n + 1))).await;
        assert_eq!(status, Some(303), "{}", cluster.logs());
    }
    let accepted = receiver
        .wait_for("two events per share", |seen| seen.len() >= 2 * SHARES)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted_later = receiver.accepted();
    assert_eq!(
        accepted_later.len(),
        accepted.len(),
        "duplicates: {:#?}",
        events(&accepted_later)
    );
    assert_eq!(count_of(&accepted, "share.claimed"), SHARES);
    assert_eq!(count_of(&accepted, "share.consumed"), SHARES);
    let ids: std::collections::HashSet<&str> = accepted.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 2 * SHARES, "each event once");
}
