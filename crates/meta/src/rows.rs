//! Row decoding shared by both stores. SQLite and PostgreSQL hold the same columns with the
//! same types as far as sqlx is concerned (TEXT as strings, INTEGER/BIGINT as `i64`,
//! BLOB/BYTEA as bytes; see the migrations), so one set of raw row structs decodes a row of
//! either database. Each raw struct is `#[derive(sqlx::FromRow)]` over the column names and
//! does no checking; its `TryFrom` turns it into the domain type, reporting a value the domain
//! rejects as [`MetaError::Corrupt`]. The statements are in `sql.rs`, one text for both.

use std::time::Duration;

use once_domain::{
    BlobKey, Encryption, Filename, Instant, KeyId, KeyRecord, Note, RequestId, RequesterName,
    Sha256Digest, Share, ShareId, ShareState, UploadRequest, UploadToken,
};
use sqlx::{FromRow, Row};

use crate::{AuditRecord, MetaError, MetaResult, ReapCandidate, StoredKey};

/// The row a conditional `UPDATE … WHERE id = … RETURNING` wrote, if it matched.
///
/// Such a statement must be run with `fetch_all`, never `fetch_optional`: sqlx's SQLite
/// driver stops stepping a statement after the first row `fetch_optional` asked for and resets
/// it, and in autocommit mode that reset is where SQLite commits, so a failed commit (a full
/// disk) is discarded there and the caller saw a row that was rolled back. Stepping to the end
/// makes the commit's outcome the statement's outcome.
pub(crate) fn written_row<R>(rows: Vec<R>) -> MetaResult<Option<R>> {
    let mut rows = rows.into_iter();
    let row = rows.next();
    if rows.next().is_some() {
        return Err(MetaError::Corrupt(
            "an update by primary key wrote more than one row".into(),
        ));
    }
    Ok(row)
}

/// An instant as stored: unix seconds, so that both stores compare times the same way.
pub(crate) fn secs(instant: Instant) -> i64 {
    instant.unix_timestamp()
}

/// A size or a count of seconds as stored. Both schemas keep them in a signed 64-bit column;
/// a value beyond `i64::MAX` (no real size or duration) is stored as `i64::MAX` rather than
/// failing the write.
pub(crate) fn size_param(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// A stored instant (unix seconds) back as an [`Instant`].
pub(crate) fn instant(seconds: i64) -> MetaResult<Instant> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| MetaError::Corrupt(format!("timestamp {seconds} out of range")))
}

/// A stored optional instant back as an optional [`Instant`].
fn opt_instant(seconds: Option<i64>) -> MetaResult<Option<Instant>> {
    seconds.map(instant).transpose()
}

/// The error for a stored value the domain rejects; `what` names the column.
fn corrupt(what: &str) -> MetaError {
    MetaError::Corrupt(what.to_owned())
}

/// A stored count back as a `u32`; anything outside its range is corrupt.
pub(crate) fn to_u32(value: i64, what: &str) -> MetaResult<u32> {
    u32::try_from(value).map_err(|_| corrupt(what))
}

/// A stored size or duration back as a `u64`; a negative value is corrupt.
fn to_u64(value: i64, what: &str) -> MetaResult<u64> {
    u64::try_from(value).map_err(|_| corrupt(what))
}

/// Parses an optional text column with a domain parser, reporting a rejected value as
/// `corrupt(what)`.
fn parse_opt<T, E>(
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
    what: &str,
) -> MetaResult<Option<T>> {
    text.map(parse).transpose().map_err(|_| corrupt(what))
}

/// A stored note or requester name back through its domain parser. The store only ever holds
/// parsed, non-blank text, so text the parser refuses or reads as blank is corrupt.
fn parse_text<T>(
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<Option<T>, once_domain::DomainError>,
    what: &str,
) -> MetaResult<Option<T>> {
    match text {
        None => Ok(None),
        Some(text) => match parse(text) {
            Ok(Some(value)) => Ok(Some(value)),
            _ => Err(corrupt(what)),
        },
    }
}

