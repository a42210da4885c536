//! `once get LINK`: claim the share (a GET on the link answers with a redirect to a short-lived
//! blob URL), download the blob into `<output>.part`, resume with HTTP Range when the connection
//! breaks, and rename it into place once every byte is there. A sidecar `<output>.part.once`
//! remembers the link and blob URL, so running the command again after a crash or Ctrl-C resumes
//! within the lease instead of claiming (and possibly burning) the link a second time.
//! When the server vouches for a SHA-256 of the file (`X-Once-Sha256` on the claim), the
//! finished download is checked against it before it is moved into place.

mod claim;
mod naming;
mod record;
mod sealed;
mod transfer;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use once_domain::{Filename, Sha256Digest};
use reqwest::Response;
use sha2::Digest;
use url::Url;

use super::config::Client;
use super::link::ShareLink;
use crate::GetArgs;
use claim::{Claimed, claim};
use naming::{free_path, name_from_response, with_suffix};
use once_seal::{RECORD_SIZE, layout};
use record::{SIDECAR_SUFFIX, SealedRecord, Sidecar, find_sidecar, read_sidecar, write_sidecar};
use sealed::{KeySource, Opened};
use transfer::{Damaged, Sink, fetch, split_fatal, transfer};

pub async fn run(args: GetArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    let link = link_from_arg(&client, &args.link)?;
    let recipient = &Recipient {
        password_file: args.password_file.as_deref(),
        quiet: args.quiet,
    };
    if args.extract {
        return download_and_extract(
            &client,
            &link,
            recipient,
            args.output.as_deref(),
            args.quiet,
        )
        .await;
    }
    match args.output.as_deref() {
        Some(path) if path == Path::new("-") => {
            to_stdout(&client, &link, recipient, args.quiet).await
        }
        Some(path) if path.is_dir() => {
            to_directory(&client, &link, recipient, Some(path), args.quiet)
                .await
                .map(drop)
        }
        Some(path) => to_file(&client, &link, recipient, path, args.quiet)
            .await
            .map(drop),
        None => to_directory(&client, &link, recipient, None, args.quiet)
            .await
            .map(drop),
    }
}

/// `--extract [-o DIR]`: the archive is downloaded into the folder (resumable like any
/// download), unpacked there, and removed once every entry is out.
async fn download_and_extract(
    client: &Client,
    link: &(Url, ShareLink),
    recipient: &Recipient<'_>,
    dir: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    if dir == Some(Path::new("-")) {
        bail!("--extract writes files into a folder; it cannot write to standard output");
    }
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let archive = to_directory(client, link, recipient, dir, quiet).await?;
    let into = dir.unwrap_or(Path::new(".")).to_owned();
    let unpacked = archive.clone();
    let report = tokio::task::spawn_blocking(move || super::archive::extract(&unpacked, &into))
        .await
        .context("the extraction task failed")?
        .with_context(|| {
            format!(
                "cannot unpack {} (the download is kept there)",
                archive.display()
            )
        })?;
    std::fs::remove_file(&archive)
        .with_context(|| format!("cannot remove {} after unpacking it", archive.display()))?;
    if !quiet {
        eprintln!(
            "unpacked {} files and {} folders ({})",
            report.files,
            report.directories,
            super::units::human_size(report.bytes)
        );
    }
    Ok(())
}

/// What opens an encrypted share besides the link's key.
struct Recipient<'a> {
    password_file: Option<&'a Path>,
    quiet: bool,
}

