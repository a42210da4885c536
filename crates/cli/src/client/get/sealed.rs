//! Opening and claiming an end-to-end encrypted share (`docs/encryption.md`): `GET
//! /s/{id}/seal`, the keys from the link's secret (and the password), the sealed metadata
//! opened before anything is claimed (a wrong key or password fails here and costs nothing),
//! then the claim with the proof of the key.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use once_api::{ClaimTicket, ErrorBody, SealedShare};
use once_seal::{Keys, RECORD_SIZE, SealError, Secret, layout};
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use url::Url;

use super::super::config::{Client, error_from_response};
use super::super::encryption::{Metadata, PasswordSource, params_from_wire, read_password};
use super::super::link::ShareLink;
use super::super::request_keys::RequestKeys;
use super::record::SealedRecord;

/// An encrypted share whose metadata opened: the keys, what names the file, and the
/// ciphertext's length.
pub(super) struct Opened {
    pub keys: Keys,
    pub metadata: Metadata,
    pub sealed_len: u64,
    challenge: String,
    challenge_expires_at: time::OffsetDateTime,
    /// What the download record keeps to resume.
    pub record: SealedRecord,
}

/// The share's seal, or None when the share is not encrypted (`404 not_encrypted`).
pub(super) async fn fetch_seal(client: &Client, link: &ShareLink) -> Result<Option<SealedShare>> {
    let response = client
        .send(
            client
                .http()
                .get(link.seal_url())
                .header(ACCEPT, "application/json"),
        )
        .await?;
    if response.status() == StatusCode::NOT_FOUND {
        let body = response.bytes().await.unwrap_or_default();
        // `not_found` is an unknown route: a server from before encryption, whose shares are
        // all plain.
        if serde_json::from_slice::<ErrorBody>(&body)
            .is_ok_and(|body| matches!(body.error.code.as_str(), "not_encrypted" | "not_found"))
        {
            return Ok(None);
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|body| format!("{} ({}, HTTP 404)", body.error.message, body.error.code))
            .unwrap_or_else(|_| "not found (HTTP 404)".to_owned());
        bail!("cannot download the share: {message}");
    }
    if !response.status().is_success() {
        return Err(error_from_response(response)
            .await
            .context("cannot download the share"));
    }
    response
        .json()
        .await
        .map(Some)
        .context("the server's description of the encrypted share is not the expected JSON")
}

/// What opens an encrypted share: the link's secret, or (for an upload to one of our encrypted
/// requests) the private key `once request` kept.
pub(super) enum KeySource<'a> {
    Secret(&'a str),
    RequestKeys,
}

/// Derives the keys and opens the metadata; claims nothing.
pub(super) fn open(
    seal: SealedShare,
    source: KeySource<'_>,
    password_file: Option<&Path>,
) -> Result<Opened> {
    open_record(&seal, source, password_file)
}

