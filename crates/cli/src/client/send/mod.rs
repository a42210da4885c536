//! `once send`: one file, several files or folders (packed into one ZIP on the fly), or
//! standard input (`-`). It asks the server for a share and an upload ticket (or, with `--to`,
//! starts an upload to someone's request), sends the bytes where the ticket says (the server
//! itself or presigned bucket URLs; in parts when the file is larger than one part or its size
//! is unknown), reports the upload complete when the ticket asks for it, and prints the
//! one-time link. A multipart upload keeps a resume record, so running the same command again
//! after an interruption sends only the parts the storage does not hold yet.

mod parts;
mod record;
mod sealed;
mod source;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use indicatif::ProgressBar;
use once_api::routes;
use once_api::{
    CompleteShare, NewEncryption, NewRequestUpload, NewShare, OpenRequest, RequestUploadTicket,
    ShareView, UploadTicket,
};
use once_domain::{Filename, Note};
use once_seal::{Keys, PasswordParams, RequestKeyPair, SealError, Secret, b64u, layout};
use reqwest::Method;
use reqwest::header::CONTENT_LENGTH;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use url::Url;

use super::config::{Client, ensure_success};
use super::encryption::{
    Metadata, PasswordSource, params_from_wire, params_to_wire, read_password,
};
use super::link::RequestLink;
use super::{LARGE_FILE, byte_progress, describe_time, print_qr};
use crate::SendArgs;
use parts::{PartUpload, SentParts};
use record::{RecordFile, UploadRecord};
use source::{ByteStream, Source, check_inputs, read_head};

/// A pipe that ends within this many bytes is sent like a file (its size and checksum known
/// before the upload); a longer one goes in parts of unknown total size.
const STDIN_HEAD: usize = 8 * 1024 * 1024;

/// Where the upload goes and what to say when it is done.
enum Destination {
    /// A share of ours (needs the key).
    Share,
    /// Someone's upload request: `POST` to its `uploads` URL starts our upload, no key needed.
    /// `encrypted` when it takes only uploads sealed to the key in its link.
    Request {
        link: Box<RequestLink>,
        encrypted: bool,
    },
}