impl Recipient<'_> {
    /// An encrypted share, opened before anything is claimed: a wrong key or password fails
    /// here and costs nothing. None for a plain share.
    async fn open(&self, client: &Client, link: &ShareLink) -> Result<Option<Opened>> {
        // Asked even without a key in the link: an upload to one of our encrypted requests
        // opens with the private key kept here, and any other encrypted share is refused
        // here, before a claim, with what is missing.
        let Some(seal) = sealed::fetch_seal(client, link).await? else {
            if link.secret.is_some() && !self.quiet {
                eprintln!("note: the share is not encrypted; the key after '#' is not needed");
            }
            return Ok(None);
        };
        let opened = sealed::open(seal, self.key_source(link), self.password_file)?;
        if let Some(note) = &opened.metadata.note
            && !self.quiet
        {
            eprintln!("note from the sender: {}", super::terminal_text(note));
        }
        Ok(Some(opened))
    }

    /// The keys of an interrupted download of an encrypted share, from the link given again
    /// (or the request's private key).
    fn reopen(&self, link: &ShareLink, record: &SealedRecord) -> Result<Opened> {
        if record.recipient_key.is_none() && link.secret.is_none() {
            bail!(
                "this unfinished download is of an encrypted share: give the whole link, with \
                 its #KEY, to resume it"
            );
        }
        sealed::reopen(record, self.key_source(link), self.password_file)
    }

    fn key_source<'a>(&self, link: &'a ShareLink) -> KeySource<'a> {
        match &link.secret {
            Some(secret) => KeySource::Secret(secret),
            None => KeySource::RequestKeys,
        }
    }
}

/// The file name of an upload to one of our encrypted requests, opened with the request's
/// private key from its sealed metadata; claims nothing. None when it cannot be opened here
/// (no key, gone, not such an upload).
pub(super) async fn request_upload_name(client: &Client, share_url: &str) -> Option<String> {
    let link = ShareLink::parse(share_url).ok()?;
    let seal = sealed::fetch_seal(client, &link).await.ok()??;
    seal.recipient_key.as_ref()?;
    let opened = sealed::open(seal, KeySource::RequestKeys, None).ok()?;
    Some(opened.metadata.name)
}

/// A full link, or a bare share id on the configured server. The claim goes to the link's
/// canonical form (plus its file name), so a pasted trailing slash or query does not change
/// what is requested.
fn link_from_arg(client: &Client, text: &str) -> Result<(Url, ShareLink)> {
    let link = ShareLink::from_ref(text, &client.settings.server)?;
    Ok((link.claim_url(), link))
}

/// `-o -`: straight to stdout. No `.part` and no resuming across runs, but a broken connection
/// is still resumed with Range within this run, since the bytes already written are known.
async fn to_stdout(
    client: &Client,
    (url, link): &(Url, ShareLink),
    recipient: &Recipient<'_>,
    quiet: bool,
) -> Result<()> {
    if let Some(opened) = recipient.open(client, link).await? {
        let blob = sealed::claim(client, link, &opened).await?;
        let stdout = Sink::Stdout(
            std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
            sha2::Sha256::new(),
        );
        let mut sink = Sink::opening(stdout, opened.keys.clone(), opened.sealed_len, 0)?;
        let result = match transfer(client, Some(&blob), None, &mut sink, 0, quiet).await {
            Ok(()) => sink.complete().await,
            Err(error) => Err(split_fatal(error).0),
        };
        sink.finish().await?;
        // Only records that opened were written; the exit status says the rest is missing.
        return result.context("the output is incomplete: the download did not open to its end");
    }
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
    recipient: &Recipient<'_>,
    output: &Path,
    quiet: bool,
) -> Result<PathBuf> {
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
        return resume(client, output, link, saved, recipient, quiet).await;
    }
    let opened = recipient.open(client, link).await?;

    // Created before the claim, so an unwritable destination fails without using the link up.
    let part = with_suffix(output, ".part");
    let sink = Sink::create(&part).await?;
    if let Some(opened) = &opened {
        let download = sealed_download(client, link, opened, output, false, &part, sink).await?;
        return finish_download(client, download, quiet).await;
    }
    let (claimed, sha256) = match claim(client, url).await {
        Ok(claimed) => claimed,
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
    };
    let (blob, first) = match claimed {
        Claimed::Redirect(blob) => {
            write_sidecar(&sidecar, &link.canonical, &blob, sha256, None)?;
            (Some(blob), None)
        }
        Claimed::Direct(response) => (None, Some(response)),
    };
    let download = Download::fresh(output.to_owned(), false, blob, sha256, first, sink);
    finish_download(client, download, quiet).await
}