/// The keys of an interrupted download, checked against its record's sealed metadata.
pub(super) fn reopen(
    record: &SealedRecord,
    source: KeySource<'_>,
    password_file: Option<&Path>,
) -> Result<Opened> {
    let seal = SealedShare {
        scheme: once_seal::SCHEME.to_owned(),
        size: Some(record.sealed_len),
        record_size: RECORD_SIZE as u32,
        sealed_meta: record.sealed_meta.clone(),
        password: record.password.clone(),
        ephemeral_key: record.ephemeral_key.clone(),
        recipient_key: record.recipient_key.clone(),
        challenge: String::new(),
        challenge_expires_at: time::OffsetDateTime::UNIX_EPOCH,
        downloads_left: 0,
        expires_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    open_record(&seal, source, password_file)
}

fn open_record(
    seal: &SealedShare,
    source: KeySource<'_>,
    password_file: Option<&Path>,
) -> Result<Opened> {
    if seal.scheme != once_seal::SCHEME {
        bail!(
            "the share is encrypted with {:?}, which this once does not know; update once",
            seal.scheme
        );
    }
    if seal.record_size as usize != RECORD_SIZE {
        bail!(
            "the server describes records of {} bytes; once-v1 has {RECORD_SIZE}",
            seal.record_size
        );
    }
    let sealed_len = seal
        .size
        .context("the share's upload has not finished yet; try again later")?;
    let plain_len = layout::plain_len(sealed_len)
        .map_err(|_| anyhow!("the server reports an impossible encrypted size {sealed_len}"))?;
    // An upload to a request opens with the request's private key whatever the link holds.
    let keys = match (&seal.recipient_key, &seal.ephemeral_key, source) {
        (Some(recipient), Some(ephemeral), _) => request_upload_keys(recipient, ephemeral)?,
        (Some(_), None, _) => {
            bail!("the server describes an upload to a request without its ephemeral key")
        }
        (None, _, KeySource::Secret(secret)) => share_keys(seal, secret, password_file)?,
        (None, _, KeySource::RequestKeys) => bail!(
            "the link is incomplete: the share is end-to-end encrypted and its key (the part \
             after '#') is missing; copy the whole link again (nothing was downloaded)"
        ),
    };
    let metadata = match keys.open_metadata(&seal.sealed_meta) {
        Ok(metadata) => metadata,
        Err(SealError::WrongKey) if seal.password.is_some() => {
            bail!("wrong password (nothing was downloaded; the link still works, try again)")
        }
        Err(SealError::WrongKey) if seal.recipient_key.is_some() => bail!(
            "the private key of the upload request does not open this upload: the uploader \
             sealed it wrongly or the server changed it (nothing was downloaded)"
        ),
        Err(SealError::WrongKey) => bail!(
            "the link's key (the part after '#') does not open this share: the link is wrong or \
             damaged (nothing was downloaded)"
        ),
        Err(error) => bail!("the share's sealed description is malformed: {error}"),
    };
    let metadata: Metadata = serde_json::from_slice(&metadata)
        .context("the share's sealed description is not the expected JSON")?;
    if metadata.size.is_some_and(|size| size != plain_len) {
        bail!(
            "the server's encrypted size does not match the sender's file size; nothing was \
             downloaded"
        );
    }
    Ok(Opened {
        keys,
        metadata,
        sealed_len,
        challenge: seal.challenge.clone(),
        challenge_expires_at: seal.challenge_expires_at,
        record: SealedRecord {
            sealed_len,
            sealed_meta: seal.sealed_meta.clone(),
            password: seal.password.clone(),
            recipient_key: seal.recipient_key.clone(),
            ephemeral_key: seal.ephemeral_key.clone(),
        },
    })
}

/// The keys of an upload to one of our encrypted requests, from the private key kept for it.
fn request_upload_keys(recipient: &str, ephemeral: &str) -> Result<Keys> {
    let pair = RequestKeys::of_user()?.find(recipient)?;
    let ephemeral = once_seal::from_b64u(ephemeral)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .context("the server reports a malformed ephemeral key for this share")?;
    pair.keys_for_upload(&ephemeral).map_err(|error| {
        anyhow!("the share's ephemeral key is refused: {error} (nothing was downloaded)")
    })
}

/// The keys of a share from its link's secret (and password).
fn share_keys(seal: &SealedShare, secret: &str, password_file: Option<&Path>) -> Result<Keys> {
    let secret = Secret::from_fragment(secret).map_err(|_| {
        anyhow!(
            "the link's key (the part after '#') is damaged: it must be 43 characters; copy the \
             whole link again (nothing was downloaded)"
        )
    })?;
    let params = seal.password.as_ref().map(params_from_wire).transpose()?;
    let password = match &params {
        Some(_) => Some(read_password(match password_file {
            Some(path) => PasswordSource::File(path),
            None => PasswordSource::Prompt { confirm: false },
        })?),
        None => None,
    };
    Keys::for_share(
        &secret,
        password
            .as_ref()
            .map(|password| password.as_str())
            .zip(params.as_ref()),
    )
    .map_err(|error| anyhow!("{error}"))
}

/// Claims the share with the proof of its key; returns the download URL.
pub(super) async fn claim(client: &Client, link: &ShareLink, opened: &Opened) -> Result<Url> {
    // A challenge lives minutes; a password prompt left open (or a download record reopened)
    // outlives it, so a stale one is fetched afresh rather than failing the claim.
    let fresh_enough =
        opened.challenge_expires_at > time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
    let challenge = if fresh_enough {
        opened.challenge.clone()
    } else {
        fetch_seal(client, link)
            .await?
            .context("the share is no longer encrypted; nothing was downloaded")?
            .challenge
    };
    let proof = opened.keys.claim_proof(link.id.as_str(), &challenge);
    let response = client
        .send(
            client
                .http()
                .post(link.canonical.clone())
                .header(ACCEPT, "application/json")
                .header(once_api::headers::PROOF, proof),
        )
        .await?;
    if !response.status().is_success() {
        return Err(error_from_response(response)
            .await
            .context("cannot download the share"));
    }
    let ticket: ClaimTicket = response
        .json()
        .await
        .context("the server's claim answer is not the expected JSON")?;
    link.canonical
        .join(&ticket.download_url)
        .with_context(|| format!("the server gave an invalid URL {}", ticket.download_url))
}
