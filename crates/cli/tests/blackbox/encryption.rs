//! End-to-end encrypted shares and requests against the real server (`docs/encryption.md`):
//! bodies sealed with once-seal, the seal and its challenge, the proof before the claim, the
//! 406 for download tools (real curl and wget), encrypted upload requests, and what the data
//! directory holds afterwards: ciphertext, never the file's name or contents.

use std::path::{Path, PathBuf};
use std::process::Command;

use once_seal::{Keys, PasswordParams, RequestKeyPair, Secret, StreamOpener, StreamSealer, b64u};
use serde_json::{Value, json};

use crate::harness::*;

/// What a sender made of a file: the keys, the sealed bytes and the `encryption` to send.
struct Sealed {
    keys: Keys,
    ciphertext: Vec<u8>,
    encryption: Value,
}

fn seal_bytes(keys: Keys, plaintext: &[u8]) -> Vec<u8> {
    let mut sealer = StreamSealer::new(keys);
    let mut ciphertext = Vec::new();
    sealer.push(plaintext, &mut ciphertext);
    sealer.finish(&mut ciphertext);
    ciphertext
}

fn metadata(name: &str, plaintext: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({"name": name, "type": "text/plain", "size": plaintext.len()}))
        .unwrap()
}

/// Seals `plaintext` named `name` for a share link, with `password` if given (with Argon2id's
/// smallest parameters, so the debug build stays quick).
fn seal_for_share(name: &str, plaintext: &[u8], password: Option<&str>) -> (Secret, Sealed) {
    let secret = Secret::generate();
    let params = PasswordParams {
        memory_kib: 8,
        iterations: 1,
        ..PasswordParams::generate()
    };
    let keys = Keys::for_share(&secret, password.map(|password| (password, &params))).unwrap();
    let mut encryption = json!({
        "scheme": once_seal::SCHEME,
        "claim_key": b64u(&keys.claim_key()),
        "sealed_meta": keys.seal_metadata(&metadata(name, plaintext)),
    });
    if password.is_some() {
        encryption["password"] = json!({
            "salt": b64u(&params.salt), "memory_kib": params.memory_kib,
            "iterations": params.iterations, "parallelism": params.parallelism,
        });
    }
    let ciphertext = seal_bytes(keys.clone(), plaintext);
    (
        secret,
        Sealed {
            keys,
            ciphertext,
            encryption,
        },
    )
}

/// Creates an encrypted share of `sealed` through the API and uploads its ciphertext.
async fn share_sealed(server: &Server, sealed: &Sealed) -> CreatedShare {
    let share = create_share(
        server,
        json!({
            "filename": "", "size": sealed.ciphertext.len(),
            "sha256": sha256_hex(&sealed.ciphertext), "encryption": sealed.encryption,
        }),
    )
    .await;
    send_to_ticket(server, &share, sealed.ciphertext.clone())
        .await
        .expect("upload");
    share
}