/// A share's encryption as its column holds it: JSON text, NULL for a plain share.
pub(crate) fn encryption_text(encryption: Option<&Encryption>) -> MetaResult<Option<String>> {
    encryption
        .map(serde_json::to_string)
        .transpose()
        .map_err(|error| MetaError::Corrupt(format!("encryption: {error}")))
}

/// The stored encryption back, checked by the domain again: a value it would not accept from
/// a sender is not handed to a recipient either.
fn parse_encryption(text: Option<&str>) -> MetaResult<Option<Encryption>> {
    text.map(|text| {
        serde_json::from_str::<Encryption>(text)
            .ok()
            .and_then(|encryption| encryption.recheck().ok())
            .ok_or_else(|| corrupt("encryption"))
    })
    .transpose()
}

/// A row of the share columns (`share_columns!` in `sql.rs`) as a [`Share`].
pub(crate) fn share_from_row<'r, R: Row>(row: &'r R) -> MetaResult<Share>
where
    ShareRow<'r>: FromRow<'r, R>,
{
    Share::try_from(ShareRow::from_row(row)?)
}

/// A row of `upload_requests` as an [`UploadRequest`].
pub(crate) fn request_from_row<'r, R: Row>(row: &'r R) -> MetaResult<UploadRequest>
where
    RequestRow<'r>: FromRow<'r, R>,
{
    UploadRequest::try_from(RequestRow::from_row(row)?)
}

/// A row of `api_keys` as a [`StoredKey`] (the record and its secrets).
pub(crate) fn key_from_row<'r, R: Row>(row: &'r R) -> MetaResult<StoredKey>
where
    StoredKeyRow<'r>: FromRow<'r, R>,
{
    StoredKey::try_from(StoredKeyRow::from_row(row)?)
}

/// A row of `api_keys` as a [`KeyRecord`]; the secret columns are not read.
pub(crate) fn key_record_from_row<'r, R: Row>(row: &'r R) -> MetaResult<KeyRecord>
where
    KeyRecordRow<'r>: FromRow<'r, R>,
{
    KeyRecord::try_from(KeyRecordRow::from_row(row)?)
}

/// A row returned by the reaper's `RETURNING id, blob_key, upload_session` as a
/// [`ReapCandidate`].
pub(crate) fn reap_candidate_from_row<'r, R: Row>(row: &'r R) -> MetaResult<ReapCandidate>
where
    ReapCandidateRow<'r>: FromRow<'r, R>,
{
    ReapCandidate::try_from(ReapCandidateRow::from_row(row)?)
}

/// A row of `audit_events` as an [`AuditRecord`].
pub(crate) fn audit_from_row<'r, R: Row>(row: &'r R) -> MetaResult<AuditRecord>
where
    AuditRow<'r>: FromRow<'r, R>,
{
    AuditRecord::try_from(AuditRow::from_row(row)?)
}

/// A row of `audit_events`, as stored.
#[derive(FromRow)]
pub(crate) struct AuditRow<'r> {
    seq: i64,
    at: i64,
    kind: &'r str,
    owner_key: Option<&'r str>,
    share_id: Option<&'r str>,
    request_id: Option<&'r str>,
    key_id: Option<&'r str>,
    client: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl TryFrom<AuditRow<'_>> for AuditRecord {
    type Error = MetaError;

    fn try_from(row: AuditRow<'_>) -> MetaResult<Self> {
        Ok(AuditRecord {
            seq: to_u64(row.seq, "seq")?,
            event: once_domain::AuditEvent {
                at: instant(row.at)?,
                kind: once_domain::AuditKind::parse(row.kind).ok_or_else(|| corrupt("kind"))?,
                owner: parse_opt(row.owner_key, KeyId::parse, "owner_key")?,
                share: parse_opt(row.share_id, ShareId::parse, "share_id")?,
                request: parse_opt(row.request_id, RequestId::parse, "request_id")?,
                key: parse_opt(row.key_id, KeyId::parse, "key_id")?,
                client: row.client,
                user_agent: row.user_agent,
                detail: row.detail,
            },
        })
    }
}