pub async fn run(args: SendArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    check_inputs(&args.files)?;
    let destination = match &args.to {
        Some(url) => {
            // Checked before a large file is read: these belong to the requester.
            if args.downloads != 1 || args.expires.is_some() {
                bail!(
                    "--downloads and --expires are the requester's to choose; leave them out with --to"
                );
            }
            if args.note.is_some() {
                bail!("--note is for the recipients of your own shares; leave it out with --to");
            }
            let link = super::link::request_link(url)?;
            let encrypted = request_takes_encrypted(&client, &link, &args).await?;
            Destination::Request {
                link: Box::new(link),
                encrypted,
            }
        }
        None => {
            // Fail on a missing key before spending minutes hashing a large file.
            client.settings.require_key()?;
            Destination::Share
        }
    };
    let encrypt = match &destination {
        Destination::Share => !args.no_encrypt,
        Destination::Request { encrypted, .. } => *encrypted,
    };
    // Asked for before a large file is hashed, so nobody waits for a prompt.
    let password = match password_source(&args)? {
        Some(source) => Some(read_password(source)?),
        None => None,
    };
    // Checked before a large file is hashed; the server checks it again.
    let note = Note::parse_optional(args.note.as_deref()).map_err(|error| anyhow!("{error}"))?;
    let (source, default_name) = prepare(&args).await?;
    let raw_name = args.name.clone().unwrap_or(default_name);
    let filename = Filename::parse(&raw_name)
        .map_err(|error| anyhow!("{error}: choose another with --name"))?;

    // A short pipe is read whole first and then sent like a file.
    let mut head = Bytes::new();
    let mut stream: Option<ByteStream> = None;
    let mut head_ended = false;
    if let Source::Stdin = &source {
        let mut input = source.stream()?;
        let (bytes, ended) = read_head(&mut input, STDIN_HEAD).await?;
        head = bytes;
        head_ended = ended;
        stream = Some(input);
    }
    let content_type = match &source {
        Source::Archive { .. } => Some("application/zip"),
        _ => guess_content_type(filename.as_str()),
    };

    let destination_key = match &destination {
        Destination::Share => client.settings.server.clone(),
        Destination::Request { link, .. } => link.uploads.to_string(),
    };
    let record_file = match source.identity() {
        Some(identity) => RecordFile::for_input(&destination_key, &identity),
        None => RecordFile::none(),
    };
    let mut saved = record_file.load();
    let sealing = if encrypt {
        let (sealing, fits) = match &destination {
            Destination::Request { link, .. } => Sealing::for_request(
                saved.as_ref(),
                link.recipient
                    .as_deref()
                    .context("the upload URL has no key")?,
            )?,
            Destination::Share => Sealing::for_send(
                saved.as_ref(),
                password.as_ref().map(|password| password.as_str()),
            )?,
        };
        if !fits {
            saved = None;
        }
        Some(sealing)
    } else {
        if saved
            .as_ref()
            .is_some_and(|saved| saved.secret.is_some() || saved.ephemeral.is_some())
        {
            // An interrupted encrypted send of this input: --no-encrypt starts afresh.
            saved = None;
        }
        None
    };
    if let Some(saved) = saved
        && let Some(done) = resume(
            &client,
            &args,
            &source,
            saved,
            &record_file,
            sealing.as_ref(),
        )
        .await?
    {
        return finish(&args, done);
    }

    let keys = sealing.as_ref().map(|sealing| &sealing.keys);
    let (size, sha256) = match (&source, keys) {
        (Source::Stdin, None) if head_ended => (
            Some(head.len() as u64),
            Some(hex::encode(Sha256::digest(&head))),
        ),
        (Source::Stdin, Some(keys)) if head_ended => {
            head = sealed::seal_bytes(keys.clone(), &head);
            (
                Some(head.len() as u64),
                Some(hex::encode(Sha256::digest(&head))),
            )
        }
        (Source::Stdin, None) => (None, None),
        (Source::Stdin, Some(keys)) => {
            // The bytes read ahead go first into the sealed stream.
            let rest = stream.take().context("standard input is gone")?;
            let first = futures::stream::once(std::future::ready(Ok(std::mem::take(&mut head))));
            stream = Some(sealed::seal_stream(
                keys.clone(),
                Box::pin(first.chain(rest)),
            ));
            (None, None)
        }
        (Source::File { size, sha256, .. }, None) => (Some(*size), Some(sha256.clone())),
        (Source::File { path, size, .. }, Some(keys)) => {
            let bar = if *size >= LARGE_FILE {
                byte_progress(Some(*size), 0, args.quiet, "encrypting")
            } else {
                ProgressBar::hidden()
            };
            let digest = sealed::sealed_sha256(path, keys, *size, bar).await?;
            (Some(layout::sealed_len(*size)), Some(digest))
        }
        (Source::Archive { .. }, _) => (upload_size(&source, keys), None),
    };

    // What names the file, sealed for the recipients (or the requester) alone.
    let metadata = Metadata {
        name: filename.as_str().to_owned(),
        content_type: content_type
            .unwrap_or(once_domain::share::DEFAULT_CONTENT_TYPE)
            .to_owned(),
        size: size.and_then(|sealed| layout::plain_len(sealed).ok()),
        note: note.as_ref().map(|note| note.as_str().to_owned()),
        contents: source.contents(),
    };
    let (ticket, done) = match &destination {
        Destination::Share => {
            let request = match &sealing {
                None => NewShare {
                    filename: filename.as_str().to_owned(),
                    size,
                    max_downloads: Some(args.downloads),
                    expires_in: args.expires.map(whole_seconds),
                    sha256: sha256.clone(),
                    content_type: content_type.map(str::to_owned),
                    upload_expires_in: None,
                    contents: source.contents(),
                    note: note.as_ref().map(|note| note.as_str().to_owned()),
                    encryption: None,
                },
                Some(sealing) => {
                    NewShare {
                        // What names the file travels sealed; the server calls it `encrypted`.
                        filename: String::new(),
                        size,
                        max_downloads: Some(args.downloads),
                        expires_in: args.expires.map(whole_seconds),
                        sha256: sha256.clone(),
                        content_type: None,
                        upload_expires_in: None,
                        contents: None,
                        note: None,
                        encryption: Some(sealing.new_encryption(&metadata)?),
                    }
                }
            };
            let mut created: ShareView = client
                .send_json(
                    client.api(Method::POST, "/api/v1/shares")?.json(&request),
                    "cannot create the share",
                )
                .await?;
            let ticket = created
                .upload
                .clone()
                .context("the server created the share but sent no upload ticket")?;
            if let Some(sealing) = &sealing {
                created.url = sealing.link(&created.url);
            }
            (ticket, Done::Link(Box::new(created)))
        }
        Destination::Request { link, .. } => {
            let request = match &sealing {
                None => NewRequestUpload {
                    filename: Some(filename.as_str().to_owned()),
                    size,
                    content_type: content_type.map(str::to_owned),
                    sha256: sha256.clone(),
                    contents: source.contents(),
                    encryption: None,
                },
                Some(sealing) => NewRequestUpload {
                    // The name, type and listing travel sealed, for the requester alone.
                    filename: None,
                    size,
                    content_type: None,
                    sha256: sha256.clone(),
                    contents: None,
                    encryption: Some(sealing.new_encryption(&metadata)?),
                },
            };
            let started: RequestUploadTicket = client
                .send_json(
                    client.http().post(link.uploads.as_str()).json(&request),
                    "the upload URL did not take the upload",
                )
                .await?;
            (started.upload, Done::Uploaded(started.filename))
        }
    };

    let with_key = matches!(destination, Destination::Share);
    match &ticket.multipart {
        None => {
            let body = match &source {
                Source::File { path, .. } if keys.is_none() => SingleBody::File(path.clone()),
                Source::File { .. } | Source::Archive { .. } => {
                    SingleBody::Stream(upload_stream(&source, keys)?)
                }
                // A pipe that fit in what was read ahead; a longer one has no size to send
                // in one request.
                Source::Stdin if size.is_some() => SingleBody::Bytes(head.clone()),
                Source::Stdin => {
                    bail!("the server asked for one request for an upload of unknown size")
                }
            };
            drop(stream);
            upload(&client, &ticket, body, size.unwrap_or(0), args.quiet).await?;
            if let Some(complete) = &ticket.complete_url {
                let url = ticket_url(&client, complete, &done, routes::share_complete)?;
                report_complete(&client, &url, with_key, &CompleteShare::default()).await?;
            }
        }
        Some(multipart) => {
            let mut record = UploadRecord {
                link: match &done {
                    Done::Link(view) => view.url.clone(),
                    Done::Uploaded(_) => String::new(),
                },
                share_id: match &done {
                    Done::Link(view) => Some(view.id.clone()),
                    Done::Uploaded(_) => None,
                },
                parts_url: ticket_url(&client, &multipart.parts_url, &done, routes::share_parts)?
                    .to_string(),
                complete_url: ticket_url(
                    &client,
                    ticket
                        .complete_url
                        .as_deref()
                        .context("the multipart ticket has no completion URL")?,
                    &done,
                    routes::share_complete,
                )?
                .to_string(),
                with_key,
                part_size: multipart.part_size,
                size: multipart.size,
                part_urls: multipart
                    .parts
                    .iter()
                    .map(|part| (part.number, part.url.clone()))
                    .collect(),
                sent: Default::default(),
                done_message: match &done {
                    Done::Uploaded(name) => Some(name.clone()),
                    Done::Link(_) => None,
                },
                secret: None,
                password: None,
                claim_key: None,
                ephemeral: None,
                recipient: None,
            };
            if let Some(sealing) = &sealing {
                sealing.note_in(&mut record);
            }
            if multipart.size != size {
                bail!("the server's ticket is for another size than the upload");
            }
            record_file.save(&record)?;
            let upload = PartUpload {
                client: &client,
                record: Mutex::new(record),
                record_file: &record_file,
                stored: Vec::new(),
                listed: Vec::new(),
            };
            let input = match stream {
                Some(stream) => Some(stream),
                None if matches!(source, Source::File { .. }) => None,
                None => Some(upload_stream(&source, keys)?),
            };
            send_and_complete(
                &upload,
                &source,
                keys,
                input,
                head,
                sha256.is_none(),
                args.quiet,
            )
            .await?;
            record_file.remove();
        }
    }
    finish(&args, done)
}

