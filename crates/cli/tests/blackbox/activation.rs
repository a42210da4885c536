//! Nothing running while idle: `once serve` on a socket passed in by systemd (socket
//! activation), exiting once idle, started again by the next connection with no request lost
//! and no state lost.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `systemd-socket-activate` listening on `port`, to start `once serve` on the first
/// connection with the socket passed in.
fn socket_activate(port: u16, data: &std::path::Path, token: &str) -> Child {
    Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("--setenv=ONCE_BOOTSTRAP_KEY={token}"))
        .arg("--setenv=ONCE_EXIT_WHEN_IDLE=2s")
        .arg("--setenv=ONCE_REAP_INTERVAL=0s")
        .arg(BIN)
        .args(["serve", "--data-dir"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package) must be installed")
}

async fn wait_answering(url: &str) {
    for _ in 0..100 {
        if client().get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

#[tokio::test]
async fn under_socket_activation_it_exits_when_idle_and_the_next_start_keeps_every_share() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let token = once_domain::ApiToken::generate().reveal();
    let base = format!("http://127.0.0.1:{port}");
    let mut activator = socket_activate(port, data.path(), &token);
    wait_answering(&format!("{base}/healthz")).await;

    // A share made and claimed, another made and not uploaded yet.
    let auth = format!("Bearer {token}");
    let create = |name: &'static str| {
        let (base, auth) = (base.clone(), auth.clone());
        async move {
            let answer = client()
                .post(format!("{base}/api/v1/shares"))
                .header("Authorization", auth)
                .json(&serde_json::json!({"filename": name, "size": 5, "upload_expires_in": 600}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 201);
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    let claimed = create("claimed.txt").await;
    let put = client()
        .put(claimed["upload"]["url"].as_str().unwrap())
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let link = claimed["url"].as_str().unwrap().to_owned();
    assert_eq!(claim(&link).await.status(), 303);
    let waiting = create("later.txt").await;

    // Nothing runs for 2 s: the server exits, cleanly.
    let status = wait_exit(&mut activator, Duration::from_secs(15))
        .expect("once serve did not exit when idle");
    assert!(status.success(), "{status:?}");

    // The next connection starts it again: the claim still holds, the ticket still works.
    let mut activator = socket_activate(port, data.path(), &token);
    wait_answering(&format!("{base}/healthz")).await;
    assert_eq!(error_code(claim(&link).await).await.0, 410);
    let put = client()
        .put(waiting["upload"]["url"].as_str().unwrap())
        .body("later")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let (_, bytes) = download(waiting["url"].as_str().unwrap()).await;
    assert_eq!(bytes, b"later");
    let _ = activator.kill();
    let _ = activator.wait();
}

/// What systemd does with a socket unit: it keeps the listening socket, starts the service
/// when a connection waits on it, and starts it again after it exits. Connections that arrive
/// while no process runs wait in the socket's queue.
struct Supervisor {
    port: u16,
    starts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(data: std::path::PathBuf, token: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let starts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (starts_seen, stop_seen) = (starts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let fd = listener.as_raw_fd();
            while !stop_seen.load(Ordering::SeqCst) {
                // Wait for a connection to be queued, as systemd does before it starts us.
                let mut poll = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                if unsafe { libc::poll(&mut poll, 1, 100) } <= 0 {
                    continue;
                }
                let mut command = Command::new("sh");
                command
                    .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
                    .arg(BIN)
                    .args(["serve", "--data-dir"])
                    .arg(&data)
                    .env("LISTEN_FDS", "1")
                    .env("ONCE_BOOTSTRAP_KEY", &token)
                    .env("ONCE_EXIT_WHEN_IDLE", "1s")
                    .env("ONCE_REAP_INTERVAL", "0s")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                // SAFETY: only async-signal-safe calls between fork and exec.
                unsafe {
                    command.pre_exec(move || {
                        // The socket becomes fd 3 (SD_LISTEN_FDS_START), open across exec.
                        if fd == 3 {
                            let flags = libc::fcntl(3, libc::F_GETFD);
                            libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                        } else if libc::dup2(fd, 3) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let mut child = command.spawn().expect("start once serve");
                starts_seen.fetch_add(1, Ordering::SeqCst);
                loop {
                    if stop_seen.load(Ordering::SeqCst) {
                        let _ = child.kill();
                    }
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Supervisor {
            port,
            starts,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test]
async fn requests_that_arrive_while_it_is_stopped_or_stopping_are_all_answered() {
    let data = tempfile::tempdir().unwrap();
    let token = once_domain::ApiToken::generate().reveal();
    let supervisor = Supervisor::start(data.path().to_owned(), token.clone());
    let base = format!("http://127.0.0.1:{}", supervisor.port);
    // Requests spread over several idle exits, some right at the moment the server decides
    // to leave: every one must be answered.
    let mut answered = 0;
    for pause_ms in [0, 1100, 1000, 1050, 1500, 990, 1200, 2500, 0] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let answer = reqwest::Client::new()
            .get(format!("{base}/api/v1/shares"))
            .header("Authorization", format!("Bearer {token}"))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("a request was lost");
        assert_eq!(answer.status(), 200);
        answered += 1;
    }
    assert_eq!(answered, 9);
    let starts = supervisor.starts.load(Ordering::SeqCst);
    assert!(
        starts >= 3,
        "the server was started only {starts} times: it never went idle"
    );
}
