//! `once get LINK`: claim the share (a GET on the link answers with a redirect to a short-lived
//! blob URL), download the blob into `<output>.part`, resume with HTTP Range when the connection
//! breaks, and rename it into place once every byte is there. A sidecar `<output>.part.once`
//! remembers the link and blob URL, so running the command again after a crash or Ctrl-C resumes
//! within the lease instead of claiming (and possibly burning) the link a second time.
//! When the server vouches for a SHA-256 of the file (`X-Once-Sha256` on the claim), the
//! finished download is checked against it before it is moved into place.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use indicatif::ProgressBar;
use once_domain::{Filename, Sha256Digest, ShareId};
use reqwest::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Response, StatusCode};
use sha2::Digest;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use url::Url;

use super::config::{Client, error_from_response};
use super::{ShareLink, byte_progress, parse_share_link};
use crate::GetArgs;

/// Consecutive failed attempts (without any byte arriving in between) before giving up.
const RETRIES: u32 = 5;
const BACKOFF: Duration = Duration::from_secs(1);
/// No byte for this long counts as a broken connection, so a stalled transfer is resumed
/// instead of hanging forever (the client has no overall timeout).
const STALL: Duration = Duration::from_secs(60);
const SIDECAR_SUFFIX: &str = ".part.once";
/// A sidecar holds two URLs and a digest; anything bigger is not ours.
const MAX_SIDECAR: u64 = 16 * 1024;

pub async fn run(args: GetArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    let link = link_from_arg(&client, &args.link)?;
    match args.output.as_deref() {
        Some(path) if path == Path::new("-") => to_stdout(&client, &link, args.quiet).await,
        Some(path) if path.is_dir() => to_directory(&client, &link, Some(path), args.quiet).await,
        Some(path) => to_file(&client, &link, path, args.quiet).await,
        None => to_directory(&client, &link, None, args.quiet).await,
    }
}

/// A full link, or a bare share id on the configured server.
fn link_from_arg(client: &Client, text: &str) -> Result<(Url, ShareLink)> {
    let text = text.trim();
    let full = match ShareId::parse(text) {
        Ok(id) => client.url(&format!("/s/{id}")),
        Err(_) => text.to_owned(),
    };
    let parsed = parse_share_link(&full)?;
    // The link is requested as given (with its file name, if any); the canonical form is
    // only used to recognise the same share in a sidecar.
    let url = Url::parse(&full)?;
    Ok((url, parsed))
}

/// What the claim produced.
enum Claimed {
    /// The usual answer: the blob's URL, which may be fetched again (with Range) during the
    /// lease.
    Redirect(Url),
    /// The server sent the bytes itself; they cannot be re-requested without a new claim.
    Direct(Response),
}

/// The SHA-256 the server announces for the file, if any. The claim has already used up a
/// download by then, so a malformed header only costs the check, not the file.
fn announced_sha256(response: &Response) -> Option<Sha256Digest> {
    let value = response.headers().get(once_api::headers::SHA256)?;
    let digest = value
        .to_str()
        .ok()
        .and_then(|text| Sha256Digest::parse_hex(text).ok());
    if digest.is_none() {
        eprintln!("warning: the server announced a malformed SHA-256; the file is not verified");
    }
    digest
}

