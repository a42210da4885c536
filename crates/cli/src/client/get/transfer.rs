//! The transfer engine: streams a blob into a sink, resuming with HTTP Range after a broken
//! connection or a stall, and tells retryable failures from fatal ones.

use std::io::SeekFrom;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use indicatif::ProgressBar;
use once_seal::{Keys, SealError, StreamOpener};
use reqwest::header::{ACCEPT, CONTENT_RANGE, RANGE};
use reqwest::{Response, StatusCode};
use sha2::Digest;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use url::Url;

use super::super::byte_progress;
use super::super::config::{Client, error_from_response};

/// Consecutive failed attempts (without any byte arriving in between) before giving up.
const RETRIES: u32 = 5;
const BACKOFF: Duration = Duration::from_secs(1);
/// No byte for this long counts as a broken connection, so a stalled transfer is resumed
/// instead of hanging forever (the client has no overall timeout).
const STALL: Duration = Duration::from_secs(60);

/// Where the bytes go. Standard output is written with blocking writes (tokio's `io-std` is not
/// enabled); it only holds up this one download.
pub(super) enum Sink {
    File(BufWriter<tokio::fs::File>),
    /// Standard output cannot be read back, so what goes out is hashed on the way.
    Stdout(std::io::BufWriter<std::io::Stdout>, sha2::Sha256),
    /// An end-to-end encrypted share: the ciphertext is opened record by record and only
    /// authenticated plaintext reaches the inner sink.
    Opening(Box<Opening>),
}

pub(super) struct Opening {
    inner: Sink,
    keys: Keys,
    sealed_len: u64,
    opener: Option<StreamOpener>,
    plaintext: Vec<u8>,
}

/// The ciphertext failed to open (a record's tag, a cut-short or overlong stream): the bytes
/// are not the sender's, and nothing written from them may be kept.
#[derive(Debug)]
pub(super) struct Damaged(pub SealError);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Damaged {}

impl Sink {
    /// A fresh (truncated) `.part` file.
    pub(super) async fn create(path: &Path) -> Result<Self> {
        let file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self::File(BufWriter::with_capacity(256 * 1024, file)))
    }

    /// An existing `.part` file (or a new one), positioned at its end; returns its length.
    pub(super) async fn append(path: &Path) -> Result<(Self, u64)> {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let have = file
            .seek(SeekFrom::End(0))
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok((Self::File(BufWriter::with_capacity(256 * 1024, file)), have))
    }

    /// `inner` behind an opener of a ciphertext of `sealed_len` bytes that starts (this run)
    /// at record `first_record`.
    pub(super) fn opening(
        inner: Sink,
        keys: Keys,
        sealed_len: u64,
        first_record: u64,
    ) -> Result<Self> {
        let opener = StreamOpener::new(keys.clone(), sealed_len, first_record)
            .map_err(|error| anyhow!(Damaged(error)))?;
        Ok(Self::Opening(Box::new(Opening {
            inner,
            keys,
            sealed_len,
            opener: Some(opener),
            plaintext: Vec::with_capacity(once_seal::SEALED_RECORD_SIZE),
        })))
    }

    fn write<'a>(
        &'a mut self,
        bytes: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            match self {
                Sink::File(file) => file.write_all(bytes).await.context("cannot write the file"),
                Sink::Stdout(out, hasher) => {
                    hasher.update(bytes);
                    std::io::Write::write_all(out, bytes).context("cannot write to standard output")
                }
                Sink::Opening(opening) => {
                    let Opening {
                        inner,
                        opener,
                        plaintext,
                        ..
                    } = opening.as_mut();
                    let opener = opener.as_mut().context("the download already ended")?;
                    plaintext.clear();
                    opener
                        .push(bytes, plaintext)
                        .map_err(|error| anyhow!(Damaged(error)))?;
                    if plaintext.is_empty() {
                        return Ok(());
                    }
                    inner.write(plaintext).await
                }
            }
        })
    }

    /// The server sent the whole file again: start over.
    fn restart(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            match self {
                Sink::File(file) => {
                    file.flush().await?;
                    let inner = file.get_mut();
                    inner.set_len(0).await?;
                    inner.seek(SeekFrom::Start(0)).await?;
                    Ok(())
                }
                Sink::Stdout(..) => {
                    bail!(
                        "the server cannot resume the download and standard output cannot be \
                         rewound"
                    )
                }
                Sink::Opening(opening) => {
                    opening.inner.restart().await?;
                    opening.opener = Some(
                        StreamOpener::new(opening.keys.clone(), opening.sealed_len, 0)
                            .map_err(|error| anyhow!(Damaged(error)))?,
                    );
                    Ok(())
                }
            }
        })
    }

    /// For an encrypted share: checks that the last record arrived and opened, and writes it.
    /// Nothing to check for the others.
    pub(super) async fn complete(&mut self) -> Result<()> {
        let Sink::Opening(opening) = self else {
            return Ok(());
        };
        let opener = opening
            .opener
            .take()
            .context("the download already ended")?;
        opening.plaintext.clear();
        opener
            .finish(&mut opening.plaintext)
            .map_err(|error| anyhow!(Damaged(error)))?;
        let Opening {
            inner, plaintext, ..
        } = opening.as_mut();
        inner.write(plaintext).await
    }

    /// Flushes, and for a file makes sure the bytes are on disk before it is renamed.
    pub(super) fn finish(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            match self {
                Sink::File(file) => {
                    file.flush().await.context("cannot write the file")?;
                    file.get_mut()
                        .sync_all()
                        .await
                        .context("cannot write the file")
                }
                Sink::Stdout(out, _) => {
                    std::io::Write::flush(out).context("cannot write to standard output")
                }
                Sink::Opening(opening) => opening.inner.finish().await,
            }
        })
    }
}