/// What to tell the user at the end.
enum Done {
    Link(Box<ShareView>),
    /// The request's file name: the link is the requester's, not ours.
    Uploaded(String),
}

fn finish(args: &SendArgs, done: Done) -> Result<()> {
    match done {
        Done::Link(created) => {
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
        }
        Done::Uploaded(name) => {
            println!("Uploaded {name}. The person who asked for it can now download it.");
        }
    }
    Ok(())
}

/// Sends the parts (all, or those the storage lacks) and reports the upload complete.
async fn send_and_complete(
    upload: &PartUpload<'_>,
    source: &Source,
    keys: Option<&Keys>,
    input: Option<ByteStream>,
    first: Bytes,
    report_sha256: bool,
    quiet: bool,
) -> Result<SentParts> {
    // Parts already stored count as they are passed over, so the bar starts at zero.
    let bar = byte_progress(upload_size(source, keys), 0, quiet, "uploading");
    let sent = match (source, input) {
        (Source::File { path, size, .. }, None) => match keys {
            Some(keys) => {
                let sealed = layout::sealed_len(*size);
                upload
                    .send_file(path, sealed, Some((keys, *size)), &bar)
                    .await
            }
            None => upload.send_file(path, *size, None, &bar).await,
        },
        (_, Some(input)) => upload.send_stream(input, first, &bar).await,
        (_, None) => Err(anyhow!("nothing to read the upload from")),
    };
    bar.finish_and_clear();
    let sent = sent?;
    let (complete_url, with_key) = {
        let record = upload.record.lock().expect("record lock");
        (record.complete_url.clone(), record.with_key)
    };
    let body = CompleteShare {
        parts: sent.parts.clone(),
        sha256: sent.sha256.clone().filter(|_| report_sha256),
    };
    report_complete(upload.client, &Url::parse(&complete_url)?, with_key, &body).await?;
    tracing::debug!(sent_bytes = sent.sent_bytes, "upload complete");
    Ok(sent)
}

