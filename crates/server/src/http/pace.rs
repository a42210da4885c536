//! Request bodies must keep moving: a body that sends less than `min_rate` bytes per second on
//! average over any window of `window` is cut off, so a client dripping one byte every few
//! seconds cannot hold a connection, a handler and the disk space of its upload forever.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// The window over which the rate is judged; a body that sends nothing for this long ends.
    pub window: Duration,
    /// Bytes per second the body must average over each window.
    pub min_rate: u64,
}

impl BodyPace {
    fn bytes_per_window(&self) -> u64 {
        let window_secs = self.window.as_secs_f64();
        (self.min_rate as f64 * window_secs).ceil() as u64
    }
}

/// What the handler reads when the client was too slow.
fn too_slow(pace: &BodyPace) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the request body arrived slower than {} bytes/s over {} s",
            pace.min_rate,
            pace.window.as_secs()
        ),
    )
}

/// Wraps a body stream so it fails when it falls below the pace.
pub fn paced<S, E>(
    body: S,
    pace: BodyPace,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    struct State<S> {
        body: S,
        window_started: Instant,
        window_bytes: u64,
        done: bool,
    }
    let state = State {
        body,
        window_started: Instant::now(),
        window_bytes: 0,
        done: false,
    };
    futures::stream::unfold(state, move |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let deadline = state.window_started + pace.window;
            match tokio::time::timeout_at(deadline, state.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    state.window_bytes += chunk.len() as u64;
                    if Instant::now() >= deadline {
                        state.window_started = Instant::now();
                        state.window_bytes = 0;
                    }
                    return Some((Ok(chunk), state));
                }
                Ok(Some(Err(error))) => {
                    state.done = true;
                    return Some((Err(std::io::Error::other(error)), state));
                }
                Ok(None) => return None,
                Err(_elapsed) if state.window_bytes >= pace.bytes_per_window() => {
                    state.window_started = deadline;
                    state.window_bytes = 0;
                }
                Err(_elapsed) => {
                    metrics::counter!("once_slow_bodies_aborted_total").increment(1);
                    state.done = true;
                    return Some((Err(too_slow(&pace)), state));
                }
            }
        }
    })
}

/// Middleware: every request body is paced.
pub async fn pace_bodies(
    axum::extract::State(pace): axum::extract::State<BodyPace>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = Body::from_stream(paced(body.into_data_stream(), pace));
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 bytes per 1 s window.
    fn pace() -> BodyPace {
        BodyPace {
            window: Duration::from_secs(1),
            min_rate: 1000,
        }
    }

    #[tokio::test]
    async fn a_body_that_keeps_its_pace_arrives_whole() {
        let chunks = futures::stream::iter(0..25)
            .then(|_| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 600]))
            })
            .boxed();
        let received: Vec<_> = paced(chunks, pace()).collect().await;
        assert_eq!(received.len(), 25);
        assert!(received.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_dripping_body_is_cut_off() {
        let chunks = futures::stream::iter(0..100)
            .then(|_| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
            })
            .boxed();
        let received: Vec<_> = paced(chunks, pace()).collect().await;
        let last = received.last().expect("something arrived");
        assert_eq!(
            last.as_ref().unwrap_err().kind(),
            std::io::ErrorKind::TimedOut
        );
        assert!(received.len() < 100, "the whole drip was accepted");
    }

    #[tokio::test]
    async fn a_silent_body_is_cut_off() {
        let chunks = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let received: Vec<_> = paced(chunks, pace()).collect().await;
        assert_eq!(received.len(), 1);
        assert!(received[0].is_err());
    }
}
