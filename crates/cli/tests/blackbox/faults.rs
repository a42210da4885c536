//! Faults under the real binary: `once serve` with its data directory on a small volume that
//! fills up in the middle of claims, uploads, publishes and reaps, and with PostgreSQL metadata
//! also the database restarted in the middle of a claim storm. What must hold: no share is
//! claimed more than `max_downloads` times, every claim answered with a redirect is recorded,
//! nothing short is served as complete, a failed upload leaves its slot open, and once the
//! fault is healed the same process serves again. A fault that cannot be set up here follows
//! the rule of `once_meta::testing::faults` (a failure with `CI` or `ONCE_REQUIRE_FAULTS=1`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use once_meta::testing::faults::{PrivateCluster, SmallVolume};
use once_meta::testing::storms::{Acknowledgements, Fault};
use serde_json::json;

use crate::harness::*;

const MIB: u64 = 1024 * 1024;
const MAX_DOWNLOADS: u32 = 5;
/// Concurrent claims of each share in a storm.
const CLAIMERS: usize = 200;
/// Shares stormed one after another, so that a fault of some duration (a restart) lands in
/// the middle of one of them.
const STORMED_SHARES: usize = 5;
/// Small enough that the filler is quick, large enough for a few files of `FILE_SIZE` above
/// the default 128 MiB reserve too: a build that ignores `ONCE_MIN_FREE_SPACE` must still
/// take the uploads made before the fault.
const DATA_VOLUME: u64 = 160 * MIB;
/// The private cluster itself takes ~30 MiB.
const CLUSTER_VOLUME: u64 = 64 * MIB;
const FILE_SIZE: usize = 256 * 1024;
/// No test here may hang: each ends within this, or fails.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// The server under test and the volumes its state lives on. Fields drop in order: the server
/// stops before its volumes go.
struct Rig {
    server: Server,
    data: Arc<SmallVolume>,
    cluster: Option<Arc<PrivateCluster>>,
}

impl Rig {
    /// SQLite and blobs both in a data directory on one small volume. `None` (reported) when
    /// no tmpfs can be mounted here and faults are not required.
    fn sqlite(test: &str, env: &[(&str, &str)]) -> Option<Self> {
        let data = Arc::new(SmallVolume::mount(test, DATA_VOLUME)?);
        let server = Server::start_with_data_dir(&data.path().join("data"), &fault_env(env));
        Some(Self {
            server,
            data,
            cluster: None,
        })
    }

    /// Blobs in a data directory on a small volume, metadata in a private PostgreSQL cluster
    /// on a volume of its own, so either can be filled (or the cluster restarted) alone.
    fn postgres(test: &str, env: &[(&str, &str)]) -> Option<Self> {
        let data = Arc::new(SmallVolume::mount(test, DATA_VOLUME)?);
        let cluster = Arc::new(PrivateCluster::start(test, CLUSTER_VOLUME)?);
        let url = cluster.url();
        let mut env = fault_env(env);
        env.push(("ONCE_DATABASE_URL", url.as_str()));
        let server = Server::start_with_data_dir(&data.path().join("data"), &env);
        Some(Self {
            server,
            data,
            cluster: Some(cluster),
        })
    }

    /// Fills every volume the server writes to.
    fn fill_everything(&self) -> Fault {
        let (data, cluster) = (Arc::clone(&self.data), self.cluster.clone());
        Box::new(move || {
            data.fill();
            if let Some(cluster) = cluster {
                fill_cluster(&cluster);
            }
        })
    }

    /// The private cluster (of a PostgreSQL rig).
    fn cluster(&self) -> Arc<PrivateCluster> {
        Arc::clone(self.cluster.as_ref().expect("a PostgreSQL rig"))
    }

    /// Gives the space back (and starts PostgreSQL again if the full disk stopped it), then
    /// waits until the same `once serve` process finds its store again.
    async fn heal(&self) {
        self.data.free();
        if let Some(cluster) = &self.cluster {
            cluster.volume().free();
            cluster.ensure_running();
        }
        ready_again(&self.server).await;
    }