/// Picks up an interrupted upload from its record: asks the server which parts it holds and
/// sends the rest. Returns None when the record is of no use (the upload expired, or is not
/// there any more), so a fresh upload starts; a finished one is reported as done.
async fn resume(
    client: &Client,
    args: &SendArgs,
    source: &Source,
    saved: UploadRecord,
    record_file: &RecordFile,
    sealing: Option<&Sealing>,
) -> Result<Option<Done>> {
    let keys = sealing.map(|sealing| &sealing.keys);
    // The server says whether the upload still takes parts (its window plus a grace the
    // client does not know), so only a record of another size is dropped here.
    if saved.size != upload_size(source, keys) {
        record_file.remove();
        return Ok(None);
    }
    let upload = PartUpload {
        client,
        record: Mutex::new(saved.clone()),
        record_file,
        stored: Vec::new(),
        listed: Vec::new(),
    };
    let held = match upload.stored_parts().await {
        Ok(held) => held,
        Err(error) => {
            // A share whose upload completed after all (the first run died before printing
            // the link) shows as published: report it instead of sending again.
            if let Some(view) = published_share(client, &saved, sealing).await {
                record_file.remove();
                return Ok(Some(Done::Link(Box::new(view))));
            }
            if !args.quiet {
                eprintln!("cannot resume the earlier upload ({error:#}); starting over");
            }
            record_file.remove();
            return Ok(None);
        }
    };
    // Only parts this client sent and the storage still holds with the same tag count.
    let stored: Vec<(u16, String)> = held
        .parts
        .iter()
        .filter(|part| {
            saved
                .sent
                .get(&part.number)
                .is_some_and(|etag| etag.trim_matches('"') == part.etag.trim_matches('"'))
        })
        .map(|part| (part.number, part.etag.trim_matches('"').to_owned()))
        .collect();
    let stored_bytes: u64 = held
        .parts
        .iter()
        .filter(|part| stored.iter().any(|(number, _)| *number == part.number))
        .map(|part| part.size)
        .sum();
    if !args.quiet {
        eprintln!(
            "resuming an earlier upload: {} parts ({}) already stored",
            stored.len(),
            super::units::human_size(stored_bytes)
        );
    }
    let listed = held
        .parts
        .iter()
        .map(|part| {
            (
                part.number,
                part.size,
                part.etag.trim_matches('"').to_owned(),
            )
        })
        .collect();
    let upload = PartUpload {
        stored,
        listed,
        ..upload
    };
    let input = match source {
        Source::File { .. } => None,
        _ => Some(upload_stream(source, keys)?),
    };
    send_and_complete(
        &upload,
        source,
        keys,
        input,
        Bytes::new(),
        matches!(source, Source::Archive { .. }),
        args.quiet,
    )
    .await?;
    record_file.remove();
    Ok(Some(
        match saved.share_id.as_ref().filter(|_| !saved.link.is_empty()) {
            Some(_) => match published_share(client, &saved, sealing).await {
                Some(view) => Done::Link(Box::new(view)),
                None => bail!("the upload completed but the share cannot be read back"),
            },
            None => Done::Uploaded(saved.done_message.unwrap_or_default()),
        },
    ))
}