/// Claims the share with one GET on the link. Redirects are not followed automatically: the
/// blob URL is what makes resuming possible, and a permanent redirect (say http → https by a
/// proxy) is reported rather than followed so nothing is claimed behind the user's back.
/// Returns the claim and the file's SHA-256 when the server announced one.
async fn claim(client: &Client, link: &Url) -> Result<(Claimed, Option<Sha256Digest>)> {
    let response = client
        .http()
        .get(link.clone())
        .header(ACCEPT, "*/*")
        .send()
        .await
        .with_context(|| format!("cannot reach {}", link.origin().ascii_serialization()))?;
    let status = response.status();
    let sha256 = announced_sha256(&response);
    let location = || {
        response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    match status {
        StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::TEMPORARY_REDIRECT => {
            let location = location().context("the server redirected without a Location")?;
            let blob = link
                .join(&location)
                .with_context(|| format!("the server redirected to an invalid URL {location}"))?;
            Ok((Claimed::Redirect(blob), sha256))
        }
        StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT => bail!(
            "{link} moved to {}; nothing was downloaded, use that link instead",
            location().unwrap_or_default()
        ),
        status if status.is_success() => {
            if looks_like_a_page(&response) {
                bail!(
                    "the server answered with a web page instead of the file; nothing was \
                     downloaded"
                );
            }
            Ok((Claimed::Direct(response), sha256))
        }
        _ => Err(error_from_response(response)
            .await
            .context("cannot download the share")),
    }
}

/// An HTML answer without `Content-Disposition` is the landing page meant for browsers, not
/// the file.
fn looks_like_a_page(response: &Response) -> bool {
    let html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/html"));
    html && !response.headers().contains_key(CONTENT_DISPOSITION)
}

/// `-o -`: straight to stdout. No `.part` and no resuming across runs, but a broken connection
/// is still resumed with Range within this run, since the bytes already written are known.
async fn to_stdout(client: &Client, (url, _): &(Url, ShareLink), quiet: bool) -> Result<()> {
    let (claimed, sha256) = claim(client, url).await?;
    let (blob, first) = match claimed {
        Claimed::Redirect(blob) => (Some(blob), None),
        Claimed::Direct(response) => (None, Some(response)),
    };
    let mut sink = Sink::Stdout(
        std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
        sha2::Sha256::new(),
    );
    transfer(client, blob.as_ref(), first, &mut sink, 0, quiet)
        .await
        .map_err(|error| split_fatal(error).0)?;
    sink.finish().await?;
    // The bytes are already out; a mismatch can only be reported, through the exit status.
    if let (Some(expected), Sink::Stdout(_, hasher)) = (sha256, sink) {
        check_sha256(expected, Sha256Digest(hasher.finalize().into()))
            .context("the bytes written to standard output are not the file that was sent")?;
    }
    Ok(())
}

fn check_sha256(expected: Sha256Digest, actual: Sha256Digest) -> Result<()> {
    if expected != actual {
        bail!(
            "SHA-256 mismatch: the sender's file has {}, the download has {}",
            expected.to_hex(),
            actual.to_hex()
        );
    }
    Ok(())
}

/// The SHA-256 of a file, read in chunks on a blocking thread.
async fn sha256_of_file(path: &Path) -> Result<Sha256Digest> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut file, &mut hasher)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Sha256Digest(hasher.finalize().into()))
    })
    .await
    .context("the checksum task failed")?
}

/// `-o FILE`: refuse an existing file before claiming, resume from a sidecar when there is
/// one, else claim and download.
async fn to_file(
    client: &Client,
    (url, link): &(Url, ShareLink),
    output: &Path,
    quiet: bool,
) -> Result<()> {
    if output.symlink_metadata().is_ok() {
        bail!(
            "{} already exists; remove it or choose another -o (the link was not used)",
            output.display()
        );
    }
    let sidecar = with_suffix(output, SIDECAR_SUFFIX);
    if let Some(saved) = read_sidecar(&sidecar)? {
        if saved.link.canonical != link.canonical {
            bail!(
                "{} belongs to another link ({}); remove it and {} or choose another -o",
                sidecar.display(),
                saved.link.canonical,
                with_suffix(output, ".part").display()
            );
        }
        return resume(client, output, saved, quiet).await;
    }

    // Created before the claim, so an unwritable destination fails without using the link up.
    let part = with_suffix(output, ".part");
    let sink = Sink::create(&part).await?;
    let (claimed, sha256) = match claim(client, url).await {
        Ok(claimed) => claimed,
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
    };
    let (blob, first) = match claimed {
        Claimed::Redirect(blob) => {
            write_sidecar(&sidecar, &link.canonical, &blob, sha256)?;
            (Some(blob), None)
        }
        Claimed::Direct(response) => (None, Some(response)),
    };
    finish_download(
        client,
        Download {
            output: output.to_owned(),
            rename_if_taken: false,
            resumed: false,
            blob,
            sha256,
            first,
            sink,
            have: 0,
        },
        quiet,
    )
    .await
}