/// No `-o` (or `-o DIR`): the file name comes from the server. A sidecar in the directory for
/// the same link means an earlier run was interrupted: resume it.
async fn to_directory(
    client: &Client,
    (url, link): &(Url, ShareLink),
    recipient: &Recipient<'_>,
    dir: Option<&Path>,
    quiet: bool,
) -> Result<PathBuf> {
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
        return resume(client, &output, link, saved, recipient, quiet).await;
    }
    if let Some(opened) = &recipient.open(client, link).await? {
        // The sender's name, through the same checks as a name from the server.
        let name = Filename::parse(&opened.metadata.name)
            .map_or_else(|_| link.id.to_string(), |name| name.as_str().to_owned());
        let output = free_path(dir, &name);
        let part = with_suffix(&output, ".part");
        let sink = Sink::create(&part).await?;
        let download = sealed_download(client, link, opened, &output, true, &part, sink).await?;
        return finish_download(client, download, quiet).await;
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
            None,
        )?;
    }
    let download = Download::fresh(output, true, blob, sha256, first, sink);
    finish_download(client, download, quiet).await
}

/// Continues an interrupted download from its `.part` with the stored blob URL; no claim.
async fn resume(
    client: &Client,
    output: &Path,
    link: &ShareLink,
    saved: Sidecar,
    recipient: &Recipient<'_>,
    quiet: bool,
) -> Result<PathBuf> {
    let part = with_suffix(output, ".part");
    let (sink, have) = match &saved.sealed {
        None => Sink::append(&part).await?,
        Some(record) => {
            // The .part holds the plaintext of whole records; the download goes on from the
            // first record it lacks (the last one again if all arrived).
            let opened = recipient.reopen(link, record)?;
            let records = layout::record_count(layout::plain_len(record.sealed_len)?);
            let held = std::fs::metadata(&part).map_or(0, |metadata| metadata.len());
            let next = (held / RECORD_SIZE as u64).min(records - 1);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&part)
                .and_then(|file| file.set_len(next * RECORD_SIZE as u64))
                .with_context(|| format!("cannot resume {}", part.display()))?;
            let (sink, _) = Sink::append(&part).await?;
            let sink = Sink::opening(sink, opened.keys, record.sealed_len, next)?;
            (sink, layout::sealed_offset(next))
        }
    };
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

/// Claims an encrypted share (its metadata already opened) and sets up the download of its
/// ciphertext into `sink`, opened on the way.
async fn sealed_download(
    client: &Client,
    link: &ShareLink,
    opened: &Opened,
    output: &Path,
    rename_if_taken: bool,
    part: &Path,
    sink: Sink,
) -> Result<Download> {
    let blob = match sealed::claim(client, link, opened).await {
        Ok(blob) => blob,
        Err(error) => {
            let _ = std::fs::remove_file(part);
            return Err(error);
        }
    };
    write_sidecar(
        &with_suffix(output, SIDECAR_SUFFIX),
        &link.canonical,
        &blob,
        None,
        Some(&opened.record),
    )?;
    let sink = Sink::opening(sink, opened.keys.clone(), opened.sealed_len, 0)?;
    let download = Download::fresh(
        output.to_owned(),
        rename_if_taken,
        Some(blob),
        None,
        None,
        sink,
    );
    Ok(download)
}

impl Download {
    /// A download that starts from byte 0 right after the claim.
    fn fresh(
        output: PathBuf,
        rename_if_taken: bool,
        blob: Option<Url>,
        sha256: Option<Sha256Digest>,
        first: Option<Response>,
        sink: Sink,
    ) -> Self {
        Self {
            output,
            rename_if_taken,
            resumed: false,
            blob,
            sha256,
            first,
            sink,
            have: 0,
        }
    }
}

/// Runs the transfer into `<output>.part`, then moves it into place and removes the sidecar.
/// On failure or Ctrl-C the partial file is flushed and kept when it can be resumed.
async fn finish_download(client: &Client, download: Download, quiet: bool) -> Result<PathBuf> {
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
        result = async {
            transfer(client, blob.as_ref(), first, &mut sink, have, quiet).await?;
            sink.complete().await
        } => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Err(error) = result {
        let (error, fatal) = split_fatal(error);
        let flushed = sink.finish().await;
        if error.is::<Damaged>() {
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(&sidecar);
            return Err(error.context(format!(
                "the download is not the file that was sent (damaged or tampered with); \
                 nothing was written to {}",
                output.display()
            )));
        }
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
    Ok(output)
}