/// The share of a record, if it is published; its link carries the secret of an encrypted one.
async fn published_share(
    client: &Client,
    saved: &UploadRecord,
    sealing: Option<&Sealing>,
) -> Option<ShareView> {
    let id = saved.share_id.as_deref()?;
    let view: ShareView = client
        .send_json(
            client
                .api(Method::GET, &format!("/api/v1/shares/{id}"))
                .ok()?,
            "cannot read the share",
        )
        .await
        .ok()?;
    let mut view = (view.state == "ready").then_some(view)?;
    if let Some(sealing) = sealing {
        view.url = sealing.link(&view.url);
    }
    Some(view)
}

/// How many bytes go to the storage: the input's, or its ciphertext's when it is sealed.
fn upload_size(source: &Source, keys: Option<&Keys>) -> Option<u64> {
    let size = source.size()?;
    Some(match keys {
        Some(_) => layout::sealed_len(size),
        None => size,
    })
}

/// The bytes that go to the storage, from the start: the input, sealed when `keys` are given.
fn upload_stream(source: &Source, keys: Option<&Keys>) -> Result<ByteStream> {
    let input = source.stream()?;
    Ok(match keys {
        Some(keys) => sealed::seal_stream(keys.clone(), input),
        None => input,
    })
}

/// The keys an upload is sealed with and what its link and resume record keep of them.
struct Sealing {
    to: SealedFor,
    keys: Keys,
}

enum SealedFor {
    /// A share of ours: the link's secret, and the password's parameters when it has one.
    Share {
        secret: Secret,
        password: Option<PasswordParams>,
    },
    /// Someone's encrypted upload request: a fresh X25519 key pair of ours (`e`, `E`) sealed to
    /// the requester's public key `R` from the request link.
    Request {
        ephemeral: RequestKeyPair,
        recipient: [u8; 32],
    },
}