/// The share columns of a `shares` row, as stored.
#[derive(FromRow)]
pub(crate) struct ShareRow<'r> {
    id: &'r str,
    owner_key: Option<&'r str>,
    filename: &'r str,
    content_type: String,
    size: Option<i64>,
    sha256: Option<Vec<u8>>,
    max_downloads: i64,
    downloads_left: i64,
    state: &'r str,
    created_at: i64,
    expires_at: i64,
    upload_expires_at: i64,
    published_at: Option<i64>,
    lease_until: Option<i64>,
    blob_key: Option<&'r str>,
    request_id: Option<&'r str>,
    upload_attempts: i64,
    preview_hits: i64,
    upload_session: Option<String>,
    blob_version: Option<String>,
    upload_token: Option<&'r str>,
    part_size: Option<i64>,
    contents: Option<String>,
    note: Option<&'r str>,
    encryption: Option<&'r str>,
}

impl TryFrom<ShareRow<'_>> for Share {
    type Error = MetaError;

    fn try_from(row: ShareRow<'_>) -> MetaResult<Self> {
        let sha256 = row
            .sha256
            .map(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).map(Sha256Digest))
            .transpose()
            .map_err(|_| corrupt("sha256"))?;
        Ok(Share {
            id: ShareId::parse(row.id).map_err(|_| corrupt("share id"))?,
            owner: parse_opt(row.owner_key, KeyId::parse, "owner key")?,
            filename: Filename::parse(row.filename).map_err(|_| corrupt("filename"))?,
            content_type: row.content_type,
            size: row.size.map(|size| to_u64(size, "size")).transpose()?,
            sha256,
            max_downloads: to_u32(row.max_downloads, "max_downloads")?,
            downloads_left: to_u32(row.downloads_left, "downloads_left")?,
            state: ShareState::parse(row.state).ok_or_else(|| corrupt("state"))?,
            created_at: instant(row.created_at)?,
            expires_at: instant(row.expires_at)?,
            upload_expires_at: instant(row.upload_expires_at)?,
            published_at: opt_instant(row.published_at)?,
            lease_until: opt_instant(row.lease_until)?,
            blob_key: parse_opt(row.blob_key, BlobKey::parse, "blob key")?,
            request_id: parse_opt(row.request_id, RequestId::parse, "request id")?,
            upload_attempts: to_u32(row.upload_attempts, "upload_attempts")?,
            preview_hits: to_u32(row.preview_hits, "preview_hits")?,
            upload_session: row.upload_session,
            upload_token: parse_opt(row.upload_token, UploadToken::parse, "upload token")?,
            part_size: row
                .part_size
                .map(|size| to_u64(size, "part_size"))
                .transpose()?,
            contents: row.contents,
            blob_version: row.blob_version,
            note: parse_text(row.note, Note::parse, "note")?,
            encryption: parse_encryption(row.encryption)?,
        })
    }
}

/// An `upload_requests` row, as stored.
#[derive(FromRow)]
pub(crate) struct RequestRow<'r> {
    id: &'r str,
    owner_key: &'r str,
    filename: Option<&'r str>,
    max_size: i64,
    max_downloads: i64,
    share_expires_in: i64,
    created_at: i64,
    expires_at: i64,
    share_id: Option<&'r str>,
    fulfilled_at: Option<i64>,
    note: Option<&'r str>,
    requester: Option<&'r str>,
    encrypted: i64,
}