    /// A full SQLite refuses the write itself; a PostgreSQL that crashes on a full WAL volume
    /// (or is restarted) may lose the answer to a write it committed.
    fn acknowledgements(&self) -> Acknowledgements {
        match self.cluster {
            Some(_) => Acknowledgements::MayBeLost,
            None => Acknowledgements::Exact,
        }
    }
}

/// A reserve small enough that the filler, not the server's own check, is what runs out, and
/// connection caps and no request rate per address above a storm's claims: these tests are
/// about the disk and the database, not about the limits that keep one address from holding
/// every connection or sending requests faster than a person would.
fn fault_env<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("ONCE_MIN_FREE_SPACE", "1MiB"),
        ("ONCE_MAX_CONNECTIONS", "1024"),
        ("ONCE_MAX_CONNECTIONS_PER_ADDRESS", "1024"),
        ("ONCE_ADDRESS_RATE_LIMIT", "0"),
    ];
    all.extend_from_slice(env);
    all
}

fn fill_cluster(cluster: &PrivateCluster) {
    assert!(
        cluster.fill(),
        "the private cluster kept accepting writes on a full volume; log:\n{}",
        cluster.log()
    );
}

/// Runs a test body within [`TEST_BOUND`].
async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BOUND, body)
        .await
        .expect("the fault test did not finish within its bound");
}