/// One GET of the blob, from byte `from` on. Never sends credentials: the URL is the
/// authorization.
pub(super) async fn fetch(client: &Client, blob: &Url, from: u64) -> Result<Response> {
    let mut request = client.http().get(blob.clone()).header(ACCEPT, "*/*");
    if from > 0 {
        request = request.header(RANGE, format!("bytes={from}-"));
    }
    match tokio::time::timeout(STALL, request.send()).await {
        Ok(result) => result.context("the download request failed"),
        Err(_) => bail!("the server did not answer for {} s", STALL.as_secs()),
    }
}

/// Streams the blob into `sink`, which already holds `have` bytes, resuming with Range after
/// a broken connection. `first` is a response already obtained for offset `have`.
pub(super) async fn transfer(
    client: &Client,
    blob: Option<&Url>,
    mut first: Option<Response>,
    sink: &mut Sink,
    mut have: u64,
    quiet: bool,
) -> Result<()> {
    let mut failures = 0u32;
    let mut bar: Option<ProgressBar> = None;
    let result = loop {
        let attempt = async {
            let response = match first.take() {
                Some(response) => response,
                None => {
                    let blob = blob.context(
                        "the connection broke, and a file sent directly by the server cannot be \
                         resumed",
                    )?;
                    fetch(client, blob, have).await?
                }
            };
            let total = match start_of_body(&response, have)? {
                BodyStart::Continue { total } => total,
                BodyStart::FromScratch { total } => {
                    if have > 0 {
                        sink.restart().await?;
                        have = 0;
                    }
                    total
                }
                BodyStart::AlreadyComplete => return Ok(()),
                BodyStart::Refused => {
                    let status = response.status();
                    let error = error_from_response(response).await;
                    if status.is_server_error() {
                        // Possibly a passing hiccup (a restarting instance, a proxy): retried.
                        return Err(error.context("the server failed"));
                    }
                    return Err(Fatal(if status == StatusCode::FORBIDDEN {
                        error.context(
                            "the download URL is no longer valid: the window for downloading \
                             after the claim is over",
                        )
                    } else {
                        error.context("the download was refused")
                    })
                    .into());
                }
            };
            let bar = bar.get_or_insert_with(|| byte_progress(total, have, quiet, "downloading"));
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(have);
            let mut body = response.bytes_stream();
            loop {
                match tokio::time::timeout(STALL, body.next()).await {
                    Err(_) => bail!("no data for {} s", STALL.as_secs()),
                    Ok(None) => break,
                    Ok(Some(Err(error))) => {
                        return Err(anyhow::Error::from(error).context("the connection broke"));
                    }
                    Ok(Some(Ok(chunk))) => {
                        // A full disk is not a network problem: give up at once.
                        sink.write(&chunk).await.map_err(Fatal)?;
                        have += chunk.len() as u64;
                        bar.set_position(have);
                        failures = 0;
                        if total.is_some_and(|total| have > total) {
                            return Err(Fatal(anyhow!(
                                "the server sent more than the announced {} bytes",
                                total.unwrap_or_default()
                            ))
                            .into());
                        }
                    }
                }
            }
            match total {
                Some(total) if have < total => {
                    bail!("the connection closed early, at {have} of {total} bytes")
                }
                _ => Ok(()),
            }
        };
        let attempt: Result<()> = attempt.await;
        match attempt {
            Ok(()) => break Ok(()),
            Err(error) if error.is::<Fatal>() => break Err(error),
            Err(error) => {
                failures += 1;
                if failures > RETRIES || blob.is_none() {
                    break Err(error);
                }
                let notice = format!(
                    "{error:#}; resuming from {} (retry {failures} of {RETRIES})",
                    bytesize::ByteSize(have)
                );
                match &bar {
                    Some(bar) if !quiet => bar.suspend(|| eprintln!("{notice}")),
                    None if !quiet => eprintln!("{notice}"),
                    _ => {}
                }
                tokio::time::sleep(BACKOFF).await;
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

/// An error that retrying cannot fix (the server refused, the disk is full).
#[derive(Debug)]
struct Fatal(anyhow::Error);

/// Takes the [`Fatal`] marker off an error; says whether it was there.
pub(super) fn split_fatal(error: anyhow::Error) -> (anyhow::Error, bool) {
    match error.downcast::<Fatal>() {
        Ok(Fatal(inner)) => (inner, true),
        Err(error) => (error, false),
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Fatal {}

/// How a blob response relates to the `have` bytes already written.
#[derive(Debug, PartialEq, Eq)]
enum BodyStart {
    /// 206 starting exactly at `have`: append.
    Continue { total: Option<u64> },
    /// 200 (or a 206 from byte 0): the whole file from the start.
    FromScratch { total: Option<u64> },
    /// 416 whose total equals `have`: everything is already here.
    AlreadyComplete,
    /// Any other status: not retried.
    Refused,
}

fn start_of_body(response: &Response, have: u64) -> Result<BodyStart> {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok())
    };
    classify(
        response.status(),
        header(CONTENT_RANGE),
        response.content_length(),
        have,
    )
}

/// The pure part of [`start_of_body`].
fn classify(
    status: StatusCode,
    content_range: Option<&str>,
    content_length: Option<u64>,
    have: u64,
) -> Result<BodyStart> {
    match status {
        StatusCode::OK => Ok(BodyStart::FromScratch {
            total: content_length,
        }),
        StatusCode::PARTIAL_CONTENT => {
            let range = content_range
                .and_then(parse_content_range)
                .with_context(|| {
                    format!(
                        "the server sent a partial answer with an unreadable Content-Range {:?}",
                        content_range.unwrap_or_default()
                    )
                })
                .map_err(Fatal)?;
            match range {
                ContentRange::Bytes { start, total, .. } if start == have => {
                    Ok(BodyStart::Continue { total })
                }
                ContentRange::Bytes {
                    start: 0, total, ..
                } => Ok(BodyStart::FromScratch { total }),
                ContentRange::Bytes { start, .. } => Err(Fatal(anyhow!(
                    "the server resumed at byte {start} instead of {have}"
                ))
                .into()),
                ContentRange::Unsatisfied { .. } => Err(Fatal(anyhow!(
                    "the server sent a partial answer without a byte range"
                ))
                .into()),
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => match content_range.and_then(parse_content_range) {
            Some(ContentRange::Unsatisfied { total }) if total == have => {
                Ok(BodyStart::AlreadyComplete)
            }
            _ => Err(Fatal(anyhow!(
                "the partial download ({have} bytes) does not match the file on the server; \
                 remove the .part file to start over"
            ))
            .into()),
        },
        _ => Ok(BodyStart::Refused),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ContentRange {
    /// `bytes START-END/TOTAL` (`TOTAL` may be `*`).
    Bytes {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
    /// `bytes */TOTAL`, sent with 416.
    Unsatisfied { total: u64 },
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim();
    if range.trim() == "*" {
        return Some(ContentRange::Unsatisfied {
            total: total.parse().ok()?,
        });
    }
    let (start, end) = range.trim().split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    let total = match total {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    if end < start || total.is_some_and(|total| end >= total) {
        return None;
    }
    Some(ContentRange::Bytes { start, end, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_ranges_and_unsatisfied() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange::Bytes {
                start: 100,
                end: 199,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*"),
            Some(ContentRange::Bytes {
                start: 0,
                end: 9,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */42"),
            Some(ContentRange::Unsatisfied { total: 42 })
        );
        for bad in [
            "",
            "bytes",
            "items 0-1/2",
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes a-b/c",
            "bytes */*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn responses_are_classified_against_what_we_have() {
        let partial = StatusCode::PARTIAL_CONTENT;
        assert_eq!(
            classify(partial, Some("bytes 100-199/200"), Some(100), 100).unwrap(),
            BodyStart::Continue { total: Some(200) }
        );
        assert_eq!(
            classify(StatusCode::OK, None, Some(200), 100).unwrap(),
            BodyStart::FromScratch { total: Some(200) }
        );
        assert_eq!(
            classify(partial, Some("bytes 0-199/200"), Some(200), 100).unwrap(),
            BodyStart::FromScratch { total: Some(200) }
        );
        assert!(classify(partial, Some("bytes 50-199/200"), None, 100).is_err());
        assert!(classify(partial, None, None, 100).is_err());
        assert_eq!(
            classify(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Some("bytes */200"),
                None,
                200
            )
            .unwrap(),
            BodyStart::AlreadyComplete
        );
        assert!(
            classify(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Some("bytes */150"),
                None,
                200
            )
            .is_err()
        );
        assert_eq!(
            classify(StatusCode::FORBIDDEN, None, None, 100).unwrap(),
            BodyStart::Refused
        );
    }
}