impl Sealing {
    /// A fresh secret (and salt, with a password), or the ones of the interrupted send in
    /// `saved`, so a resumed send seals the same bytes. Says whether `saved` can be resumed.
    fn for_send(saved: Option<&UploadRecord>, password: Option<&str>) -> Result<(Sealing, bool)> {
        if let Some(saved) = saved
            && let Some(fragment) = &saved.secret
            && saved.password.is_some() == password.is_some()
        {
            let secret = Secret::from_fragment(fragment)
                .map_err(|error| anyhow!("the resume record is damaged: {error}"))?;
            let params = saved.password.as_ref().map(params_from_wire).transpose()?;
            let keys = Keys::for_share(&secret, password.zip(params.as_ref()))
                .map_err(|error| anyhow!("{error}"))?;
            if saved.claim_key.as_deref() != Some(b64u(&keys.claim_key()).as_str()) {
                bail!(
                    "this is not the password of the interrupted send of this file; give the \
                     same password to resume it"
                );
            }
            let sealing = Sealing {
                to: SealedFor::Share {
                    secret,
                    password: params,
                },
                keys,
            };
            return Ok((sealing, true));
        }
        let secret = Secret::generate();
        let params = password.map(|_| PasswordParams::generate());
        let keys = Keys::for_share(&secret, password.zip(params.as_ref()))
            .map_err(|error| anyhow!("{error}"))?;
        let sealing = Sealing {
            to: SealedFor::Share {
                secret,
                password: params,
            },
            keys,
        };
        Ok((sealing, false))
    }

    /// Sealed to the requester whose public key is `recipient` (the request link's fragment),
    /// with the ephemeral key of the interrupted send in `saved` when it was to the same key,
    /// so a resumed send seals the same bytes. Says whether `saved` can be resumed.
    fn for_request(saved: Option<&UploadRecord>, recipient: &str) -> Result<(Sealing, bool)> {
        let resumable = saved
            .filter(|saved| saved.recipient.as_deref() == Some(recipient))
            .and_then(|saved| saved.ephemeral.as_deref())
            .map(|ephemeral| {
                once_seal::from_b64u(ephemeral)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
                    .context("the resume record is damaged: its ephemeral key is malformed")
            })
            .transpose()?;
        let fits = resumable.is_some();
        let ephemeral = match resumable {
            Some(private) => RequestKeyPair::from_bytes(private),
            None => RequestKeyPair::generate(),
        };
        let sealed = once_seal::seal_to_recipient_with(recipient, ephemeral.to_bytes()).map_err(
            |error| match error {
                SealError::InvalidFragment => anyhow!(
                    "the upload URL's key (the part after '#') is damaged: it must be 43 \
                     characters; copy the whole link again"
                ),
                error => anyhow!("cannot encrypt to this upload request: {error}"),
            },
        )?;
        let sealing = Sealing {
            to: SealedFor::Request {
                ephemeral,
                recipient: sealed.recipient_public,
            },
            keys: sealed.keys,
        };
        Ok((sealing, fits))
    }

    /// What the server keeps of the encryption: the claim key, the sealed metadata, and the
    /// password's public parameters or the request upload's public keys.
    fn new_encryption(&self, metadata: &Metadata) -> Result<NewEncryption> {
        let (password, ephemeral_key, recipient_key) = match &self.to {
            SealedFor::Share { password, .. } => {
                (password.as_ref().map(params_to_wire), None, None)
            }
            SealedFor::Request {
                ephemeral,
                recipient,
            } => (
                None,
                Some(ephemeral.public_fragment()),
                Some(b64u(recipient)),
            ),
        };
        Ok(NewEncryption {
            scheme: once_seal::SCHEME.to_owned(),
            claim_key: b64u(&self.keys.claim_key()),
            sealed_meta: self.keys.seal_metadata(&serde_json::to_vec(metadata)?),
            password,
            ephemeral_key,
            recipient_key,
        })
    }