/// Waits (bounded) until `/readyz` answers 200: the store is reachable and commits again.
async fn ready_again(server: &Server) {
    for _ in 0..300 {
        if let Ok(response) = client().get(server.url("/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "once serve did not become ready again after the fault was healed; log:\n{}",
        server.log()
    );
}

/// What one claim was answered.
enum Answer {
    /// 303 to the download URL.
    Redirect(String),
    Refused(u16, String),
}

async fn claim_answer(link: &str) -> Answer {
    let response = claim(link).await;
    if response.status() == 303 {
        Answer::Redirect(response.headers()["location"].to_str().unwrap().to_owned())
    } else {
        let (status, code) = error_code(response).await;
        Answer::Refused(status, code)
    }
}

/// `CLAIMERS` concurrent claims of one link.
async fn claim_all(link: &str) -> Vec<Answer> {
    let claims: Vec<_> = (0..CLAIMERS)
        .map(|_| {
            let link = link.to_owned();
            tokio::spawn(async move { claim_answer(&link).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(CLAIMERS);
    for claim in claims {
        answers.push(claim.await.expect("a claim panicked"));
    }
    answers
}

/// Storms the shares one after another, all but the last while `fault` is being injected (so
/// the fault lands in the middle of some share's storm, with downloads left), the last once it
/// is in place (so that storm surely meets it). Answers per share, in order.
async fn claim_storm(shares: &[CreatedShare], fault: Fault) -> Vec<Vec<Answer>> {
    let (racing, meeting) = shares.split_at(shares.len() - 1);
    let racing_storms = async {
        let mut answers = Vec::with_capacity(shares.len());
        for share in racing {
            answers.push(claim_all(&share.url).await);
        }
        answers
    };
    let (mut answers, injected) = tokio::join!(racing_storms, tokio::task::spawn_blocking(fault));
    injected.expect("the fault panicked");
    answers.push(claim_all(&meeting[0].url).await);
    answers
}

/// Checks one share's storm: at most `MAX_DOWNLOADS` redirects, refusals only "consumed" or a
/// store failure, and every redirect's download the whole file or an error, never short bytes
/// with a 200. Returns the number of redirects.
async fn check_storm(answers: &[Answer], bytes: &[u8], server: &Server) -> u32 {
    let (mut redirects, mut consumed, mut unavailable) = (0, 0, 0);
    for answer in answers {
        match answer {
            Answer::Redirect(location) => {
                redirects += 1;
                served_whole_or_refused(location, bytes).await;
            }
            Answer::Refused(410, code) if code == "share_consumed" => consumed += 1,
            Answer::Refused(503, code) if code == "store_unavailable" => unavailable += 1,
            Answer::Refused(status, code) => panic!(
                "a claim during the fault was answered {status} {code:?}; log:\n{}",
                server.log()
            ),
        }
    }
    // Whether the storm met the fault depends on the store (a full disk may refuse nothing
    // for a while): said, not asserted, so a run shows what it exercised.
    eprintln!("storm: {redirects} redirects, {consumed} consumed, {unavailable} store_unavailable");
    assert!(
        redirects <= MAX_DOWNLOADS,
        "{redirects} claims succeeded on a share of {MAX_DOWNLOADS} downloads"
    );
    redirects
}

/// A download URL either serves all of `bytes` with a 200 or answers an error.
async fn served_whole_or_refused(location: &str, bytes: &[u8]) {
    let Ok(response) = client().get(location).send().await else {
        return;
    };
    if response.status() != 200 {
        return;
    }
    if let Ok(body) = response.bytes().await {
        assert!(
            body.as_ref() == bytes,
            "a 200 served {} bytes of a {}-byte file (or other bytes)",
            body.len(),
            bytes.len()
        );
    }
}

/// After the fault is healed: the owner view records every redirect (exactly those, where
/// acknowledgements are exact), and the same process serves the claims left, each whole, then
/// answers 410.
async fn claims_recorded_then_served(
    rig: &Rig,
    share: &CreatedShare,
    bytes: &[u8],
    redirects: u32,
) {
    let left = owner_view(&rig.server, &share.id).await["downloads_left"]
        .as_u64()
        .expect("downloads_left") as u32;
    let recorded = MAX_DOWNLOADS - left;
    match rig.acknowledgements() {
        Acknowledgements::Exact => assert_eq!(
            recorded, redirects,
            "{redirects} claims answered 303, {recorded} recorded"
        ),
        Acknowledgements::MayBeLost => assert!(
            recorded >= redirects,
            "{redirects} claims answered 303, only {recorded} recorded"
        ),
    }
    for _ in 0..left {
        assert!(
            download(&share.url).await.1 == bytes,
            "a later download differs"
        );
    }
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (410, "share_consumed".into())
    );
}

/// A new share uploads and downloads whole: the process recovered without a restart.
async fn new_shares_work(server: &Server) {
    let bytes = payload(FILE_SIZE, 77);
    let share = share_bytes(server, "after.bin", &bytes, 1).await;
    assert!(download(&share.url).await.1 == bytes, "a new share differs");
}

async fn claims_meeting_a_fault(rig: &Rig, fault: Fault) {
    let bytes: Vec<_> = (0..STORMED_SHARES)
        .map(|seed| payload(FILE_SIZE, seed as u64))
        .collect();
    let mut shares = Vec::with_capacity(STORMED_SHARES);
    for (index, bytes) in bytes.iter().enumerate() {
        let name = format!("stormed-{index}.bin");
        shares.push(share_bytes(&rig.server, &name, bytes, MAX_DOWNLOADS).await);
    }
    let answers = claim_storm(&shares, fault).await;
    let mut redirects = Vec::with_capacity(STORMED_SHARES);
    for (answers, bytes) in answers.iter().zip(&bytes) {
        redirects.push(check_storm(answers, bytes, &rig.server).await);
    }
    rig.heal().await;
    for ((share, bytes), redirects) in shares.iter().zip(&bytes).zip(redirects) {
        claims_recorded_then_served(rig, share, bytes, redirects).await;
    }
    new_shares_work(&rig.server).await;
}

/// A refusal that a full disk or an unwritable database may cause; nothing else is expected.
fn assert_fault_refusal((status, code): (u16, String), what: &str) {
    assert!(
        matches!(
            (status, code.as_str()),
            (507, "storage_full") | (503, "store_unavailable")
        ),
        "{what} on a full disk was answered {status} {code:?}"
    );
}

/// A pending share with a ticket for exactly `bytes`.
async fn ticket_for(server: &Server, filename: &str, bytes: &[u8]) -> CreatedShare {
    let body = json!({"filename": filename, "size": bytes.len(), "sha256": sha256_hex(bytes)});
    create_share(server, body).await
}

/// `PUT /api/v1/files/{filename}`, as `curl -T` sends it.
async fn one_step_upload(server: &Server, filename: &str, bytes: &[u8]) -> reqwest::Response {
    client()
        .put(server.url(&format!("/api/v1/files/{filename}")))
        .header("Authorization", server.auth())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

/// `PUT {request URL}/{filename}`, as the requested person's `curl -T` sends it.
async fn upload_to_request(request_url: &str, filename: &str, bytes: &[u8]) -> reqwest::Response {
    client()
        .put(format!("{request_url}/{filename}"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

/// One-step upload, ticket upload and upload to a request URL, all on a full disk: each is
/// refused with a fault code, leaves no file behind, and once space returns the same ticket
/// and request URL take their upload (the slots were not used up).
async fn uploads_meeting_a_full_disk(rig: &Rig) {
    let server = &rig.server;
    let bytes = payload(FILE_SIZE, 3);
    let ticket = ticket_for(server, "ticket.bin", &bytes).await;
    let request = create_request(server, json!({"max_size": 2 * FILE_SIZE})).await;
    let request_url = request["url"].as_str().unwrap().to_owned();
    tokio::task::spawn_blocking(rig.fill_everything())
        .await
        .unwrap();

    let one_step = one_step_upload(server, "one-step.bin", &bytes).await;
    assert_fault_refusal(error_code(one_step).await, "a one-step upload");
    let refused = send_to_ticket(server, &ticket, bytes.clone())
        .await
        .expect_err("a ticket upload on a full disk succeeded");
    assert_fault_refusal(refused, "a ticket upload");
    let to_request = upload_to_request(&request_url, "requested.bin", &bytes).await;
    assert_fault_refusal(error_code(to_request).await, "an upload to a request URL");
    assert!(
        server.blob_files().is_empty(),
        "a refused upload left a blob"
    );
    assert!(
        server.temp_files().is_empty(),
        "a refused upload left a temporary file"
    );

    rig.heal().await;
    assert_eq!(owner_view(server, &ticket.id).await["state"], "pending");
    send_to_ticket(server, &ticket, bytes.clone())
        .await
        .expect("the ticket takes its upload once space returns");
    assert!(download(&ticket.url).await.1 == bytes);
    let accepted = upload_to_request(&request_url, "requested.bin", &bytes).await;
    assert_eq!(
        accepted.status(),
        201,
        "the request URL takes its upload once space returns"
    );
    let one_step = one_step_upload(server, "one-step.bin", &bytes).await;
    assert_eq!(one_step.status(), 201);
    let link = one_step.text().await.unwrap();
    assert!(download(link.trim()).await.1 == bytes);
}

/// How a publish that meets the fault may end.
#[derive(PartialEq)]
enum Publish {
    /// The fault surely refuses it.
    Refused,
    /// The store may still commit it (PostgreSQL keeps writing into WAL it allocated before
    /// its volume filled); then the share must serve those very bytes.
    MayPublish,
}

/// A ticket upload whose publish meets `fault`: refused with a fault code (or, where allowed,
/// published whole), and a refused ticket publishes once the fault is healed; either way the
/// share then serves exactly the uploaded bytes (where the answer to a committed publish may
/// be lost, the retry may find the slot used by those same bytes).
async fn publish_meeting_a_fault(rig: &Rig, fault: Fault, publish: Publish) {
    let server = &rig.server;
    let bytes = payload(FILE_SIZE, 4);
    let ticket = ticket_for(server, "publish.bin", &bytes).await;
    tokio::task::spawn_blocking(fault).await.unwrap();
    let during = send_to_ticket(server, &ticket, bytes.clone()).await;
    rig.heal().await;
    match during {
        Ok(()) => assert!(
            publish == Publish::MayPublish,
            "a publish that the fault must refuse succeeded"
        ),
        Err(refusal) => {
            assert_fault_refusal(refusal, "a publish");
            match send_to_ticket(server, &ticket, bytes.clone()).await {
                Ok(()) => {}
                Err((409, code)) if rig.acknowledgements() == Acknowledgements::MayBeLost => {
                    assert_eq!(code, "slot_used");
                }
                Err(refusal) => {
                    panic!("the ticket did not publish once the fault was healed: {refusal:?}")
                }
            }
        }
    }
    assert!(download(&ticket.url).await.1 == bytes);
    new_shares_work(server).await;
}

/// `once reap` on a full disk fails or succeeds but never deletes bytes still to be served;
/// once space returns a reap removes the served file, and the unserved share still downloads.
async fn reap_meeting_a_full_disk(rig: &Rig) {
    let server = &rig.server;
    let served_bytes = payload(FILE_SIZE, 5);
    let waiting_bytes = payload(FILE_SIZE, 6);
    let served = share_bytes(server, "served.bin", &served_bytes, 1).await;
    let waiting = share_bytes(server, "waiting.bin", &waiting_bytes, 1).await;
    assert!(download(&served.url).await.1 == served_bytes);
    // Past the claim lease (ONCE_CLAIM_LEASE below), so the served bytes are due for reaping.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tokio::task::spawn_blocking(rig.fill_everything())
        .await
        .unwrap();
    let during = server.once(&["reap"]);
    assert!(
        during.status.code().is_some(),
        "once reap on a full disk was killed by a signal: {}",
        String::from_utf8_lossy(&during.stderr)
    );
    rig.heal().await;
    server.reap();
    assert_eq!(
        server.blob_files().len(),
        1,
        "the reaper left the served file, or took the waiting one"
    );
    assert_eq!(claim(&served.url).await.status(), 410);
    assert!(download(&waiting.url).await.1 == waiting_bytes);
    new_shares_work(server).await;
}

const LEASE: &[(&str, &str)] = &[("ONCE_CLAIM_LEASE", "1s")];

/// One test of a scenario on a rig: the rig (or, where faults cannot be set up, the reported
/// skip), then the scenario within [`TEST_BOUND`]. `$rig` names the rig in `$scenario`.
macro_rules! fault_test {
    ($name:ident, $backend:ident, $env:expr, |$rig:ident| $scenario:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some($rig) = Rig::$backend(stringify!($name), $env) else {
                return;
            };
            bounded($scenario).await;
        }
    };
}

fault_test!(
    claims_on_a_filling_disk_never_exceed_max_downloads_and_every_success_is_recorded,
    sqlite,
    &[],
    |rig| claims_meeting_a_fault(&rig, rig.fill_everything())
);

fault_test!(
    claims_on_a_filling_postgres_volume_never_exceed_max_downloads_and_are_recorded,
    postgres,
    &[],
    |rig| claims_meeting_a_fault(&rig, rig.fill_everything())
);

fault_test!(
    claims_across_a_postgres_restart_never_exceed_max_downloads_and_are_recorded,
    postgres,
    &[],
    |rig| {
        let cluster = rig.cluster();
        claims_meeting_a_fault(&rig, Box::new(move || cluster.restart("immediate")))
    }
);

fault_test!(
    uploads_on_a_full_disk_are_refused_and_leave_their_slots_open,
    sqlite,
    &[],
    |rig| uploads_meeting_a_full_disk(&rig)
);

fault_test!(
    uploads_on_a_full_disk_with_postgres_are_refused_and_leave_their_slots_open,
    postgres,
    &[],
    |rig| uploads_meeting_a_full_disk(&rig)
);

fault_test!(
    publish_on_a_full_disk_is_refused_and_the_ticket_publishes_later,
    sqlite,
    &[],
    |rig| publish_meeting_a_fault(&rig, rig.fill_everything(), Publish::Refused)
);

// Only the database's volume fills: the bytes still have room, so the publish meets the fault.
fault_test!(
    publish_on_a_full_postgres_volume_is_refused_or_whole_and_the_ticket_publishes_later,
    postgres,
    &[],
    |rig| {
        let cluster = rig.cluster();
        publish_meeting_a_fault(
            &rig,
            Box::new(move || fill_cluster(&cluster)),
            Publish::MayPublish,
        )
    }
);

fault_test!(
    publish_while_postgres_is_down_is_refused_and_the_ticket_publishes_later,
    postgres,
    &[],
    |rig| {
        let cluster = rig.cluster();
        publish_meeting_a_fault(&rig, Box::new(move || cluster.stop()), Publish::Refused)
    }
);

fault_test!(
    reap_on_a_full_disk_deletes_nothing_unserved_and_finishes_once_space_returns,
    sqlite,
    LEASE,
    |rig| reap_meeting_a_full_disk(&rig)
);

fault_test!(
    reap_on_full_volumes_with_postgres_deletes_nothing_unserved_and_finishes_later,
    postgres,
    LEASE,
    |rig| reap_meeting_a_full_disk(&rig)
);
