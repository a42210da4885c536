//! HTTPS from certificate files: served, and swapped while running without a restart.

use std::time::Duration;

use crate::harness::*;

/// A certificate authority of its own and a leaf for 127.0.0.1 signed by it: (CA PEM, leaf
/// chain PEM, leaf key PEM).
pub(crate) fn authority_and_leaf(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// A client that trusts only `ca`.
fn trusting(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_is_served_from_files_and_a_new_certificate_is_picked_up_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_ca, first_cert, first_key) = authority_and_leaf("first");
    std::fs::write(&cert_path, &first_cert).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    let server = Server::start_with(&[
        ("ONCE_TLS_CERT", cert_path.to_str().unwrap()),
        ("ONCE_TLS_KEY", key_path.to_str().unwrap()),
    ]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let first = trusting(&first_ca);
    let answer = first.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // Plain HTTP on the TLS port gets no answer worth having.
    let plain = client()
        .get(server.url("/healthz").replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // A renewal: new files, written in place of the old ones, noticed without a restart.
    let (second_ca, second_cert, second_key) = authority_and_leaf("second");
    std::fs::write(&key_path, &second_key).unwrap();
    std::fs::write(&cert_path, &second_cert).unwrap();
    let second = trusting(&second_ca);
    let mut served_new = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Each attempt on a new connection: a client keeps none between builds of its pool.
        let fresh = trusting(&second_ca);
        if fresh.get(server.url("/healthz")).send().await.is_ok() {
            served_new = true;
            break;
        }
    }
    assert!(served_new, "the new certificate was not served within 20 s");
    assert_eq!(
        second
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // And the old one is no longer presented.
    assert!(
        trusting(&first_ca)
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sighup_reloads_and_a_broken_renewal_keeps_the_last_good_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca, cert, key) = authority_and_leaf("good");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let server = Server::start_with(&[
        ("ONCE_TLS_CERT", cert_path.to_str().unwrap()),
        ("ONCE_TLS_KEY", key_path.to_str().unwrap()),
    ]);
    // A key that does not belong to the certificate: refused, the old pair stays in service.
    let (_, _, other_key) = authority_and_leaf("other");
    std::fs::write(&key_path, &other_key).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let answer = trusting(&ca)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        server.log().contains("TLS certificate not reloaded"),
        "{}",
        server.log()
    );
}

#[test]
fn a_certificate_without_its_key_is_refused_at_start() {
    let output = std::process::Command::new(BIN)
        .args([
            "serve",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("tls_cert and tls_key go together"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
