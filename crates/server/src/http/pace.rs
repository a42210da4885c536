//! Request bodies must keep moving: a body that sends less than `min_rate` bytes per second on
//! average over any window of `window` is cut off, so a client dripping one byte every few
//! seconds cannot hold a connection, a handler and the disk space of its upload forever.

use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

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

/// A request body that fails when it falls below the pace. It forwards the inner body's size
/// hint, so limits that look at the announced length still refuse a large body before reading
/// it (and the client sees the refusal instead of a broken pipe).
struct PacedBody {
    inner: Body,
    pace: BodyPace,
    window_bytes: u64,
    window_ends: Pin<Box<Sleep>>,
    failed: bool,
}

impl PacedBody {
    fn new(inner: Body, pace: BodyPace) -> Self {
        Self {
            inner,
            pace,
            window_bytes: 0,
            window_ends: Box::pin(tokio::time::sleep(pace.window)),
            failed: false,
        }
    }

    fn next_window(&mut self) {
        self.window_bytes = 0;
        let next = self.window_ends.deadline() + self.pace.window;
        self.window_ends.as_mut().reset(next.max(Instant::now()));
    }
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.window_bytes += data.len() as u64;
                    }
                    if this.window_ends.deadline() <= Instant::now() {
                        this.next_window();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(other) => return Poll::Ready(other),
                Poll::Pending => {}
            }
            match this.window_ends.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if this.window_bytes >= this.pace.bytes_per_window() => {
                    this.next_window();
                }
                Poll::Ready(()) => {
                    metrics::counter!("once_slow_bodies_aborted_total").increment(1);
                    this.failed = true;
                    return Poll::Ready(Some(Err(axum::Error::new(too_slow(&this.pace)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that fails when it falls below `pace`.
pub fn paced(body: Body, pace: BodyPace) -> Body {
    Body::new(PacedBody::new(body, pace))
}

/// Middleware: every request body is paced.
pub async fn pace_bodies(
    axum::extract::State(pace): axum::extract::State<BodyPace>,
    request: Request,
    next: Next,
) -> Response {
    // Most requests carry no body: nothing to pace, no timer to set up on the hot path.
    if http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    next.run(Request::from_parts(parts, paced(body, pace)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn received(
        chunks: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        pace: BodyPace,
    ) -> Vec<Result<Bytes, axum::Error>> {
        paced(Body::from_stream(chunks), pace)
            .into_data_stream()
            .collect()
            .await
    }

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
        let received = received(chunks, pace()).await;
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
        let received = received(chunks, pace()).await;
        let last = received.last().expect("something arrived");
        assert!(
            last.as_ref()
                .unwrap_err()
                .to_string()
                .contains("slower than"),
            "{last:?}"
        );
        assert!(received.len() < 100, "the whole drip was accepted");
    }

    #[tokio::test]
    async fn the_announced_length_survives_the_pacing() {
        let body = paced(Body::from("0123456789"), pace());
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(10));
    }

    #[tokio::test]
    async fn a_silent_body_is_cut_off() {
        let chunks = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let received = received(chunks, pace()).await;
        assert_eq!(received.len(), 1);
        assert!(received[0].is_err());
    }
}