impl TryFrom<RequestRow<'_>> for UploadRequest {
    type Error = MetaError;

    fn try_from(row: RequestRow<'_>) -> MetaResult<Self> {
        Ok(UploadRequest {
            id: RequestId::parse(row.id).map_err(|_| corrupt("request id"))?,
            owner: KeyId::parse(row.owner_key).map_err(|_| corrupt("owner key"))?,
            filename: parse_opt(row.filename, Filename::parse, "filename")?,
            max_size: to_u64(row.max_size, "max_size")?,
            max_downloads: to_u32(row.max_downloads, "max_downloads")?,
            share_expires_in: Duration::from_secs(to_u64(
                row.share_expires_in,
                "share_expires_in",
            )?),
            created_at: instant(row.created_at)?,
            expires_at: instant(row.expires_at)?,
            share_id: parse_opt(row.share_id, ShareId::parse, "share id")?,
            fulfilled_at: opt_instant(row.fulfilled_at)?,
            note: parse_text(row.note, Note::parse, "note")?,
            requester: parse_text(row.requester, RequesterName::parse, "requester")?,
            encrypted: match row.encrypted {
                0 => false,
                1 => true,
                _ => return Err(corrupt("encrypted")),
            },
        })
    }
}

/// The columns of an `api_keys` row that make up a [`KeyRecord`], as stored.
#[derive(FromRow)]
pub(crate) struct KeyRecordRow<'r> {
    id: &'r str,
    name: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRecordRow<'_>> for KeyRecord {
    type Error = MetaError;

    fn try_from(row: KeyRecordRow<'_>) -> MetaResult<Self> {
        Ok(KeyRecord {
            id: KeyId::parse(row.id).map_err(|_| corrupt("key id"))?,
            name: row.name,
            created_at: instant(row.created_at)?,
            revoked_at: opt_instant(row.revoked_at)?,
        })
    }
}

/// A whole `api_keys` row, as stored: the record and the secrets authentication needs.
#[derive(FromRow)]
pub(crate) struct StoredKeyRow<'r> {
    #[sqlx(flatten)]
    record: KeyRecordRow<'r>,
    secret_hash: Vec<u8>,
    sealed_secret: Vec<u8>,
}

impl TryFrom<StoredKeyRow<'_>> for StoredKey {
    type Error = MetaError;

    fn try_from(row: StoredKeyRow<'_>) -> MetaResult<Self> {
        Ok(StoredKey {
            record: KeyRecord::try_from(row.record)?,
            secret_hash: row.secret_hash,
            sealed_secret: row.sealed_secret,
        })
    }
}

/// What the reaper's batch returns of each share it took, as stored.
#[derive(FromRow)]
pub(crate) struct ReapCandidateRow<'r> {
    id: &'r str,
    blob_key: Option<&'r str>,
    upload_session: Option<String>,
}

