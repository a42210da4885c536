//! Hostile clients: floods of idle and slow connections, dripped headers and bodies, oversized
//! headers, cleartext HTTP/2 and made-up keys. The service must keep answering everyone else,
//! cut the slow ones off, and spend little on clients that never authenticate.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Short limits so the tests see them act within seconds.
const QUICK_LIMITS: &[(&str, &str)] = &[
    ("ONCE_HEADER_READ_TIMEOUT", "2s"),
    ("ONCE_KEEPALIVE_TIMEOUT", "2s"),
    ("ONCE_BODY_IDLE_TIMEOUT", "2s"),
    ("ONCE_MAX_CONNECTIONS_PER_ADDRESS", "64"),
];

/// A connection to the server from `source` (any 127.0.0.0/8 address works on loopback).
async fn connect_from(server: &Server, source: [u8; 4]) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let target: SocketAddr = server.addr.parse().expect("server address");
    socket.connect(target).await
}

/// Sends one byte every 250 ms for up to `during`, until the server stops taking them.
async fn drip(stream: &mut TcpStream, byte: u8, during: Duration) {
    let dripping = async {
        loop {
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let _ = tokio::time::timeout(during, dripping).await;
}

/// True when the server closed (or reset) the connection within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An error response before the close is fine; keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

/// A healthz request and a whole share cycle from 127.0.0.1, each step within a second.
async fn normal_traffic_is_answered(server: &Server) {
    let step = Duration::from_secs(1);
    let health = tokio::time::timeout(step, client().get(server.url("/healthz")).send())
        .await
        .expect("/healthz answered within a second")
        .expect("/healthz");
    assert_eq!(health.status(), 200);
    let bytes = payload(1024, 7);
    let share = tokio::time::timeout(
        step,
        create_share(
            server,
            serde_json::json!({"filename": "a.bin", "size": bytes.len()}),
        ),
    )
    .await
    .expect("share created within a second");
    tokio::time::timeout(step, send_to_ticket(server, &share, bytes.clone()))
        .await
        .expect("upload answered within a second")
        .expect("upload accepted");
    let (_, downloaded) = tokio::time::timeout(step, download(&share.url))
        .await
        .expect("claim and download within a second");
    assert_eq!(downloaded, bytes);
}

#[tokio::test]
async fn a_flood_of_idle_and_slow_connections_from_one_address_leaves_others_served() {
    let server = Server::start_with_fd_limit(QUICK_LIMITS, 1024);
    let mut held = Vec::new();
    for index in 0..1100 {
        let Ok(mut stream) = connect_from(&server, [127, 0, 0, 2]).await else {
            continue;
        };
        // A third idle, a third dripping headers, a third dripping an upload body.
        let opening: &[u8] = match index % 3 {
            0 => b"",
            1 => b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
            _ => b"PUT /r/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nxx",
        };
        let _ = stream.write_all(opening).await;
        held.push(stream);
    }
    normal_traffic_is_answered(&server).await;

    // The flood is cut off by the timeouts: every connection is closed by the server.
    let mut still_open = 0;
    for stream in &mut held {
        if !closed_by_server(stream, Duration::from_secs(15)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "connections the server never closed");
    normal_traffic_is_answered(&server).await;
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains("once_connections_refused_total"),
        "connections over the per-address cap are counted: {metrics}"
    );
}

#[tokio::test]
async fn a_dripped_header_is_cut_off_after_the_header_timeout() {
    let server = Server::start_with(QUICK_LIMITS);
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    drip(&mut stream, b'X', Duration::from_secs(10)).await;
    assert!(
        closed_by_server(&mut stream, Duration::from_secs(5)).await,
        "a header dripped for 10 s was still being read"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = Server::start_with(QUICK_LIMITS);
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent: the server must not keep the connection forever.
    assert!(closed_by_server(&mut stream, Duration::from_secs(10)).await);
}

#[tokio::test]
async fn a_dripped_upload_is_cut_off_and_leaves_no_temporary_file() {
    let server = Server::start_with(QUICK_LIMITS);
    let request = create_request(&server, serde_json::json!({})).await;
    let path = request["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_owned();
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    stream
        .write_all(
            format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    drip(&mut stream, b'y', Duration::from_secs(15)).await;
    assert!(closed_by_server(&mut stream, Duration::from_secs(5)).await);
    // The refused upload left nothing behind and did not use the request up.
    for _ in 0..50 {
        if server.temp_files().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.temp_files().is_empty(), "{:?}", server.temp_files());
    let upload = client()
        .put(server.url(&path))
        .body("the real file")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test]
async fn unauthenticated_stalled_connections_add_little_memory() {
    let server = Server::start();
    normal_traffic_is_answered(&server).await;
    let before = rss_bytes(server.pid());
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let mut stream = connect_from(&server, [127, 0, 0, 3]).await.unwrap();
        connecting.spawn(async move {
            // A made-up key id and a 1 MiB body of which all but one byte is sent, then
            // nothing: a server that buffers before it checks the key holds ~1 MiB for each.
            let head = "POST /api/v1/shares HTTP/1.1\r\nHost: x\r\nX-Once-Key: 0123456789abcdef\r\n\
                        X-Once-Timestamp: 1800000000\r\nX-Once-Signature: AAAA\r\n\
                        Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let body = vec![b' '; 1024 * 1024 - 1];
            let _ = tokio::time::timeout(Duration::from_secs(3), stream.write_all(&body)).await;
            stream
        });
    }
    let held_streams = connecting.join_all().await;
    let mut held = held_streams;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(server.pid());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 32 * 1024 * 1024,
        "300 stalled unauthenticated connections grew RSS by {} MiB",
        grown / (1024 * 1024)
    );
    // They were refused, not buffered: each got a 401 and was closed (a close with unread
    // data may reset the connection before the 401 is read, so a reset counts too).
    for stream in &mut held {
        let mut answer = Vec::new();
        let outcome =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answered_401 = String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 401");
        match outcome {
            // A close with no answer at all is a reset seen late; any answer must be the 401.
            Ok(Ok(_)) => assert!(
                answer.is_empty() || answered_401,
                "{}",
                String::from_utf8_lossy(&answer)
            ),
            Ok(Err(_reset)) => {}
            Err(_) => panic!("a stalled unauthenticated connection was kept open"),
        }
    }
}

#[tokio::test]
async fn oversized_or_too_many_headers_get_431() {
    let server = Server::start();
    let big = "a".repeat(256 * 1024);
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    let _ = stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let many: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    let _ = stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn cleartext_http2_is_not_spoken() {
    let server = Server::start();
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    // The HTTP/2 connection preface, then an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    // An HTTP/2 server answers with its own SETTINGS frame (type 4 at byte 3); we must not.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "answered {answer:?}"
    );
}
