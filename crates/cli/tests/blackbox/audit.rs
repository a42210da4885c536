//! The audit log through the real binary: `once audit --share` tells the story of one share,
//! from its creation to its consumption and the claims refused around it, with each client's
//! address and user agent, never the file's name or the link's key; `--json` says the same as
//! data; and one key never sees another key's events. On SQLite, and on PostgreSQL where a
//! test database is configured.

use serde_json::Value;

use crate::harness::*;

/// The kinds of `events`, in order.
fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect()
}

async fn claim_as(link: &str, user_agent: &str, proof: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
        .post(link)
        .header("Accept", "application/json");
    if let Some(proof) = proof {
        request = request.header("X-Once-Proof", proof);
    }
    error_code(request.send().await.unwrap()).await
}

async fn the_story_of_one_share(server: &Server) {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("quarterly-plans.txt"), b"the plans").unwrap();
    let link = link_of(server, work.path(), &["send", "quarterly-plans.txt", "-q"]);
    let (without_fragment, fragment) = link.split_once('#').expect("an encrypted link");
    let id = without_fragment.rsplit('/').next().unwrap().to_owned();

    // A claim with a made-up proof is refused and uses nothing up.
    assert_eq!(
        claim_as(without_fragment, "guesser/1.0", Some("bm90IGEgcHJvb2Y")).await,
        (401, "wrong_key".to_owned())
    );
    let fetched = tempfile::tempdir().unwrap();
    let got = once_client(server, fetched.path(), &["get", &link, "-q"]);
    assert!(got.status.success(), "{}", stderr(&got));
    // Too late: the one download is taken.
    assert_eq!(
        claim_as(without_fragment, "late-comer/2.0", None).await,
        (410, "share_consumed".to_owned())
    );

    let lines = stdout(&once_client(
        server,
        work.path(),
        &["audit", "--share", &link],
    ));
    let story: Vec<&str> = lines.lines().collect();
    let kinds_shown: Vec<&str> = story
        .iter()
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        kinds_shown,
        [
            "share.created",
            "upload.completed",
            "claim.refused",
            "share.claimed",
            "share.consumed",
            "claim.refused"
        ],
        "{lines}"
    );
    for line in &story {
        assert!(line.contains("127.0.0.1"), "no address in {line}");
    }
    assert!(story[0].contains("\"once-cli/"), "{}", story[0]);
    assert!(story[2].contains("\"guesser/1.0\""), "{}", story[2]);
    assert!(story[3].contains("\"once-cli/"), "{}", story[3]);
    assert!(story[4].contains("max_downloads=1"), "{}", story[4]);
    assert!(story[5].contains("\"late-comer/2.0\"") && story[5].contains("code=share_consumed"));
    assert!(
        !lines.contains("quarterly") && !lines.contains(fragment),
        "the audit log names the file or holds the key: {lines}"
    );

    let json = stdout(&once_client(
        server,
        work.path(),
        &["audit", "--share", &id, "--json"],
    ));
    let events: Vec<Value> = serde_json::from_str(&json).expect("one JSON array");
    assert_eq!(kinds(&events), kinds_shown);
    let key_id = server.token.split('.').next().unwrap();
    for event in &events {
        assert_eq!(event["share_id"], id.as_str(), "{event}");
        assert_eq!(event["client"], "127.0.0.1", "{event}");
        assert!(event["at"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    // The owner's key made the share; recipients used none.
    assert_eq!(events[0]["key_id"], key_id);
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .contains("encrypted=true")
    );
    assert!(events[3]["key_id"].is_null());
    assert_eq!(events[2]["detail"], "code=wrong_key");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert!(!json.contains("quarterly") && !json.contains(fragment));

    // Another key sees none of it, not even by the share's id.
    let other = stdout(&server.once(&["keys", "create", "--name", "other"]))
        .trim()
        .to_owned();
    let as_other = |args: &[&str]| {
        let output = client_command(server, work.path(), args)
            .env("ONCE_KEY", &other)
            .output()
            .unwrap();
        stdout(&output)
    };
    let theirs: Vec<Value> =
        serde_json::from_str(&as_other(&["audit", "--share", &id, "--json"])).unwrap();
    assert!(theirs.is_empty(), "{theirs:?}");
    let all_theirs: Vec<Value> = serde_json::from_str(&as_other(&["audit", "--json"])).unwrap();
    assert_eq!(kinds(&all_theirs), ["key.created"], "{all_theirs:?}");
    // The owner's whole log holds the share's story and its own key's creation.
    let all_mine: Vec<Value> = serde_json::from_str(&stdout(&once_client(
        server,
        work.path(),
        &["audit", "--json"],
    )))
    .unwrap();
    assert!(kinds(&all_mine).contains(&"key.created"));
    assert!(
        all_mine
            .iter()
            .any(|event| event["share_id"] == id.as_str())
    );
    // --since a time after everything finds nothing.
    let later = stdout(&once_client(
        server,
        work.path(),
        &["audit", "--since", "2999-01-01T00:00:00Z", "--json"],
    ));
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&later).unwrap(),
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn once_audit_tells_the_story_of_a_share_from_creation_to_consumption() {
    let server = Server::start();
    the_story_of_one_share(&server).await;
}

#[tokio::test]
async fn once_audit_tells_the_same_story_on_postgres() {
    let Some(database) =
        once_meta::testing::TestDatabase::create("once_audit_tells_the_story_on_postgres").await
    else {
        return;
    };
    let server = Server::start_with(&[("ONCE_DATABASE_URL", database.url())]);
    the_story_of_one_share(&server).await;
}

#[tokio::test]
async fn the_audit_api_needs_a_key_and_checks_its_query() {
    let server = Server::start();
    let anonymous = client()
        .get(server.url("/api/v1/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    for query in ["since=yesterday", "limit=0", "share=nope", "colour=blue"] {
        let (status, body) = api_get(&server, &format!("/api/v1/audit?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}: {body}");
    }
    let (status, body) = api_get(&server, "/api/v1/audit").await;
    assert_eq!(status, 200);
    // The bootstrap key's creation at start-up is in its own log.
    assert_eq!(body["events"][0]["kind"], "key.created", "{body}");
}

/// `once audit --request LINK`: an upload request's story (made, fulfilled, a second upload
/// refused), and nothing of the key's other shares.
#[tokio::test]
async fn once_audit_tells_the_story_of_an_upload_request() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("other.txt"), b"not this one").unwrap();
    link_of(&server, work.path(), &["send", "other.txt", "-q"]);
    let link = link_of(&server, work.path(), &["request", "--no-encrypt"]);
    let url = link.lines().last().unwrap().trim().to_owned();
    fulfil_then_refuse(&url).await;
    let events: Vec<Value> = serde_json::from_str(&stdout(&once_client(
        &server,
        work.path(),
        &["audit", "--request", &url, "--json"],
    )))
    .unwrap();
    assert_eq!(
        kinds(&events),
        ["request.created", "request.fulfilled", "upload.refused"],
        "{events:#?}"
    );
    let refused = &events[2];
    assert_eq!(refused["user_agent"], "curl/8.5.0", "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("slot_used"),
        "{refused}"
    );
    // The bare id works as well as the link.
    let id = url.rsplit('/').next().unwrap();
    let by_id = stdout(&once_client(
        &server,
        work.path(),
        &["audit", "--request", id],
    ));
    assert_eq!(by_id.lines().count(), 3, "{by_id}");
}