impl TryFrom<ReapCandidateRow<'_>> for ReapCandidate {
    type Error = MetaError;

    fn try_from(row: ReapCandidateRow<'_>) -> MetaResult<Self> {
        Ok(ReapCandidate {
            share_id: ShareId::parse(row.id).map_err(|_| corrupt("share id"))?,
            blob_key: parse_opt(row.blob_key, BlobKey::parse, "blob key")?,
            upload_session: row.upload_session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of a `MetaError::Corrupt`; panics on success or any other error.
    fn corrupt_message<T>(result: MetaResult<T>) -> String {
        match result {
            Err(MetaError::Corrupt(what)) => what,
            Err(other) => panic!("expected a corrupt row, got {other}"),
            Ok(_) => panic!("expected a corrupt row, got a value"),
        }
    }

    /// Breaks one column of a valid row.
    type Spoil<Row> = fn(&mut Row);

    struct Ids {
        share: String,
        request: String,
        key: String,
        blob: String,
        upload_token: String,
    }

    fn ids() -> Ids {
        Ids {
            share: ShareId::generate().as_str().to_owned(),
            request: RequestId::generate().as_str().to_owned(),
            key: KeyId::generate().as_str().to_owned(),
            blob: BlobKey::generate().as_str().to_owned(),
            upload_token: UploadToken::generate().as_str().to_owned(),
        }
    }

    fn share_row(ids: &Ids) -> ShareRow<'_> {
        ShareRow {
            id: &ids.share,
            owner_key: Some(&ids.key),
            filename: "report.pdf",
            content_type: "application/pdf".to_owned(),
            size: Some(1234),
            sha256: Some(vec![7; 32]),
            max_downloads: 3,
            downloads_left: 2,
            state: "ready",
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
            upload_expires_at: 1_700_003_600,
            published_at: Some(1_700_000_100),
            lease_until: None,
            blob_key: Some(&ids.blob),
            request_id: Some(&ids.request),
            upload_attempts: 1,
            preview_hits: 4,
            upload_session: None,
            blob_version: Some("v1".to_owned()),
            upload_token: Some(&ids.upload_token),
            part_size: Some(8 << 20),
            contents: Some("[]".to_owned()),
            note: Some("Hi,\n\tthe slides."),
            encryption: None,
        }
    }

    fn request_row(ids: &Ids) -> RequestRow<'_> {
        RequestRow {
            id: &ids.request,
            owner_key: &ids.key,
            filename: None,
            max_size: 1 << 20,
            max_downloads: 1,
            share_expires_in: 3600,
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
            share_id: Some(&ids.share),
            fulfilled_at: Some(1_700_000_500),
            note: Some("The scan, please."),
            requester: Some("Alice"),
            encrypted: 0,
        }
    }

    #[test]
    fn a_valid_share_row_converts() {
        let ids = ids();
        let share = Share::try_from(share_row(&ids)).unwrap();
        assert_eq!(share.id.as_str(), ids.share);
        assert_eq!(share.owner.unwrap().as_str(), ids.key);
        assert_eq!(share.filename.as_str(), "report.pdf");
        assert_eq!(share.size, Some(1234));
        assert_eq!(share.sha256, Some(Sha256Digest([7; 32])));
        assert_eq!((share.max_downloads, share.downloads_left), (3, 2));
        assert_eq!(share.state, ShareState::Ready);
        assert_eq!(secs(share.created_at), 1_700_000_000);
        assert_eq!(share.published_at.map(secs), Some(1_700_000_100));
        assert_eq!(share.lease_until, None);
        assert_eq!(share.blob_key.unwrap().as_str(), ids.blob);
        assert_eq!(share.request_id.unwrap().as_str(), ids.request);
        assert_eq!((share.upload_attempts, share.preview_hits), (1, 4));
        assert_eq!(share.blob_version.as_deref(), Some("v1"));
        assert_eq!(share.upload_token.unwrap().as_str(), ids.upload_token);
        assert_eq!(share.part_size, Some(8 << 20));
        assert_eq!(share.contents.as_deref(), Some("[]"));
        assert_eq!(
            share.note.as_ref().map(Note::as_str),
            Some("Hi,\n\tthe slides.")
        );
    }

    #[test]
    fn a_rejected_share_column_is_named() {
        let ids = ids();
        let cases: [(Spoil<ShareRow<'_>>, &str); 15] = [
            (|row| row.encryption = Some("{}"), "encryption"),
            (
                |row| {
                    row.encryption = Some(
                        r#"{"scheme":"once-v2","claim_key":"","sealed_meta":"","password":null,"ephemeral_key":null,"recipient_key":null}"#,
                    )
                },
                "encryption",
            ),
            (|row| row.note = Some("bell\u{7}"), "note"),
            (|row| row.note = Some("  "), "note"),
            (|row| row.sha256 = Some(vec![7; 31]), "sha256"),
            (|row| row.upload_token = Some("short"), "upload token"),
            (|row| row.part_size = Some(-1), "part_size"),
            (|row| row.id = "not-an-id", "share id"),
            (|row| row.owner_key = Some("KEY"), "owner key"),
            (|row| row.filename = "/", "filename"),
            (|row| row.size = Some(-1), "size"),
            (|row| row.downloads_left = -1, "downloads_left"),
            (
                |row| row.max_downloads = i64::from(u32::MAX) + 1,
                "max_downloads",
            ),
            (|row| row.state = "lost", "state"),
            (|row| row.blob_key = Some("one-token"), "blob key"),
        ];
        for (spoil, what) in cases {
            let mut row = share_row(&ids);
            spoil(&mut row);
            assert_eq!(corrupt_message(Share::try_from(row)), what);
        }
        let mut row = share_row(&ids);
        row.lease_until = Some(i64::MAX);
        assert_eq!(
            corrupt_message(Share::try_from(row)),
            format!("timestamp {} out of range", i64::MAX)
        );
    }

    #[test]
    fn request_rows_convert_and_name_rejected_columns() {
        let ids = ids();
        let request = UploadRequest::try_from(request_row(&ids)).unwrap();
        assert_eq!(request.id.as_str(), ids.request);
        assert_eq!(request.owner.as_str(), ids.key);
        assert_eq!(request.filename, None);
        assert_eq!(request.max_size, 1 << 20);
        assert_eq!(request.share_expires_in, Duration::from_secs(3600));
        assert_eq!(request.share_id.unwrap().as_str(), ids.share);
        assert_eq!(request.fulfilled_at.map(secs), Some(1_700_000_500));
        assert_eq!(
            request.note.as_ref().map(Note::as_str),
            Some("The scan, please.")
        );
        assert_eq!(
            request.requester.as_ref().map(RequesterName::as_str),
            Some("Alice")
        );

        let cases: [(Spoil<RequestRow<'_>>, &str); 7] = [
            (|row| row.encrypted = 2, "encrypted"),
            (|row| row.note = Some(""), "note"),
            (|row| row.requester = Some("two\nlines"), "requester"),
            (|row| row.id = "not-an-id", "request id"),
            (|row| row.max_size = -1, "max_size"),
            (|row| row.share_expires_in = -1, "share_expires_in"),
            (|row| row.share_id = Some("not-an-id"), "share id"),
        ];
        for (spoil, what) in cases {
            let mut row = request_row(&ids);
            spoil(&mut row);
            assert_eq!(corrupt_message(UploadRequest::try_from(row)), what);
        }
    }

    #[test]
    fn key_and_reap_rows_convert_and_name_rejected_columns() {
        let ids = ids();
        let key = StoredKey::try_from(StoredKeyRow {
            record: KeyRecordRow {
                id: &ids.key,
                name: "laptop".to_owned(),
                created_at: 1_700_000_000,
                revoked_at: None,
            },
            secret_hash: vec![1; 32],
            sealed_secret: vec![2; 60],
        })
        .unwrap();
        assert_eq!(key.record.id.as_str(), ids.key);
        assert_eq!(key.record.name, "laptop");
        assert_eq!((key.secret_hash.len(), key.sealed_secret.len()), (32, 60));
        let bad_key = KeyRecordRow {
            id: "KEY",
            name: "laptop".to_owned(),
            created_at: 1_700_000_000,
            revoked_at: None,
        };
        assert_eq!(corrupt_message(KeyRecord::try_from(bad_key)), "key id");

        let candidate = ReapCandidate::try_from(ReapCandidateRow {
            id: &ids.share,
            blob_key: None,
            upload_session: Some("upload-1".to_owned()),
        })
        .unwrap();
        assert_eq!(candidate.share_id.as_str(), ids.share);
        assert_eq!(candidate.blob_key, None);
        assert_eq!(candidate.upload_session.as_deref(), Some("upload-1"));
        let bad_candidate = ReapCandidateRow {
            id: &ids.share,
            blob_key: Some("one-token"),
            upload_session: None,
        };
        assert_eq!(
            corrupt_message(ReapCandidate::try_from(bad_candidate)),
            "blob key"
        );
    }
}
