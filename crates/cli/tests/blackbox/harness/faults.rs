//! Network faults: a client that goes away mid-upload or mid-download, and a proxy in front
//! of the bucket that cuts a connection or hides a refusal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends a PUT with a declared Content-Length but only `send` bytes of body, then drops the
/// connection, as a client that crashes or loses its network mid-upload.
pub fn cut_off_upload(url: &str, declared: usize, send: &[u8]) {
    let url = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let mut stream = TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    // The receiver may refuse and close before all of `send` is written (a bucket checking
    // the signed headers first does): the upload is cut off either way, which is the point.
    let sent = stream.write_all(send).and_then(|()| stream.flush());
    if let Err(error) = sent {
        assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "sending the partial upload failed: {error}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);
}

/// Starts a raw GET and reads the headers plus at least `body_bytes` of the body (everything
/// read so far is returned), then returns the still-open stream (drop it to cut the download
/// off).
pub fn partial_get(url: &str, body_bytes: usize) -> (TcpStream, Vec<u8>) {
    let parsed = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let path = format!("{}?{}", parsed.path(), parsed.query().unwrap_or_default());
    let mut stream = TcpStream::connect(&host).unwrap();
    // A stalled transfer fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "connection closed early");
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let mut body = received[end + 4..].to_vec();
            while body.len() < body_bytes {
                let n = stream.read(&mut buffer).unwrap();
                assert!(n > 0, "connection closed early");
                body.extend_from_slice(&buffer[..n]);
            }
            return (stream, body);
        }
    }
}

/// A TCP proxy in front of the bucket that injects one kind of fault; everything else passes
/// through untouched (presigned URLs stay valid: the Host header is forwarded as sent).
pub struct FaultyProxy {
    pub endpoint: String,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FaultyProxy {
    /// Cuts, once, the connection carrying the first request whose bytes contain `needle`,
    /// after passing `cut_after` more bytes of it: a real network failure mid-upload.
    pub fn cutting(upstream: &str, needle: &'static [u8], cut_after: usize) -> Self {
        Self::start(upstream, Some((needle, cut_after)), false)
    }

    /// Turns every `412 Precondition Failed` into `200 OK`: a store that ignores
    /// `If-None-Match` and lets a second upload overwrite the first (as Garage does).
    pub fn ignoring_conditional_writes(upstream: &str) -> Self {
        Self::start(upstream, None, true)
    }

    fn start(upstream: &str, cut: Option<(&'static [u8], usize)>, hide_412: bool) -> Self {
        let (needle, cut_after) = cut.unwrap_or((b"", 0));
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let counter = cuts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut client_back, mut server_back) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_back.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut chunk = buffer[..n].to_vec();
                        const REFUSED: &[u8] = b"HTTP/1.1 412 Precondition Failed\r\n";
                        if hide_412 && chunk.starts_with(REFUSED) {
                            chunk.splice(..REFUSED.len(), b"HTTP/1.1 200 OK\r\n".iter().copied());
                        }
                        if client_back.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                    let _ = client_back.shutdown(std::net::Shutdown::Both);
                });
                let (armed, counter) = (armed.clone(), counter.clone());
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    // The tail of what came before, so a needle split across reads is found.
                    let mut window: Vec<u8> = Vec::new();
                    let mut left_before_cut: Option<usize> = None;
                    loop {
                        let n = match client.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut chunk = &buffer[..n];
                        if left_before_cut.is_none() && !needle.is_empty() {
                            window.extend_from_slice(chunk);
                            if window.windows(needle.len()).any(|w| w == needle)
                                && armed.swap(false, Ordering::SeqCst)
                            {
                                left_before_cut = Some(cut_after);
                            }
                            let keep = window.len().saturating_sub(needle.len());
                            window.drain(..keep);
                        }
                        if let Some(left) = left_before_cut.as_mut() {
                            if chunk.len() >= *left {
                                chunk = &chunk[..*left];
                                let _ = server.write_all(chunk);
                                counter.fetch_add(1, Ordering::SeqCst);
                                let _ = client.shutdown(std::net::Shutdown::Both);
                                let _ = server.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            *left -= chunk.len();
                        }
                        if server.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { endpoint, cuts }
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }
}