    /// `URL#SECRET` for a share of ours.
    fn link(&self, url: &str) -> String {
        match &self.to {
            SealedFor::Share { secret, .. } => format!("{url}#{}", secret.to_fragment()),
            SealedFor::Request { .. } => url.to_owned(),
        }
    }

    /// Fills in what a resumed send needs to seal the same bytes again.
    fn note_in(&self, record: &mut UploadRecord) {
        record.claim_key = Some(b64u(&self.keys.claim_key()));
        match &self.to {
            SealedFor::Share { secret, password } => {
                record.secret = Some(secret.to_fragment());
                record.password = password.as_ref().map(params_to_wire);
            }
            SealedFor::Request {
                ephemeral,
                recipient,
            } => {
                record.ephemeral = Some(b64u(&ephemeral.to_bytes()));
                record.recipient = Some(b64u(recipient));
            }
        }
    }
}

/// Whether the upload request takes only encrypted uploads, asked before a large file is
/// read; refuses what cannot work (a closed request, an encrypted one without its key or with
/// `--no-encrypt`) with what to do instead.
async fn request_takes_encrypted(
    client: &Client,
    link: &RequestLink,
    args: &SendArgs,
) -> Result<bool> {
    let open: OpenRequest = client
        .send_json(
            client
                .http()
                .get(link.page.as_str())
                .header(reqwest::header::ACCEPT, "application/json"),
            "the upload URL does not take an upload",
        )
        .await?;
    match (open.encrypted, &link.recipient) {
        (true, _) if args.no_encrypt => bail!(
            "this upload request takes only end-to-end encrypted uploads; leave out --no-encrypt"
        ),
        (true, None) => bail!(
            "this upload request takes only end-to-end encrypted uploads, and the URL has lost \
             its key (the part after '#'); copy the whole URL again"
        ),
        (false, Some(_)) if !args.quiet => {
            eprintln!("note: this upload request is not encrypted; the key after '#' is not used");
        }
        _ => {}
    }
    Ok(open.encrypted)
}

/// Where the password of a new share comes from, if it has one.
fn password_source(args: &SendArgs) -> Result<Option<PasswordSource<'_>>> {
    let wanted = args.password || args.password_file.is_some();
    if wanted && args.to.is_some() {
        // The requester's key alone opens an upload to a request.
        bail!("--password and --password-file are for your own shares; leave them out with --to");
    }
    if wanted && args.no_encrypt {
        bail!("a password is part of the encryption key; leave out --no-encrypt to use one");
    }
    Ok(match &args.password_file {
        Some(path) => Some(PasswordSource::File(path)),
        None if args.password => Some(PasswordSource::Prompt { confirm: true }),
        None => None,
    })
}