/// No `-o` (or `-o DIR`): the file name comes from the server. A sidecar in the directory for
/// the same link means an earlier run was interrupted: resume it.
async fn to_directory(
    client: &Client,
    (url, link): &(Url, ShareLink),
    dir: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    if let Some((name, saved)) = find_sidecar(dir.unwrap_or(Path::new(".")), link)? {
        let output = dir.map_or_else(|| PathBuf::from(&name), |dir| dir.join(&name));
        if output.symlink_metadata().is_ok() {
            bail!(
                "{} exists next to an unfinished download of the same link ({}); move it away \
                 and run the command again",
                output.display(),
                with_suffix(&output, ".part").display()
            );
        }
        return resume(client, &output, saved, quiet).await;
    }

    let (claimed, sha256) = claim(client, url).await?;
    let (blob, first) = match claimed {
        Claimed::Redirect(blob) => {
            // The first blob request is made here because its headers carry the file name. If
            // it fails the download still goes on, under a name taken from the link.
            let first = fetch(client, &blob, 0).await.ok();
            (Some(blob), first)
        }
        Claimed::Direct(response) => (None, Some(response)),
    };
    let name = first
        .as_ref()
        .and_then(name_from_response)
        .or_else(|| {
            link.filename
                .as_deref()
                .and_then(|name| Filename::parse(name).ok())
        })
        .map_or_else(|| link.id.to_string(), |name| name.as_str().to_owned());
    let output = free_path(dir, &name);
    let part = with_suffix(&output, ".part");
    let sink = Sink::create(&part).await?;
    if let Some(blob) = &blob {
        write_sidecar(
            &with_suffix(&output, SIDECAR_SUFFIX),
            &link.canonical,
            blob,
            sha256,
        )?;
    }
    finish_download(
        client,
        Download {
            output,
            rename_if_taken: true,
            resumed: false,
            blob,
            sha256,
            first,
            sink,
            have: 0,
        },
        quiet,
    )
    .await
}

/// Continues an interrupted download from its `.part` with the stored blob URL; no claim.
async fn resume(client: &Client, output: &Path, saved: Sidecar, quiet: bool) -> Result<()> {
    let part = with_suffix(output, ".part");
    let (sink, have) = Sink::append(&part).await?;
    if !quiet {
        eprintln!(
            "resuming {} from {}",
            output.display(),
            bytesize::ByteSize(have)
        );
    }
    finish_download(
        client,
        Download {
            output: output.to_owned(),
            rename_if_taken: false,
            resumed: true,
            blob: Some(saved.blob),
            sha256: saved.sha256,
            first: None,
            sink,
            have,
        },
        quiet,
    )
    .await
}

struct Download {
    output: PathBuf,
    /// The name was chosen by us (from the server), so if it got taken meanwhile, pick the
    /// next free one rather than overwrite.
    rename_if_taken: bool,
    /// Continued from a sidecar left by an earlier run.
    resumed: bool,
    blob: Option<Url>,
    /// What the finished file must hash to, when the server said.
    sha256: Option<Sha256Digest>,
    first: Option<Response>,
    sink: Sink,
    have: u64,
}

/// Runs the transfer into `<output>.part`, then moves it into place and removes the sidecar.
/// On failure or Ctrl-C the partial file is flushed and kept when it can be resumed.
async fn finish_download(client: &Client, download: Download, quiet: bool) -> Result<()> {
    let Download {
        mut output,
        rename_if_taken,
        resumed,
        blob,
        sha256,
        first,
        mut sink,
        have,
    } = download;
    let part = with_suffix(&output, ".part");
    let sidecar = with_suffix(&output, SIDECAR_SUFFIX);
    let result = tokio::select! {
        result = transfer(client, blob.as_ref(), first, &mut sink, have, quiet) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Err(error) = result {
        let (error, fatal) = split_fatal(error);
        let flushed = sink.finish().await;
        if blob.is_none() || flushed.is_err() {
            // Nothing can be resumed without a blob URL, so the partial file is useless.
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
        return Err(if resumed && fatal {
            error.context(format!(
                "cannot resume {}; to give up on it, remove {} and {}",
                output.display(),
                part.display(),
                sidecar.display()
            ))
        } else {
            error.context(format!(
                "the partial download is kept in {}; run the same command again to resume it \
                 while the link's download window lasts",
                part.display()
            ))
        });
    }
    sink.finish().await?;
    if let Some(expected) = sha256 {
        if !quiet {
            eprintln!("verifying SHA-256…");
        }
        if let Err(error) = check_sha256(expected, sha256_of_file(&part).await?) {
            // The link is used up and these bytes are not the sender's: keep them for
            // inspection under a name nobody mistakes for the file, and stop resuming.
            let corrupt = with_suffix(&output, ".corrupt");
            let _ = std::fs::rename(&part, &corrupt);
            let _ = std::fs::remove_file(&sidecar);
            return Err(error.context(format!(
                "the download is damaged and was kept as {}; do not trust it",
                corrupt.display()
            )));
        }
    }

    if output.symlink_metadata().is_ok() {
        if !rename_if_taken {
            bail!(
                "{} appeared during the download; the file is kept in {}",
                output.display(),
                part.display()
            );
        }
        let name = output
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let moved = free_path(output.parent().filter(|p| !p.as_os_str().is_empty()), &name);
        std::fs::rename(&part, with_suffix(&moved, ".part"))
            .with_context(|| format!("cannot rename {}", part.display()))?;
        output = moved;
    }
    std::fs::rename(with_suffix(&output, ".part"), &output)
        .with_context(|| format!("cannot move the download into {}", output.display()))?;
    match std::fs::remove_file(&sidecar) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            eprintln!("warning: cannot remove {}: {error}", sidecar.display());
        }
    }
    eprintln!("saved {}", output.display());
    Ok(())
}

