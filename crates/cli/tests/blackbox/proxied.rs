//! Behind a reverse proxy: `X-Forwarded-*` decide the links, the cookie's `Secure` flag and the
//! logged client address only when they come from `trusted_proxies`; and the deploy guide's
//! nginx recipe, run with Debian's nginx in front of the real server.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;
use serde_json::json;

const FORGED: [(&str, &str); 3] = [
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "once.example.com"),
];

/// `POST /api/v1/shares` with extra headers; returns the share's link.
async fn share_link_with(server: &Server, headers: &[(&str, &str)]) -> String {
    let mut request = client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", server.auth())
        .json(&json!({"filename": "a.txt", "size": 1}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201);
    let json: serde_json::Value = response.json().await.unwrap();
    json["url"].as_str().unwrap().to_owned()
}

/// `POST /session` (a browser signing in with the key) with extra headers.
async fn sign_in(server: &Server, origin: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client()
        .post(server.url("/session"))
        .header("Origin", origin)
        .form(&[("key", server.token.as_str())]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Signs in; returns the `Set-Cookie` header.
async fn sign_in_cookie(server: &Server, origin: &str, headers: &[(&str, &str)]) -> String {
    let response = sign_in(server, origin, headers).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A share whose claim (logged with the client's address) is made with `headers`.
async fn claim_with(server: &Server, headers: &[(&str, &str)]) {
    let share = share_bytes(server, "a.txt", b"hello", 1).await;
    let mut request = client().get(&share.url).header("Accept", "*/*");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    assert_eq!(request.send().await.unwrap().status(), 303);
}

#[tokio::test]
async fn forwarding_headers_from_a_client_that_is_not_a_trusted_proxy_change_nothing() {
    // The default (no trusted proxies), and a list that does not hold the loopback address.
    for trusted in [None, Some("10.0.0.0/8,192.0.2.1")] {
        let env: Vec<(&str, &str)> = trusted
            .map(|list| ("ONCE_TRUSTED_PROXIES", list))
            .into_iter()
            .collect();
        let server = Server::start_with(&env);
        let link = share_link_with(&server, &FORGED).await;
        assert!(
            link.starts_with(&format!("{}/s/", server.base)),
            "{trusted:?}: {link}"
        );
        let cookie = sign_in_cookie(&server, &server.base, &FORGED).await;
        assert!(!cookie.contains("Secure"), "{trusted:?}: {cookie}");
        // A browser whose Origin is the forged host is not one of ours.
        let forged_origin = sign_in(&server, "https://once.example.com", &FORGED).await;
        assert_eq!(forged_origin.status(), 403, "{trusted:?}");
        claim_with(&server, &FORGED).await;
        let log = server.log();
        assert!(log.contains("client=127.0.0.1"), "{log}");
        assert!(!log.contains("203.0.113.7"), "{log}");
    }
}

#[tokio::test]
async fn a_trusted_proxy_decides_links_cookies_and_the_logged_client() {
    let server = Server::start_with(&[("ONCE_TRUSTED_PROXIES", "127.0.0.1")]);
    let link = share_link_with(&server, &FORGED).await;
    assert!(link.starts_with("https://once.example.com/s/"), "{link}");
    let cookie = sign_in_cookie(&server, "https://once.example.com", &FORGED).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    // The same proxy without the headers (a request it did not forward): the connection's own
    // scheme and host.
    let direct = share_link_with(&server, &[]).await;
    assert!(
        direct.starts_with(&format!("{}/s/", server.base)),
        "{direct}"
    );
    assert!(
        !sign_in_cookie(&server, &server.base, &[])
            .await
            .contains("Secure")
    );
    // A client that wrote its own X-Forwarded-For in front of the proxy's entry is logged by
    // the entry the proxy added, not by what it wrote.
    claim_with(
        &server,
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
    )
    .await;
    let log = server.log();
    assert!(log.contains("client=203.0.113.7"), "{log}");
    assert!(!log.contains("6.6.6.6"), "{log}");
    // An odd host never makes it into a link.
    let odd = share_link_with(&server, &[("X-Forwarded-Host", "evil.example/@x")]).await;
    assert!(odd.starts_with(&format!("{}/s/", server.base)), "{odd}");
}

/// Debian's nginx in the foreground, with a configuration of its own in a temporary
/// directory: listening on `127.0.0.2`, connecting to `once` from `127.0.0.3`, so the
/// client, the proxy and the server each have their own loopback address.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    base: String,
}

/// The `location` block of `docs/deploy.md`'s nginx recipe, word for word.
const RECIPE_LOCATION: &str = "
    location / {
        proxy_pass http://UPSTREAM;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        # Stream bodies both ways: no disk buffering of uploads or downloads.
        proxy_request_buffering off;
        proxy_buffering off;
        client_max_body_size 0;
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }
";

impl Nginx {
    fn start(upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port("127.0.0.2");
        let location = RECIPE_LOCATION
            .replace("UPSTREAM", upstream)
            // Host without the port would point links at port 80; the test listens elsewhere.
            .replace(
                "proxy_set_header Host $host;",
                "proxy_set_header Host $http_host;",
            );
        let prefix = dir.path().display();
        let config = format!(
            "daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.2:{port};
        proxy_bind 127.0.0.3;
        {location}
    }}
}}
"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("early-error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start nginx ({error}): the reverse-proxy test needs Debian's nginx \
                     (apt-get install nginx; scripts/test installs it)"
                )
            });
        let nginx = Self {
            child,
            dir,
            base: format!("http://127.0.0.2:{port}"),
        };
        nginx.wait_until_up(port);
        nginx
    }

    fn wait_until_up(&self, port: u16) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.2", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not come up: {}", self.log());
    }

    fn log(&self) -> String {
        ["early-error.log", "error.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .unwrap()
        .local_addr()
        .map(|address: SocketAddr| address.port())
        .unwrap()
}

fn curl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("curl")
        .args(["--silent", "--show-error"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run curl")
}

#[tokio::test]
async fn the_nginx_recipe_serves_sends_uploads_and_one_time_downloads() {
    let server = Server::start_with(&[
        ("ONCE_TRUSTED_PROXIES", "127.0.0.3"),
        // Several parts, each its own request through the proxy.
        ("ONCE_UPLOAD_PART_SIZE", "5 MiB"),
    ]);
    let nginx = Nginx::start(&server.addr);
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(12 * 1024 * 1024 + 5, 3);
    std::fs::write(work.path().join("big.bin"), &bytes).unwrap();

    // The CLI knows only the proxy's address; the link it prints is the proxy's too.
    let output = client_command(
        &server,
        work.path(),
        &["send", "big.bin", "-q", "--no-encrypt"],
    )
    .env("ONCE_SERVER", &nginx.base)
    .output()
    .unwrap();
    let link = stdout(&output).trim().to_owned();
    assert!(
        link.starts_with(&format!("{}/s/", nginx.base)),
        "{link}; nginx: {}",
        nginx.log()
    );

    // curl through the proxy, with a forged X-Forwarded-For of its own.
    let first = curl(
        &[
            "--fail",
            "--location",
            "-H",
            "X-Forwarded-For: 6.6.6.6",
            "-o",
            "got.bin",
            &link,
        ],
        work.path(),
    );
    assert!(
        first.status.success(),
        "{}; nginx: {}",
        String::from_utf8_lossy(&first.stderr),
        nginx.log()
    );
    assert!(std::fs::read(work.path().join("got.bin")).unwrap() == bytes);
    let second = curl(
        &["-o", "/dev/null", "-w", "%{http_code}", &link],
        work.path(),
    );
    assert_eq!(String::from_utf8_lossy(&second.stdout), "410");

    // A one-time upload link made through the proxy takes a curl -T through the proxy.
    let request = client()
        .post(format!("{}/api/v1/requests", nginx.base))
        .header("Authorization", server.auth())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(request.status(), 201);
    let request: serde_json::Value = request.json().await.unwrap();
    let upload_url = request["url"].as_str().unwrap();
    assert!(
        upload_url.starts_with(&format!("{}/r/", nginx.base)),
        "{upload_url}"
    );
    std::fs::write(work.path().join("reply.txt"), b"the answer").unwrap();
    let upload = curl(&["--fail", "-T", "reply.txt", upload_url], work.path());
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stderr)
    );

    // The server logged the client, not the proxy and not what the client made up.
    let log = server.log();
    assert!(log.contains("client=127.0.0.1"), "{log}");
    assert!(!log.contains("client=127.0.0.3"), "{log}");
    assert!(!log.contains("6.6.6.6"), "{log}");
}
