//! HTTPS with a certificate obtained over ACME from Debian's `pebble` test CA, which really
//! validates the HTTP-01 challenge on `once`'s plain HTTP port; the plain port redirects to
//! HTTPS; the cached certificate is served again without the CA, and one close to expiry is
//! renewed in the background without a restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;
use crate::tls::authority_and_leaf;

/// A `pebble` process with its own listener certificate (Debian ships none), validating
/// HTTP-01 challenges on `http_port`.
struct Pebble {
    child: Child,
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
    /// The CA of pebble's own HTTPS listener (not of the certificates it issues).
    listener_ca: PathBuf,
}

impl Pebble {
    /// Starts pebble; `validity` sets how long its certificates are valid.
    async fn start(http_port: u16, validity: Option<Duration>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = authority_and_leaf("pebble listener");
        let listener_ca = dir.path().join("listener-ca.pem");
        std::fs::write(&listener_ca, ca).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let (acme_port, management_port) = (free_port(), free_port());
        let mut settings = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = validity {
            settings["certificateValidityPeriod"] = validity.as_secs().into();
        }
        let config = dir.path().join("pebble-config.json");
        std::fs::write(
            &config,
            serde_json::json!({ "pebble": settings }).to_string(),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        // No random sleeps before validating; validation itself is real (no ALWAYS_VALID).
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start pebble ({error}): the ACME tests need Debian's pebble package \
                     (apt-get install pebble; scripts/test installs it)"
                )
            });
        let pebble = Self {
            child,
            dir,
            acme_port,
            management_port,
            listener_ca,
        };
        pebble.wait_until_up().await;
        pebble
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    fn management_client(&self) -> reqwest::Client {
        let ca = std::fs::read(&self.listener_ca).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    async fn wait_until_up(&self) {
        let client = self.management_client();
        for _ in 0..100 {
            if let Ok(answer) = client.get(self.directory()).send().await
                && answer.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pebble did not come up: {}", self.log());
    }

    /// The root pebble issues under (made fresh at each start), from its management port.
    async fn issuing_root(&self) -> String {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let answer = self.management_client().get(url).send().await.unwrap();
        assert!(answer.status().is_success());
        answer.text().await.unwrap()
    }
}

impl Pebble {
    /// Stops the CA; its files stay (once is still configured to trust its listener CA).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `once serve` getting its certificate for `localhost` from `pebble`, with plain HTTP on
/// `http_port`.
fn start_once(pebble: &Pebble, http_port: u16) -> Server {
    let http_bind = format!("127.0.0.1:{http_port}");
    let directory = pebble.directory();
    let ca = pebble.listener_ca.to_str().unwrap().to_owned();
    Server::start_with(&[
        ("ONCE_ACME_DOMAIN", "localhost"),
        ("ONCE_ACME_EMAIL", "ops@example.com"),
        ("ONCE_ACME_DIRECTORY", &directory),
        ("ONCE_ACME_CA_CERT", &ca),
        ("ONCE_HTTP_BIND", &http_bind),
    ])
}

fn https_port(server: &Server) -> u16 {
    server.addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A client that trusts only `root` and finds `localhost` on loopback IPv4, where `once`
/// listens (on the port in the URL); `follow` says whether it follows redirects.
fn trusting(root: &str, follow: bool) -> reqwest::Client {
    let policy = if follow {
        reqwest::redirect::Policy::limited(3)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], 0).into())
        .redirect(policy)
        .tls_info(true)
        .build()
        .unwrap()
}

/// The leaf certificate `once` presents to a new connection (DER), after checking that it
/// chains to `root` and names `localhost`.
async fn served_certificate(root: &str, server: &Server) -> Vec<u8> {
    let client = trusting(root, false);
    let url = format!("https://localhost:{}/healthz", https_port(server));
    let answer = client.get(url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let info = answer.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_certificate_from_pebble_is_served_plain_http_redirects_and_the_cache_outlives_the_ca() {
    let http_port = free_port();
    let mut pebble = Pebble::start(http_port, None).await;
    let mut server = start_once(&pebble, http_port);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    // pebble fetched the token from once's plain HTTP port: the challenge path answers.
    let challenge_url = format!("http://localhost:{http_port}/.well-known/acme-challenge/");
    assert!(pebble.log().contains(&challenge_url), "{}", pebble.log());

    let root = pebble.issuing_root().await;
    let first = served_certificate(&root, &server).await;
    let answer = trusting(&root, false)
        .get(format!("https://localhost:{}/healthz", https_port(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["strict-transport-security"],
        "max-age=31536000"
    );

    // Plain HTTP: everything but a challenge goes to the same path over HTTPS, with 308 so a
    // POST stays a POST.
    let plain = trusting(&root, false);
    let https_base = format!("https://localhost:{}", https_port(&server));
    for (method, path) in [
        (reqwest::Method::GET, "/s/abc?x=1"),
        (reqwest::Method::POST, "/api/v1/shares"),
    ] {
        let answer = plain
            .request(method, format!("http://localhost:{http_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 308);
        assert_eq!(answer.headers()["location"], format!("{https_base}{path}"));
    }
    let followed = trusting(&root, true)
        .get(format!("http://localhost:{http_port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.url().as_str(), format!("{https_base}/healthz"));
    assert_eq!(followed.text().await.unwrap(), "ok\n");
    // A token no order holds any more is not found, not redirected.
    let stale = plain
        .get(format!("{challenge_url}no-such-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);

    // The account and the certificate, keys included, are cached for this user only.
    let cache = server.data_dir().join("acme");
    #[cfg(unix)]
    {
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&cache.join("account.json")), 0o600);
        assert_eq!(mode(&cache.join("certificate.json")), 0o600);
    }

    // With the CA gone, a restart serves the cached certificate (valid for years here).
    pebble.stop();
    server.restart();
    assert_eq!(served_certificate(&root, &server).await, first);
    assert!(
        server.log().contains("serving the cached ACME certificate"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_cached_certificate_close_to_expiry_is_served_and_renewed_in_the_background() {
    let http_port = free_port();
    // Certificates valid for 20 days: fewer than the 30 at which once renews.
    let pebble = Pebble::start(http_port, Some(Duration::from_secs(20 * 86_400))).await;
    let mut server = start_once(&pebble, http_port);
    let root = pebble.issuing_root().await;
    let obtained = served_certificate(&root, &server).await;

    // At the next start the cached one is served at once and renewed behind it.
    server.restart();
    let mut renewed = None;
    for _ in 0..60 {
        let served = served_certificate(&root, &server).await;
        if served != obtained {
            renewed = Some(served);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        renewed.is_some(),
        "no renewed certificate within 30 s: {}",
        server.log()
    );
    assert!(
        server.log().contains("renewed ACME certificate in service"),
        "{}",
        server.log()
    );
    // One renewal, not a loop: the renewed certificate is also short, and stays in service.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(served_certificate(&root, &server).await, renewed.unwrap());
    assert_eq!(
        server
            .log()
            .matches("renewed ACME certificate in service")
            .count(),
        1
    );
}

#[test]
fn without_a_cached_certificate_an_unreachable_ca_stops_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--acme-domain",
            "localhost",
            "--acme-directory",
            &format!("https://127.0.0.1:{}/dir", free_port()),
            "--http-bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot obtain a certificate over ACME"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).is_empty());
}