/// `GET /s/{id}/seal`: the status and the answer.
async fn fetch_seal(server: &Server, id: &str) -> (u16, Value) {
    let response = client()
        .get(server.url(&format!("/s/{id}/seal")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /s/{id}` with `proof` in `X-Once-Proof`, if any.
async fn claim_with(link: &str, proof: Option<&str>) -> reqwest::Response {
    let mut request = client().post(link);
    if let Some(proof) = proof {
        request = request.header("X-Once-Proof", proof);
    }
    request.send().await.unwrap()
}

/// Fetches a seal, proves the key and downloads: the ciphertext.
async fn claim_and_download(server: &Server, share: &CreatedShare, keys: &Keys) -> Vec<u8> {
    let (status, seal) = fetch_seal(server, &share.id).await;
    assert_eq!(status, 200, "{seal}");
    let proof = keys.claim_proof(&share.id, seal["challenge"].as_str().unwrap());
    let claimed = claim_with(&share.url, Some(&proof)).await;
    assert_eq!(claimed.status(), 303, "{}", claimed.text().await.unwrap());
    let location = claimed.headers()["location"].to_str().unwrap().to_owned();
    let response = client().get(&location).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

fn open_bytes(keys: Keys, ciphertext: &[u8]) -> Vec<u8> {
    let mut opener = StreamOpener::new(keys, ciphertext.len() as u64, 0).unwrap();
    let mut plaintext = Vec::new();
    opener.push(ciphertext, &mut plaintext).unwrap();
    opener.finish(&mut plaintext).unwrap();
    plaintext
}

async fn downloads_left(server: &Server, id: &str) -> u64 {
    owner_view(server, id).await["downloads_left"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn encrypted_shares_of_every_record_boundary_round_trip_through_seal_proof_and_download() {
    let server = Server::start();
    for size in [0usize, 1, 65536, 65537] {
        let plaintext = payload(size, size as u64 + 3);
        let (_secret, sealed) = seal_for_share("boundary.bin", &plaintext, None);
        let share = share_sealed(&server, &sealed).await;
        assert_eq!(share.json["filename"], "encrypted", "{}", share.json);
        assert_eq!(share.json["content_type"], "application/octet-stream");
        assert_eq!(share.json["encrypted"], true);
        let view = owner_view(&server, &share.id).await;
        assert_eq!(view["encrypted"], true, "{view}");
        assert_eq!(view["size"], sealed.ciphertext.len(), "{view}");

        let (status, seal) = fetch_seal(&server, &share.id).await;
        assert_eq!(status, 200, "{seal}");
        assert_eq!(seal["scheme"], "once-v1");
        assert_eq!(seal["record_size"], 65536);
        assert_eq!(seal["size"], sealed.ciphertext.len());
        assert_eq!(seal["downloads_left"], 1);
        assert!(seal.get("password").is_none(), "{seal}");
        let meta = sealed
            .keys
            .open_metadata(seal["sealed_meta"].as_str().unwrap())
            .unwrap();
        assert_eq!(meta, metadata("boundary.bin", &plaintext));
        // Fetching the seal consumed nothing.
        assert_eq!(downloads_left(&server, &share.id).await, 1);

        let downloaded = claim_and_download(&server, &share, &sealed.keys).await;
        assert!(downloaded == sealed.ciphertext, "size {size}");
        assert!(open_bytes(sealed.keys.clone(), &downloaded) == plaintext);
        // Used up: the seal says so as a claim would.
        let (status, seal) = fetch_seal(&server, &share.id).await;
        assert_eq!(
            (status, seal["error"]["code"].as_str()),
            (410, Some("share_consumed"))
        );
    }
}

#[tokio::test]
async fn a_password_share_hands_out_its_argon2_parameters_and_needs_the_password_to_claim() {
    let server = Server::start();
    let plaintext = b"the password protects this";
    let (secret, sealed) = seal_for_share("pw.txt", plaintext, Some("correct horse"));
    let share = share_sealed(&server, &sealed).await;
    let (status, seal) = fetch_seal(&server, &share.id).await;
    assert_eq!(status, 200, "{seal}");
    assert_eq!(seal["password"], sealed.encryption["password"], "{seal}");
    let challenge = seal["challenge"].as_str().unwrap();
    // The link without the password derives other keys: the proof is wrong.
    let without_password = Keys::for_share(&secret, None).unwrap();
    let refused = claim_with(
        &share.url,
        Some(&without_password.claim_proof(&share.id, challenge)),
    )
    .await;
    assert_eq!(error_code(refused).await, (401, "wrong_key".into()));
    assert_eq!(downloads_left(&server, &share.id).await, 1);
    let downloaded = claim_and_download(&server, &share, &sealed.keys).await;
    assert_eq!(open_bytes(sealed.keys.clone(), &downloaded), plaintext);
}

#[tokio::test]
async fn missing_wrong_and_stale_proofs_get_401_and_the_share_stays_claimable() {
    let server = Server::start();
    let (_, sealed) = seal_for_share("a.txt", b"guarded", None);
    let share = share_sealed(&server, &sealed).await;
    let (_, other_sealed) = seal_for_share("b.txt", b"other", None);
    let other = share_sealed(&server, &other_sealed).await;
    let (_, seal) = fetch_seal(&server, &share.id).await;
    let challenge = seal["challenge"].as_str().unwrap();
    let (_, other_seal) = fetch_seal(&server, &other.id).await;
    let other_challenge = other_seal["challenge"].as_str().unwrap();
    let stranger = Keys::for_share(&Secret::generate(), None).unwrap();

    let named = format!("{}/encrypted", share.url);
    let cases = [
        (share.url.clone(), None, "key_required"),
        (named.clone(), None, "key_required"),
        (
            share.url.clone(),
            Some(stranger.claim_proof(&share.id, challenge)),
            "wrong_key",
        ),
        (
            share.url.clone(),
            Some(format!("{challenge}.AAAA")),
            "wrong_key",
        ),
        (share.url.clone(), Some("no-dot".to_owned()), "wrong_key"),
        // A challenge the server issued for another share, one it never issued, and one
        // whose expiry was altered: all are stale (a challenge's ten minutes are checked by
        // the domain's unit tests, which move the clock).
        (
            share.url.clone(),
            Some(sealed.keys.claim_proof(&share.id, other_challenge)),
            "challenge_expired",
        ),
        (
            named.clone(),
            Some(sealed.keys.claim_proof(&share.id, "Y2hhbGxlbmdl")),
            "challenge_expired",
        ),
        (
            share.url.clone(),
            Some(
                sealed
                    .keys
                    .claim_proof(&share.id, &format!("B{}", &challenge[1..])),
            ),
            "challenge_expired",
        ),
    ];
    for (link, proof, code) in cases {
        let refused = claim_with(&link, proof.as_deref()).await;
        assert_eq!(error_code(refused).await, (401, code.into()), "{proof:?}");
    }
    let view = owner_view(&server, &share.id).await;
    assert_eq!(view["downloads_left"], 1, "{view}");
    assert_eq!(view["lease_until"], Value::Null, "{view}");
    // The right key claims, through the named link too, and only once.
    let proof = sealed.keys.claim_proof(&share.id, challenge);
    let claimed = claim_with(&named, Some(&proof)).await;
    assert_eq!(claimed.status(), 303);
    let again = claim_with(&share.url, Some(&proof)).await;
    assert_eq!(error_code(again).await, (410, "share_consumed".into()));
    let downloaded = claim_and_download(&server, &other, &other_sealed.keys).await;
    assert_eq!(open_bytes(other_sealed.keys.clone(), &downloaded), b"other");
}

fn run_tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} must be installed (scripts/test does): {error}"))
}

#[tokio::test]
async fn curl_and_wget_get_406_with_how_to_fetch_and_the_share_stays_claimable() {
    let server = Server::start();
    let (_, sealed) = seal_for_share("tools.txt", b"for a browser or once get", None);
    let share = share_sealed(&server, &sealed).await;
    let work = tempfile::tempdir().unwrap();

    let named = format!("{}/tools.txt", share.url);
    for link in [&share.url, &named] {
        let curl = run_tool("curl", &["-sS", "-w", "\n%{http_code}", link]);
        let said = String::from_utf8_lossy(&curl.stdout).into_owned();
        assert!(said.ends_with("\n406"), "{said}");
        assert!(said.contains("once get '"), "{said}");
        assert!(said.contains("browser"), "{said}");
    }
    let saved = work.path().join("saved");
    let wget = run_tool(
        "wget",
        &[
            "-S",
            "--content-on-error",
            "-O",
            saved.to_str().unwrap(),
            &share.url,
        ],
    );
    let stderr = String::from_utf8_lossy(&wget.stderr);
    assert!(!wget.status.success());
    assert!(stderr.contains("406"), "{stderr}");
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(text.contains("once get"), "{text}");
    // A program that asks for JSON gets the error code.
    let json_answer = get_json(&share.url).await;
    assert_eq!(
        error_code(json_answer).await,
        (406, "encrypted_link".into())
    );
    assert_eq!(downloads_left(&server, &share.id).await, 1);

    // Browsers get the landing page with the markers its script needs; HEAD gets headers.
    let page = browser_get(&share.url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-encrypted="true""#), "{html}");
    assert!(
        html.contains(&format!(r#"data-seal-url="/s/{}/seal""#, share.id)),
        "{html}"
    );
    let head = client().head(&share.url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(downloads_left(&server, &share.id).await, 1);

    let downloaded = claim_and_download(&server, &share, &sealed.keys).await;
    assert_eq!(
        open_bytes(sealed.keys.clone(), &downloaded),
        b"for a browser or once get"
    );
}

#[tokio::test]
async fn seal_of_a_plain_or_unknown_share_is_404_and_plain_shares_work_as_before() {
    let server = Server::start();
    let plain = share_bytes(&server, "plain.txt", b"plain", 1).await;
    let (status, answer) = fetch_seal(&server, &plain.id).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_encrypted"))
    );
    let (status, answer) = fetch_seal(&server, "AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("share_not_found"))
    );
    let (_, body) = download(&plain.url).await;
    assert_eq!(body, b"plain");
    let page = browser_get(&plain.url).await.text().await.unwrap();
    assert!(!page.contains("data-encrypted"), "{page}");
}

#[tokio::test]
async fn plaintext_beside_encryption_or_a_bad_encryption_is_refused_and_creates_nothing() {
    let server = Server::start();
    let (_, sealed) = seal_for_share("x.txt", b"x", None);
    let good = sealed.encryption.clone();
    let mut short_key = good.clone();
    short_key["claim_key"] = json!(b64u(&[1; 31]));
    let mut half_request = good.clone();
    half_request["ephemeral_key"] = json!(b64u(&[2; 32]));
    let mut other_scheme = good.clone();
    other_scheme["scheme"] = json!("once-v2");
    let bodies = [
        json!({"filename": "x.txt", "size": 17, "encryption": good}),
        json!({"filename": "", "size": 17, "content_type": "text/plain", "encryption": good}),
        json!({"filename": "", "size": 17, "note": "hi", "encryption": good}),
        json!({"filename": "", "size": 17, "encryption": good,
               "contents": {"entries": 1, "total_size": 1, "listing": [{"path": "x", "size": 1}]}}),
        json!({"filename": "", "size": 17, "encryption": short_key}),
        json!({"filename": "", "size": 17, "encryption": half_request}),
        json!({"filename": "", "size": 17, "encryption": other_scheme}),
    ];
    for body in bodies {
        let response = post_share(&server, &body).await;
        assert_eq!(
            error_code(response).await,
            (400, "invalid_encryption".into()),
            "{body}"
        );
    }
    let (_, listed) = api_get(&server, "/api/v1/shares").await;
    assert_eq!(listed["shares"], json!([]), "{listed}");
}

/// An uploader's session to a request, with its one part sent; the completion's answer.
async fn upload_session(request_url: &str, body: Value, bytes: &[u8]) -> (u16, Value) {
    let started = client()
        .post(format!("{request_url}/uploads"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = started.status().as_u16();
    let ticket: Value = started.json().await.unwrap();
    if status != 201 {
        return (status, ticket);
    }
    let upload = &ticket["upload"];
    let parts = upload["multipart"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{ticket}");
    let part = client()
        .put(parts[0]["url"].as_str().unwrap())
        .header("content-length", bytes.len())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 200);
    let etag = part.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let completed = client()
        .post(upload["complete_url"].as_str().unwrap())
        .json(&json!({"parts": [{"part_number": 1, "etag": etag}]}))
        .send()
        .await
        .unwrap();
    let status = completed.status().as_u16();
    (status, completed.json().await.unwrap_or(Value::Null))
}

/// Seals `plaintext` to the requester whose public key is `fragment`: the keys and the
/// session body.
fn sealed_upload(fragment: &str, name: &str, plaintext: &[u8]) -> (Keys, Vec<u8>, Value) {
    let to = once_seal::seal_to_recipient(fragment).unwrap();
    let ciphertext = seal_bytes(to.keys.clone(), plaintext);
    let body = json!({
        "size": ciphertext.len(),
        "encryption": {
            "scheme": once_seal::SCHEME,
            "claim_key": b64u(&to.keys.claim_key()),
            "sealed_meta": to.keys.seal_metadata(&metadata(name, plaintext)),
            "ephemeral_key": b64u(&to.ephemeral_public),
            "recipient_key": b64u(&to.recipient_public),
        },
    });
    (to.keys, ciphertext, body)
}

#[tokio::test]
async fn an_encrypted_request_refuses_plain_uploads_and_takes_one_sealed_to_the_requester() {
    let server = Server::start();
    let requester = RequestKeyPair::generate();
    // A fixed name would sit on the server in plaintext.
    let named = client()
        .post(server.url("/api/v1/requests"))
        .header("Authorization", server.auth())
        .json(&json!({"encrypted": true, "filename": "contract.pdf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(named).await, (400, "invalid_encryption".into()));
    let request = create_request(&server, json!({"encrypted": true, "max_size": 1 << 20})).await;
    assert_eq!(request["encrypted"], true, "{request}");
    let id = request["id"].as_str().unwrap();
    let url = request["url"].as_str().unwrap();
    let open: Value = get_json(url).await.json().await.unwrap();
    assert_eq!(open["encrypted"], true, "{open}");

    // Plain: a streamed PUT (real curl -T, and a named one), or a session without encryption.
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("plain.txt");
    std::fs::write(&file, b"not sealed").unwrap();
    for target in [url.to_owned(), format!("{url}/plain.txt")] {
        let curl = run_tool(
            "curl",
            &[
                "-sS",
                "-T",
                file.to_str().unwrap(),
                "-w",
                "\n%{http_code}",
                &target,
            ],
        );
        let said = String::from_utf8_lossy(&curl.stdout).into_owned();
        assert!(said.ends_with("\n400"), "{said}");
        assert!(said.contains("encryption_required"), "{said}");
    }
    let (status, answer) = upload_session(url, json!({"size": 10}), b"not sealed").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("encryption_required"))
    );
    // Sealed, but not to a requester's key, or with the name in plaintext.
    let (_, share_sealed) = seal_for_share("x.txt", b"x", None);
    let (status, answer) = upload_session(
        url,
        json!({"size": 17, "encryption": share_sealed.encryption}),
        b"",
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_encryption"))
    );
    let plaintext = b"the signed contract, sealed to the requester";
    let (keys, ciphertext, body) =
        sealed_upload(&requester.public_fragment(), "contract.pdf", plaintext);
    let mut named = body.clone();
    named["filename"] = json!("contract.pdf");
    let (status, answer) = upload_session(url, named, &ciphertext).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_encryption"))
    );
    let view = request_view(&server, id).await;
    assert_eq!(view["state"], "open", "{view}");
    assert_eq!(view["share"], Value::Null, "{view}");

    let (status, answer) = upload_session(url, body, &ciphertext).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["filename"], "encrypted", "{answer}");
    let view = request_view(&server, id).await;
    assert_eq!(view["state"], "fulfilled", "{view}");
    assert_eq!(view["encrypted"], true, "{view}");
    let share = &view["share"];
    assert_eq!(share["encrypted"], true, "{view}");
    assert_eq!(share["filename"], "encrypted", "{view}");

    // The requester finds its keys from the seal's ephemeral key and its private key.
    let share_id = share["id"].as_str().unwrap();
    let (status, seal) = fetch_seal(&server, share_id).await;
    assert_eq!(status, 200, "{seal}");
    assert_eq!(seal["recipient_key"], requester.public_fragment());
    let ephemeral: [u8; 32] = once_seal::from_b64u(seal["ephemeral_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let opened_keys = requester.keys_for_upload(&ephemeral).unwrap();
    assert_eq!(opened_keys.claim_key(), keys.claim_key());
    let link = CreatedShare {
        id: share_id.to_owned(),
        url: share["url"].as_str().unwrap().to_owned(),
        upload_url: String::new(),
        json: share.clone(),
    };
    let downloaded = claim_and_download(&server, &link, &opened_keys).await;
    assert_eq!(open_bytes(opened_keys, &downloaded), plaintext);
}

#[tokio::test]
async fn a_plain_request_refuses_an_encrypted_upload_it_could_not_open() {
    let server = Server::start();
    let request = create_request(&server, json!({"max_size": 1 << 20})).await;
    assert_eq!(request["encrypted"], false, "{request}");
    let url = request["url"].as_str().unwrap();
    let (_, ciphertext, body) =
        sealed_upload(&RequestKeyPair::generate().public_fragment(), "a.txt", b"a");
    let (status, answer) = upload_session(url, body, &ciphertext).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_encryption"))
    );
    let (status, answer) = upload_session(url, json!({"filename": "a.txt", "size": 1}), b"a").await;
    assert_eq!(status, 201, "{answer}");
}

/// Every file below `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for path in files_in(dir) {
        if path.is_dir() {
            found.extend(all_files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn the_data_directory_never_holds_an_encrypted_files_name_or_contents() {
    let server = Server::start();
    const NAME: &str = "merger-plan-of-acme-corp.pdf";
    const MARKER: &str = "MARKER-the-quarterly-numbers-4242";
    let mut plaintext = format!("{MARKER}\n").into_bytes().repeat(3000);
    plaintext.extend_from_slice(MARKER.as_bytes());
    let (_, sealed) = seal_for_share(NAME, &plaintext, Some("pw"));
    let share = share_sealed(&server, &sealed).await;
    // An encrypted upload to a request too, claimed and downloaded like the share.
    let requester = RequestKeyPair::generate();
    let request = create_request(&server, json!({"encrypted": true})).await;
    let (_, ciphertext, body) = sealed_upload(&requester.public_fragment(), NAME, &plaintext);
    let (status, answer) =
        upload_session(request["url"].as_str().unwrap(), body, &ciphertext).await;
    assert_eq!(status, 201, "{answer}");
    let downloaded = claim_and_download(&server, &share, &sealed.keys).await;
    assert!(open_bytes(sealed.keys.clone(), &downloaded) == plaintext);

    let mut files = all_files(&server.data_dir());
    files.extend(server.blob_files());
    assert!(
        files
            .iter()
            .any(|path| path.extension().is_some_and(|e| e == "db")),
        "{files:?}"
    );
    let mut blobs = 0;
    for path in &files {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        blobs += usize::from(bytes.len() >= sealed.ciphertext.len());
        for needle in [NAME, MARKER, "merger-plan"] {
            assert!(
                !holds(&bytes, needle),
                "{} holds {needle:?}",
                path.display()
            );
        }
    }
    assert!(blobs >= 2, "the ciphertexts are stored: {files:?}");
    for needle in [NAME, MARKER] {
        assert!(!server.log().contains(needle), "the log holds {needle:?}");
    }
}
