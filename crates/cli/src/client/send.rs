//! `once send FILE`: hash the file, ask the server for a share and an upload ticket, stream the
//! bytes to wherever the ticket says (the server itself or a presigned bucket URL), report the
//! upload complete when the ticket asks for it, and print the one-time link.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use futures::{Stream, StreamExt};
use indicatif::ProgressBar;
use once_api::{
    CompleteShare, CompletedPart, MultipartTicket, NewShare, PartTicket, PartTickets, RefreshParts,
    ShareView, UploadTicket,
};
use once_domain::Filename;
use reqwest::Method;
use reqwest::header::CONTENT_LENGTH;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use url::Url;

use super::config::{Client, ensure_success};
use super::{LARGE_FILE, byte_progress, describe_time, print_qr};
use crate::SendArgs;

pub async fn run(args: SendArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    // Fail on a missing key before spending minutes hashing a large file.
    client.settings.require_key()?;

    let path = args.file.as_path();
    let metadata = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !metadata.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let raw_name = match &args.name {
        Some(name) => name.clone(),
        None => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .with_context(|| format!("{} has no file name; pass --name", path.display()))?,
    };
    let filename = Filename::parse(&raw_name)
        .map_err(|error| anyhow!("{error}: choose another with --name"))?;

    let (size, sha256) = hash_file(path, metadata.len(), args.quiet).await?;

    let request = NewShare {
        filename: filename.as_str().to_owned(),
        size,
        max_downloads: Some(args.downloads),
        expires_in: args.expires.map(whole_seconds),
        sha256: Some(sha256),
        content_type: guess_content_type(filename.as_str()).map(str::to_owned),
        upload_expires_in: None,
    };
    let created: ShareView = client
        .send_json(
            client.api(Method::POST, "/api/v1/shares")?.json(&request),
            "cannot create the share",
        )
        .await?;
    let ticket = created
        .upload
        .as_ref()
        .context("the server created the share but sent no upload ticket")?;

    let parts = match &ticket.multipart {
        Some(multipart) => {
            upload_parts(&client, &created.id, multipart, path, size, args.quiet).await?
        }
        None => {
            upload(&client, ticket, path, size, args.quiet).await?;
            Vec::new()
        }
    };

    if let Some(complete) = &ticket.complete_url {
        let url = complete_url(&client, complete, &created.id)?;
        report_complete(&client, &url, &CompleteShare { parts }).await?;
    }

    println!("{}", created.url);
    if args.qr {
        print_qr(&created.url)?;
    }
    if !args.quiet {
        let downloads = match args.downloads {
            1 => "1 download".to_owned(),
            n => format!("{n} downloads"),
        };
        eprintln!("{downloads}, expires {}", describe_time(created.expires_at));
    }
    Ok(())
}

/// `expires_in` is whole seconds; a fraction rounds up so `--expires 1500ms` is not `1`.
pub(super) fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// One pass over the file for its size and SHA-256, in constant memory. The size comes from
/// what was read, not from `stat`, and must agree with it: a file that is still being written
/// would otherwise be announced with one size and uploaded with another.
async fn hash_file(path: &Path, stat_size: u64, quiet: bool) -> Result<(u64, String)> {
    let bar = if stat_size >= LARGE_FILE {
        byte_progress(Some(stat_size), 0, quiet, "hashing")
    } else {
        ProgressBar::hidden()
    };
    let owned = path.to_owned();
    let progress = bar.clone();
    let (size, digest) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            hasher.update(&buffer[..n]);
            total += n as u64;
            progress.inc(n as u64);
        }
        Ok((total, hex::encode(hasher.finalize())))
    })
    .await
    .context("the hashing task failed")?
    .with_context(|| format!("cannot read {}", path.display()))?;
    bar.finish_and_clear();
    if size != stat_size {
        bail!(
            "{} changed while it was being read; send it once it is complete",
            path.display()
        );
    }
    Ok((size, digest))
}

/// Ticket URLs may be relative to the server.
fn resolve(client: &Client, url: &str) -> Result<Url> {
    let base = Url::parse(&format!("{}/", client.settings.server))?;
    base.join(url)
        .with_context(|| format!("the server gave an invalid URL: {url}"))
}

/// Reports the finished upload. The bytes are already in the storage and `complete` is
/// idempotent (a retry after the object was assembled only checks and publishes it), so a lost
/// connection or a server error here is retried instead of losing the upload.
async fn report_complete(client: &Client, url: &Url, body: &CompleteShare) -> Result<()> {
    for attempt in 1..=COMPLETE_ATTEMPTS {
        let sent = client
            .send(client.api_at(Method::POST, url.as_str())?.json(body))
            .await;
        let retryable = match &sent {
            Err(_) => true,
            Ok(response) => response.status().is_server_error(),
        };
        if retryable && attempt < COMPLETE_ATTEMPTS {
            // Also moves an HMAC-signed retry to a new timestamp, so it is no replay.
            tokio::time::sleep(std::time::Duration::from_secs(1 << (attempt - 1))).await;
            continue;
        }
        let response = sent.context("cannot report the finished upload to the server")?;
        return ensure_success(response)
            .await
            .map(|_| ())
            .context("the server did not accept the finished upload");
    }
    unreachable!("the last attempt returns")
}