/// Looks at the inputs: one regular file is sent as it is, `-` is standard input, anything
/// else (several files, a folder) is packed into one archive. Returns the source and the name
/// it is shared under unless `--name` says otherwise.
async fn prepare(args: &SendArgs) -> Result<(Source, String)> {
    let inputs = &args.files;
    if inputs.len() == 1 && inputs[0].as_os_str() == "-" {
        return Ok((Source::Stdin, "stdin.bin".to_owned()));
    }
    if inputs.len() == 1 {
        let path = inputs[0].as_path();
        let metadata = tokio::fs::metadata(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_file() {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .with_context(|| format!("{} has no file name; pass --name", path.display()))?;
            let (size, sha256) = hash_file(path, metadata.len(), args.quiet).await?;
            return Ok((
                Source::File {
                    path: path.to_owned(),
                    size,
                    sha256,
                },
                name,
            ));
        }
        if !metadata.is_dir() {
            bail!("{} is neither a file nor a folder", path.display());
        }
    }
    let plan = super::archive::Plan::scan(inputs)?;
    let name = match inputs.as_slice() {
        [only] => format!("{}.zip", archive_base_name(only)),
        _ => "files.zip".to_owned(),
    };
    Ok((Source::Archive { plan }, name))
}

/// `photos` for `photos/`, `.`, or `/home/a/photos`; `files` when there is no usable name.
fn archive_base_name(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    absolute
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "files".to_owned())
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
async fn report_complete(
    client: &Client,
    url: &Url,
    with_key: bool,
    body: &CompleteShare,
) -> Result<()> {
    for attempt in 1..=COMPLETE_ATTEMPTS {
        let request = if with_key {
            client.api_at(Method::POST, url.as_str())?
        } else {
            client.http().post(url.as_str())
        };
        let sent = client.send(request.json(body)).await;
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
        // A retry refused because the upload is complete: the earlier attempt did it and
        // only its answer was lost. For an upload to a request the answer is 403 instead: the
        // upload's URLs die with the request's fulfilment.
        let done_before = response.status() == reqwest::StatusCode::CONFLICT
            || (!with_key && response.status() == reqwest::StatusCode::FORBIDDEN);
        if attempt > 1 && done_before {
            tracing::debug!("a retried completion found the upload already complete");
            if !with_key {
                eprintln!(
                    "the connection broke before the server confirmed the upload; it most likely \
                     arrived (the upload URL no longer takes it)"
                );
            }
            return Ok(());
        }
        return ensure_success(response)
            .await
            .map(|_| ())
            .context("the server did not accept the finished upload");
    }
    unreachable!("the last attempt returns")
}

/// One of the ticket's own URLs (its parts or completion URL). The bearer key only ever goes
/// to our own server: for a share, a URL elsewhere is replaced by the contract's route
/// (`route(share id)`) on the configured server. An upload to a request sends no key, so its
/// URLs are taken as they are.
fn ticket_url(client: &Client, given: &str, done: &Done, route: fn(&str) -> String) -> Result<Url> {
    let url = resolve(client, given)?;
    let Done::Link(view) = done else {
        return Ok(url);
    };
    if client.is_our_server(&url) {
        return Ok(url);
    }
    let id = once_domain::ShareId::parse(&view.id)
        .map_err(|_| anyhow!("the server returned a malformed share id {:?}", view.id))?;
    resolve(client, &route(id.as_str()))
}

/// What a single-request upload sends.
enum SingleBody {
    File(PathBuf),
    Bytes(Bytes),
    /// An archive being packed: exactly the planned size, or an error.
    Stream(ByteStream),
}

/// Streams the file to the ticket's URL with the ticket's method and headers, with an explicit
/// Content-Length (a streamed body would otherwise go out chunked, which presigned PUTs
/// refuse). No credentials are sent: the ticket URL is itself the authorization.
async fn upload(
    client: &Client,
    ticket: &UploadTicket,
    body: SingleBody,
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
    let bar = byte_progress(Some(size), 0, quiet, "uploading");
    let body = match body {
        SingleBody::File(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            let chunks = ReaderStream::with_capacity(file.take(size), 256 * 1024);
            reqwest::Body::wrap_stream(counted(chunks, size, bar.clone()))
        }
        SingleBody::Bytes(bytes) => {
            bar.inc(bytes.len() as u64);
            reqwest::Body::from(bytes)
        }
        SingleBody::Stream(stream) => {
            reqwest::Body::wrap_stream(counted(stream, size, bar.clone()))
        }
    };

    let mut request = client.http().request(method, url).body(body);
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

/// Attempts at reporting a finished upload (waiting 1, 2, 4 s in between).
const COMPLETE_ATTEMPTS: u32 = 4;

/// The file's chunks as a body stream of exactly `size` bytes that advances `bar`. The reader
/// is already limited to `size` (a file that grew is cut there); a file that shrank fails the
/// upload instead of leaving the server waiting for bytes that never come.
pub(super) fn counted<S, B>(
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