/// Where the bytes go. Standard output is written with blocking writes (tokio's `io-std` is not
/// enabled); it only holds up this one download.
enum Sink {
    File(BufWriter<tokio::fs::File>),
    /// Standard output cannot be read back, so what goes out is hashed on the way.
    Stdout(std::io::BufWriter<std::io::Stdout>, sha2::Sha256),
}

impl Sink {
    /// A fresh (truncated) `.part` file.
    async fn create(path: &Path) -> Result<Self> {
        let file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self::File(BufWriter::with_capacity(256 * 1024, file)))
    }

    /// An existing `.part` file (or a new one), positioned at its end; returns its length.
    async fn append(path: &Path) -> Result<(Self, u64)> {
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

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::File(file) => file.write_all(bytes).await.context("cannot write the file"),
            Sink::Stdout(out, hasher) => {
                hasher.update(bytes);
                std::io::Write::write_all(out, bytes).context("cannot write to standard output")
            }
        }
    }

    /// The server sent the whole file again: start over.
    async fn restart(&mut self) -> Result<()> {
        match self {
            Sink::File(file) => {
                file.flush().await?;
                let inner = file.get_mut();
                inner.set_len(0).await?;
                inner.seek(SeekFrom::Start(0)).await?;
                Ok(())
            }
            Sink::Stdout(..) => {
                bail!("the server cannot resume the download and standard output cannot be rewound")
            }
        }
    }

    /// Flushes, and for a file makes sure the bytes are on disk before it is renamed.
    async fn finish(&mut self) -> Result<()> {
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
        }
    }
}