/// The bearer key only ever goes to our own server: a `complete_url` elsewhere is replaced by
/// the contract's route on the configured server.
fn complete_url(client: &Client, complete: &str, share_id: &str) -> Result<Url> {
    let url = resolve(client, complete)?;
    if client.is_our_server(&url) {
        return Ok(url);
    }
    let id = once_domain::ShareId::parse(share_id)
        .map_err(|_| anyhow!("the server returned a malformed share id {share_id:?}"))?;
    resolve(client, &format!("/api/v1/shares/{id}/complete"))
}

/// Streams the file to the ticket's URL with the ticket's method and headers, with an explicit
/// Content-Length (a streamed body would otherwise go out chunked, which presigned PUTs
/// refuse). No credentials are sent: the ticket URL is itself the authorization.
async fn upload(
    client: &Client,
    ticket: &UploadTicket,
    path: &Path,
    size: u64,
    quiet: bool,
) -> Result<()> {
    let url = resolve(
        client,
        ticket
            .url
            .as_deref()
            .context("the upload ticket has no URL")?,
    )?;
    let method =
        Method::from_bytes(ticket.method.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
            anyhow!(
                "the server asked for an invalid upload method {:?}",
                ticket.method
            )
        })?;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;

    let bar = byte_progress(Some(size), 0, quiet, "uploading");
    let chunks = ReaderStream::with_capacity(file.take(size), 256 * 1024);
    let file_stream = counted(chunks, size, bar.clone());

    let mut request = client
        .http()
        .request(method, url)
        .body(reqwest::Body::wrap_stream(file_stream));
    for (name, value) in &ticket.headers {
        if name.eq_ignore_ascii_case("content-length") {
            if value.trim().parse::<u64>().ok() != Some(size) {
                bar.finish_and_clear();
                bail!(
                    "the upload ticket expects Content-Length {value} but the upload is \
                     {size} bytes"
                );
            }
            continue;
        }
        // The HTTP client sets Host from the URL; a second one would be rejected.
        if name.eq_ignore_ascii_case("host") {
            continue;
        }
        request = request.header(name.as_str(), value.as_str());
    }
    let response = client.send(request.header(CONTENT_LENGTH, size)).await;
    bar.finish_and_clear();
    let response = response.context("the upload failed")?;
    ensure_success(response)
        .await
        .context("the upload was refused")?;
    Ok(())
}

/// Parts in flight at once: enough to fill a link, few enough to keep memory and sockets small.
const PARALLEL_PARTS: usize = 4;
/// Attempts per part before the upload gives up.
const PART_ATTEMPTS: u32 = 4;
/// Attempts at reporting a finished upload (waiting 1, 2, 4 s in between).
const COMPLETE_ATTEMPTS: u32 = 4;

/// Uploads every part of a multipart ticket, a few at a time, each straight from its range of
/// the file. A failed part is retried (with a fresh URL when the old one was refused, e.g.
/// because it expired); returns the parts' ETags for the completion call.
async fn upload_parts(
    client: &Client,
    share_id: &str,
    ticket: &MultipartTicket,
    path: &Path,
    size: u64,
    quiet: bool,
) -> Result<Vec<CompletedPart>> {
    let covered: u64 = ticket.parts.iter().map(|part| part.size).sum();
    if covered != size {
        bail!("the multipart ticket covers {covered} bytes but the file has {size}");
    }
    let bar = byte_progress(Some(size), 0, quiet, "uploading");
    let results: Vec<Result<CompletedPart>> = futures::stream::iter(ticket.parts.iter().cloned())
        .map(|part| {
            let bar = bar.clone();
            async move {
                let offset = (u64::from(part.number) - 1) * ticket.part_size;
                upload_one_part(client, share_id, part, path, offset, &bar).await
            }
        })
        .buffer_unordered(PARALLEL_PARTS)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut parts = results.into_iter().collect::<Result<Vec<_>>>()?;
    parts.sort_by_key(|part| part.part_number);
    Ok(parts)
}