/// One GET of the blob, from byte `from` on. Never sends credentials: the URL is the
/// authorization.
async fn fetch(client: &Client, blob: &Url, from: u64) -> Result<Response> {
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
async fn transfer(
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
            let bar = bar.get_or_insert_with(|| byte_progress(total, quiet, "downloading"));
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
fn split_fatal(error: anyhow::Error) -> (anyhow::Error, bool) {
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

/// The sender's file name from `Content-Disposition`, re-validated so a server can never
/// choose a path.
fn name_from_response(response: &Response) -> Option<Filename> {
    response
        .headers()
        .get(CONTENT_DISPOSITION)
        .and_then(|value| value.to_str().ok())
        .and_then(Filename::from_content_disposition)
}

/// `name`, or the first of `name (1).ext`, `name (2).ext`, … (as browsers do) for which
/// neither the file nor an unfinished download of it exists.
fn free_path(dir: Option<&Path>, name: &str) -> PathBuf {
    let at = |name: &str| dir.map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
    let taken = |path: &Path| {
        [
            path.to_owned(),
            with_suffix(path, ".part"),
            with_suffix(path, SIDECAR_SUFFIX),
        ]
        .iter()
        .any(|p| p.symlink_metadata().is_ok())
    };
    let first = at(name);
    if !taken(&first) {
        return first;
    }
    (1u32..)
        .map(|n| at(&numbered(name, n)))
        .find(|path| !taken(path))
        .expect("some numbered name is free")
}

/// `report (2).pdf`; compound archive extensions stay together: `data (2).tar.gz`.
fn numbered(name: &str, n: u32) -> String {
    let lower = name.to_ascii_lowercase();
    let compound = [".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"]
        .iter()
        .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len());
    let split = match compound {
        Some(ext) => Some(name.len() - ext.len()),
        // A leading dot is a hidden file, not an extension.
        None => name.rfind('.').filter(|&i| i > 0),
    };
    match split {
        Some(i) => format!("{} ({n}){}", &name[..i], &name[i..]),
        None => format!("{name} ({n})"),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

struct Sidecar {
    link: ShareLink,
    blob: Url,
    sha256: Option<Sha256Digest>,
}

/// Lines: the share link, the blob URL, and the announced SHA-256 when there is one. The blob
/// URL is a capability for the rest of the lease, so the file is private to the user.
fn write_sidecar(path: &Path, link: &Url, blob: &Url, sha256: Option<Sha256Digest>) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let digest = sha256.map(|digest| digest.to_hex()).unwrap_or_default();
    std::io::Write::write_all(&mut file, format!("{link}\n{blob}\n{digest}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `None` when there is no sidecar; an error when there is one we cannot use, since resuming
/// is then impossible and claiming again might burn the link.
fn read_sidecar(path: &Path) -> Result<Option<Sidecar>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let mut text = String::new();
    file.take(MAX_SIDECAR)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_sidecar(&text).map(Some).with_context(|| {
        format!(
            "{} is not a once download record; remove it to start over",
            path.display()
        )
    })
}

fn parse_sidecar(text: &str) -> Result<Sidecar> {
    let mut lines = text.lines().map(str::trim);
    let link = parse_share_link(lines.next().unwrap_or_default())?;
    let blob = Url::parse(lines.next().unwrap_or_default()).context("no blob URL")?;
    // Absent or empty in records of files the server announced no checksum for.
    let sha256 = match lines.next().filter(|line| !line.is_empty()) {
        Some(hex) => Some(Sha256Digest::parse_hex(hex).map_err(|_| anyhow!("bad SHA-256"))?),
        None => None,
    };
    Ok(Sidecar { link, blob, sha256 })
}

/// Looks in `dir` for the sidecar of an unfinished download of the same share; returns the
/// output's file name and the record.
fn find_sidecar(dir: &Path, link: &ShareLink) -> Result<Option<(String, Sidecar)>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(output_name) = name.strip_suffix(SIDECAR_SUFFIX) else {
            continue;
        };
        if output_name.is_empty() {
            continue;
        }
        // Other people's or broken files are not ours to judge: skip them.
        let Ok(Some(saved)) = read_sidecar(&entry.path()) else {
            continue;
        };
        if saved.link.canonical == link.canonical {
            return Ok(Some((output_name.to_owned(), saved)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

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

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("data.tar.gz", 2), "data (2).tar.gz");
        assert_eq!(numbered("README", 3), "README (3)");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
        assert_eq!(numbered("a.b.c", 1), "a.b (1).c");
    }

    #[test]
    fn free_path_skips_existing_files_and_unfinished_downloads() {
        let dir = std::env::temp_dir().join(format!("once-get-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(free_path(Some(&dir), "f.txt"), dir.join("f.txt"));
        std::fs::write(dir.join("f.txt"), b"").unwrap();
        std::fs::write(dir.join("f (1).txt.part"), b"").unwrap();
        assert_eq!(free_path(Some(&dir), "f.txt"), dir.join("f (2).txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sidecars_round_trip_and_are_found_by_link() {
        let dir = std::env::temp_dir().join(format!("once-sidecar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = parse_share_link(&format!("https://h/s/{ID}/f.txt")).unwrap();
        let blob = Url::parse("https://h/b/key?sig=x&exp=1").unwrap();
        let digest = Sha256Digest([7; 32]);
        write_sidecar(
            &dir.join("f.txt.part.once"),
            &link.canonical,
            &blob,
            Some(digest),
        )
        .unwrap();
        std::fs::write(dir.join("junk.part.once"), b"garbage").unwrap();

        let same = parse_share_link(&format!("https://h/s/{ID}")).unwrap();
        let (output, found) = find_sidecar(&dir, &same).unwrap().unwrap();
        assert_eq!(output, "f.txt");
        assert_eq!((found.blob, found.sha256), (blob, Some(digest)));

        let other = parse_share_link("https://h/s/BBBBBBBBBBBBBBBBBBBBBA").unwrap();
        assert!(find_sidecar(&dir, &other).unwrap().is_none());
        assert!(read_sidecar(&dir.join("junk.part.once")).is_err());
        assert!(read_sidecar(&dir.join("none.part.once")).unwrap().is_none());
        // Records without a digest (no checksum announced) still resume.
        std::fs::write(
            dir.join("old.part.once"),
            format!("https://h/s/{ID}\nhttps://h/b/key?sig=y\n"),
        )
        .unwrap();
        let old = read_sidecar(&dir.join("old.part.once")).unwrap().unwrap();
        assert_eq!(old.sha256, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