async fn upload_one_part(
    client: &Client,
    share_id: &str,
    mut part: PartTicket,
    path: &Path,
    offset: u64,
    bar: &ProgressBar,
) -> Result<CompletedPart> {
    let mut last_error = None;
    for attempt in 1..=PART_ATTEMPTS {
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
        let sent = ProgressBar::hidden();
        let body = counted(
            ReaderStream::with_capacity(file.take(part.size), 256 * 1024),
            part.size,
            sent.clone(),
        );
        let request = client
            .http()
            .put(&part.url)
            .header(CONTENT_LENGTH, part.size)
            .body(reqwest::Body::wrap_stream(body));
        let response = client.send(request).await;
        match response {
            Ok(response) if response.status().is_success() => {
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|value| value.to_str().ok())
                    .context("the storage answered a part without an ETag")?
                    .to_owned();
                bar.inc(part.size);
                return Ok(CompletedPart {
                    part_number: part.number,
                    etag,
                });
            }
            Ok(response) => {
                let status = response.status();
                let refused = status == reqwest::StatusCode::FORBIDDEN;
                last_error = Some(
                    ensure_success(response)
                        .await
                        .err()
                        .unwrap_or_else(|| anyhow!("HTTP {status}")),
                );
                if refused {
                    part = refresh_part(client, share_id, part.number).await?;
                }
            }
            Err(error) => last_error = Some(error),
        }
        if attempt < PART_ATTEMPTS {
            tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow!("no attempt made"))
        .context(format!("part {} could not be uploaded", part.number)))
}

/// Asks the server for a new URL for one part (the old one expired or was refused).
async fn refresh_part(client: &Client, share_id: &str, number: u16) -> Result<PartTicket> {
    let id = once_domain::ShareId::parse(share_id)
        .map_err(|_| anyhow!("the server returned a malformed share id {share_id:?}"))?;
    let refreshed: PartTickets = client
        .send_json(
            client
                .api(Method::POST, &format!("/api/v1/shares/{id}/parts"))?
                .json(&RefreshParts {
                    part_numbers: vec![number],
                }),
            "cannot refresh an upload URL",
        )
        .await?;
    refreshed
        .parts
        .into_iter()
        .find(|part| part.number == number)
        .context("the server did not refresh the part")
}

/// The file's chunks as a body stream of exactly `size` bytes that advances `bar`. The reader
/// is already limited to `size` (a file that grew is cut there); a file that shrank fails the
/// upload instead of leaving the server waiting for bytes that never come.
fn counted<S, B>(
    chunks: S,
    size: u64,
    bar: ProgressBar,
) -> impl Stream<Item = std::io::Result<B>> + Send + 'static
where
    S: Stream<Item = std::io::Result<B>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    struct State<S> {
        chunks: S,
        sent: u64,
        size: u64,
        bar: ProgressBar,
        done: bool,
    }
    let state = State {
        chunks,
        sent: 0,
        size,
        bar,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        match state.chunks.next().await {
            Some(Ok(chunk)) => {
                let len = chunk.as_ref().len() as u64;
                state.sent += len;
                state.bar.inc(len);
                Some((Ok(chunk), state))
            }
            Some(Err(error)) => {
                state.done = true;
                Some((Err(error), state))
            }
            None if state.sent < state.size => {
                state.done = true;
                let error = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file shrank while uploading ({} of {} bytes)",
                        state.sent, state.size
                    ),
                );
                Some((Err(error), state))
            }
            None => None,
        }
    })
}

/// A few common types so recipients' browsers can show them; anything else is left to the
/// server (which defaults to `application/octet-stream`).
fn guess_content_type(filename: &str) -> Option<&'static str> {
    let (_, extension) = filename.rsplit_once('.')?;
    Some(match extension.to_ascii_lowercase().as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_a_small_table() {
        assert_eq!(guess_content_type("a.PDF"), Some("application/pdf"));
        assert_eq!(guess_content_type("b.tar.gz"), Some("application/gzip"));
        assert_eq!(guess_content_type("noext"), None);
        assert_eq!(guess_content_type("x.html"), None);
    }

    #[test]
    fn fractional_expiry_rounds_up() {
        use std::time::Duration;
        assert_eq!(whole_seconds(Duration::from_secs(3600)), 3600);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
    }

    #[tokio::test]
    async fn body_stops_at_size_and_fails_when_the_file_is_short() {
        let dir = std::env::temp_dir().join(format!("once-send-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"0123456789").unwrap();

        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks = ReaderStream::with_capacity(file.take(4), 3);
        let bytes: Vec<u8> = counted(chunks, 4, ProgressBar::hidden())
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flat_map(|chunk| chunk.unwrap().to_vec())
            .collect();
        assert_eq!(bytes, b"0123");

        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks = ReaderStream::new(file.take(20));
        let items: Vec<_> = counted(chunks, 20, ProgressBar::hidden()).collect().await;
        assert!(items.last().unwrap().is_err());

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
