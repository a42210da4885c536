//! Multipart uploads, the same against every store: each part goes to its own URL (the
//! bucket's, or the server's for the embedded store), signed for its exact length; a failed part
//! is retried on its own, with a fresh URL when the old one was refused; every accepted part is
//! written to the resume record at once, so an interrupted run loses at most the parts in
//! flight. A file is sent a few parts at a time, each read straight from its range of the file;
//! a stream (an archive being packed, standard input) is sent part by part from a buffer of one
//! part, in constant memory.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use indicatif::ProgressBar;
use once_api::{CompletedPart, PartLength, PartTicket, PartTickets, RefreshParts, StoredParts};
use once_seal::Keys;
use reqwest::Method;
use reqwest::header::CONTENT_LENGTH;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::record::{RecordFile, UploadRecord};
use super::sealed::{read_sealed_range, sealed_range_body};
use super::source::ByteStream;
use crate::client::config::{Client, ensure_success};

/// Parts in flight at once for a file: enough to fill a link, few enough to keep memory and
/// sockets small.
const PARALLEL_PARTS: usize = 4;
/// Attempts per part before the upload gives up.
const PART_ATTEMPTS: u32 = 4;
/// Part URLs asked for in one call.
const URL_BATCH: u16 = 100;

/// A multipart upload under way: where its parts go and what is already stored.
pub(super) struct PartUpload<'a> {
    pub client: &'a Client,
    pub record: Mutex<UploadRecord>,
    pub record_file: &'a RecordFile,
    /// Parts the storage holds already with bytes this client sent (from the resume record).
    pub stored: Vec<(u16, String)>,
    /// Every part the storage listed when this run resumed, as (number, size, tag): a part
    /// whose answer the interrupted run never saw is still used when its tag is that of the
    /// local bytes.
    pub listed: Vec<(u16, u64, String)>,
}

/// The tag a store gives these bytes, judged by the form of `like`: the embedded store's hex
/// SHA-256, or S3's hex MD5. None for any other kind of tag.
fn local_tag(bytes: &[u8], like: &str) -> Option<String> {
    match like.len() {
        64 => Some(hex::encode(Sha256::digest(bytes))),
        32 => {
            use md5::Digest as _;
            Some(hex::encode(md5::Md5::digest(bytes)))
        }
        _ => None,
    }
}

/// What the upload gives the completion call.
pub(super) struct SentParts {
    pub parts: Vec<CompletedPart>,
    /// The SHA-256 of everything sent, where it was computed on the way (streams).
    pub sha256: Option<String>,
    /// Bytes actually sent in this run.
    pub sent_bytes: u64,
}

impl PartUpload<'_> {
    /// A request to one of the upload's own URLs: with the key for a share of ours, which
    /// only ever goes to the configured server (a ticket or a record naming another host is
    /// refused, never followed with the key).
    fn request(&self, method: Method, url: &str) -> Result<reqwest::RequestBuilder> {
        let with_key = self.record.lock().expect("record lock").with_key;
        if !with_key {
            return Ok(self.client.http().request(method, url));
        }
        let parsed = url::Url::parse(url).with_context(|| format!("invalid upload URL {url}"))?;
        if !self.client.is_our_server(&parsed) {
            bail!(
                "the upload's URL {} is not on the configured server {}; not sending the key there",
                parsed.origin().ascii_serialization(),
                self.client.settings.server
            );
        }
        self.client.api_at(method, url)
    }

    fn part_size(&self) -> u64 {
        self.record.lock().expect("record lock").part_size
    }

    /// What the server holds of this upload now.
    pub(super) async fn stored_parts(&self) -> Result<StoredParts> {
        let url = self.record.lock().expect("record lock").parts_url.clone();
        self.client
            .send_json(
                self.request(Method::GET, &url)?,
                "cannot list the parts already uploaded",
            )
            .await
    }

    /// URLs for the given parts: (number, length) for an upload of unknown size, numbers
    /// alone for one of declared size.
    async fn fetch_urls(&self, wanted: RefreshParts) -> Result<Vec<PartTicket>> {
        let url = self.record.lock().expect("record lock").parts_url.clone();
        let answer: PartTickets = self
            .client
            .send_json(
                self.request(Method::POST, &url)?.json(&wanted),
                "cannot get upload URLs for the parts",
            )
            .await?;
        let mut record = self.record.lock().expect("record lock");
        for part in &answer.parts {
            record.part_urls.insert(part.number, part.url.clone());
        }
        Ok(answer.parts)
    }

    /// The URL of part `number` of `length` bytes: the ticket's or a fresh one.
    async fn url_for(&self, number: u16, length: u64, fresh: bool) -> Result<String> {
        let known = {
            let record = self.record.lock().expect("record lock");
            if fresh {
                None
            } else {
                record.part_urls.get(&number).cloned()
            }
        };
        if let Some(url) = known {
            return Ok(url);
        }
        let declared = self.record.lock().expect("record lock").size.is_some();
        let wanted = if declared {
            let last = self.part_count().unwrap_or(number);
            let batch_end = number.saturating_add(URL_BATCH - 1).min(last);
            RefreshParts {
                part_numbers: if fresh {
                    vec![number]
                } else {
                    (number..=batch_end).collect()
                },
                parts: Vec::new(),
            }
        } else {
            RefreshParts {
                part_numbers: Vec::new(),
                parts: vec![PartLength {
                    number,
                    size: length,
                }],
            }
        };
        self.fetch_urls(wanted)
            .await?
            .into_iter()
            .find(|part| part.number == number)
            .map(|part| part.url)
            .with_context(|| format!("the server gave no URL for part {number}"))
    }

    fn part_count(&self) -> Option<u16> {
        let record = self.record.lock().expect("record lock");
        record
            .size
            .map(|size| u16::try_from(size.div_ceil(record.part_size).max(1)).unwrap_or(u16::MAX))
    }

    fn already_stored(&self, number: u16) -> Option<String> {
        self.stored
            .iter()
            .find(|(stored, _)| *stored == number)
            .map(|(_, etag)| etag.clone())
    }

    /// The listed tag of part `number` if the storage holds one of `length` bytes.
    fn listed_tag(&self, number: u16, length: u64) -> Option<&str> {
        self.listed
            .iter()
            .find(|(listed, size, etag)| *listed == number && *size == length && !etag.is_empty())
            .map(|(_, _, etag)| etag.as_str())
    }

    /// Whether the storage already holds exactly `bytes` as part `number`.
    fn holds(&self, number: u16, bytes: &[u8]) -> Option<String> {
        let listed = self.listed_tag(number, bytes.len() as u64)?;
        let local = local_tag(bytes, listed)?;
        (local == listed).then_some(local)
    }

    /// Notes an accepted part in the resume record, on disk at once.
    fn remember(&self, number: u16, etag: &str) {
        let snapshot = {
            let mut record = self.record.lock().expect("record lock");
            record.sent.insert(number, etag.to_owned());
            record.clone()
        };
        if let Err(error) = self.record_file.save(&snapshot) {
            tracing::warn!(%error, "cannot update the resume record");
        }
    }

    /// Sends one part, retrying; `body` makes the part's bytes afresh for every attempt.
    async fn send_part<F, Fut>(&self, number: u16, length: u64, body: F) -> Result<String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Body>>,
    {
        let mut last_error = None;
        let mut fresh = false;
        for attempt in 1..=PART_ATTEMPTS {
            let url = self.url_for(number, length, fresh).await?;
            let request = self
                .client
                .http()
                .put(&url)
                .header(CONTENT_LENGTH, length)
                .body(body().await?);
            match self.client.send(request).await {
                Ok(response) if response.status().is_success() => {
                    let etag = response
                        .headers()
                        .get("etag")
                        .and_then(|value| value.to_str().ok())
                        .context("the storage answered a part without an ETag")?
                        .trim_matches('"')
                        .to_owned();
                    self.remember(number, &etag);
                    return Ok(etag);
                }
                Ok(response) => {
                    let status = response.status();
                    // An expired or refused URL: ask for a new one. A part that already holds
                    // other bytes (409) or a closed upload will not get better by retrying.
                    fresh = status == reqwest::StatusCode::FORBIDDEN;
                    let error = ensure_success(response)
                        .await
                        .err()
                        .unwrap_or_else(|| anyhow!("HTTP {status}"));
                    if status == reqwest::StatusCode::CONFLICT
                        || status == reqwest::StatusCode::PAYLOAD_TOO_LARGE
                    {
                        return Err(error.context(format!("part {number} was refused")));
                    }
                    last_error = Some(error);
                }
                Err(error) => last_error = Some(error),
            }
            if attempt < PART_ATTEMPTS {
                tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                    .await;
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!("part {number} could not be uploaded")))
    }

    /// Sends the parts of a file the storage does not hold yet, a few at a time, each read
    /// from its range of the file. `size` is what is uploaded: for an encrypted share
    /// (`sealed` gives its keys and the file's own length) the ciphertext's length, and each
    /// part is sealed from the records its range overlaps.
    pub(super) async fn send_file(
        &self,
        path: &std::path::Path,
        size: u64,
        sealed: Option<(&Keys, u64)>,
        bar: &ProgressBar,
    ) -> Result<SentParts> {
        let part_size = self.part_size();
        let count = u16::try_from(size.div_ceil(part_size).max(1))
            .map_err(|_| anyhow!("the file needs more than 65,535 parts"))?;
        let sent_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let results: Vec<Result<CompletedPart>> = futures::stream::iter(1..=count)
            .map(|number| {
                let sent_bytes = sent_bytes.clone();
                async move {
                    let offset = u64::from(number - 1) * part_size;
                    let length = part_size.min(size - offset);
                    let known = match self.already_stored(number) {
                        Some(etag) => Some(etag),
                        None if self.listed_tag(number, length).is_some() => {
                            let bytes = match sealed {
                                Some((keys, plain_len)) => {
                                    read_sealed_range(path, keys, plain_len, offset, length).await?
                                }
                                None => read_range(path, offset, length).await?.into(),
                            };
                            self.holds(number, &bytes)
                        }
                        None => None,
                    };
                    if let Some(etag) = known {
                        bar.inc(length);
                        return Ok(CompletedPart {
                            part_number: number,
                            etag,
                        });
                    }
                    let etag = match sealed {
                        Some((keys, plain_len)) => {
                            self.send_part(number, length, || {
                                sealed_range_body(path, keys, plain_len, offset, length)
                            })
                            .await?
                        }
                        None => {
                            self.send_part(number, length, || file_range(path, offset, length))
                                .await?
                        }
                    };
                    sent_bytes.fetch_add(length, std::sync::atomic::Ordering::Relaxed);
                    bar.inc(length);
                    Ok(CompletedPart {
                        part_number: number,
                        etag,
                    })
                }
            })
            .buffer_unordered(PARALLEL_PARTS)
            .collect()
            .await;
        let mut parts = results.into_iter().collect::<Result<Vec<_>>>()?;
        parts.sort_by_key(|part| part.part_number);
        Ok(SentParts {
            parts,
            sha256: None,
            sent_bytes: sent_bytes.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Sends a stream part by part: each part is gathered in a buffer (so a failed attempt can
    /// be retried), hashed on the way, and skipped when the storage already holds it (the
    /// stream is the same on every run: an archive of unchanged files). `first` holds bytes
    /// already read from the stream.
    pub(super) async fn send_stream(
        &self,
        mut stream: ByteStream,
        first: Bytes,
        bar: &ProgressBar,
    ) -> Result<SentParts> {
        let part_size = usize::try_from(self.part_size()).context("the part size is too large")?;
        let declared = self.record.lock().expect("record lock").size;
        let mut pending = first;
        let mut hasher = Sha256::new();
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut sent_bytes = 0u64;
        let mut ended = false;
        for number in 1u16.. {
            let mut buffer = BytesMut::with_capacity(part_size.min(8 << 20));
            while buffer.len() < part_size {
                if pending.is_empty() {
                    if ended {
                        break;
                    }
                    match stream.next().await {
                        Some(chunk) => pending = chunk.context("cannot read the input")?,
                        None => {
                            ended = true;
                            continue;
                        }
                    }
                }
                let take = pending.len().min(part_size - buffer.len());
                buffer.extend_from_slice(&pending.split_to(take));
            }
            // No empty trailing part, except for an empty upload's one part.
            if buffer.is_empty() && number > 1 {
                break;
            }
            let bytes = buffer.freeze();
            hasher.update(&bytes);
            let length = bytes.len() as u64;
            total += length;
            if declared.is_some_and(|size| total > size) {
                bail!("the input grew while it was being sent; send it once it is complete");
            }
            let known = self
                .already_stored(number)
                .or_else(|| self.holds(number, &bytes));
            let etag = match known {
                Some(etag) => etag,
                None => {
                    let body = bytes.clone();
                    let etag = self
                        .send_part(number, length, || {
                            let body = body.clone();
                            async move { Ok(reqwest::Body::from(body)) }
                        })
                        .await?;
                    sent_bytes += length;
                    etag
                }
            };
            bar.inc(length);
            parts.push(CompletedPart {
                part_number: number,
                etag,
            });
            if bytes.len() < part_size || (ended && pending.is_empty()) {
                break;
            }
        }
        if let Some(size) = declared
            && total != size
        {
            bail!(
                "the input changed while it was being sent ({total} of {size} bytes); send it once it is complete"
            );
        }
        Ok(SentParts {
            parts,
            sha256: Some(hex::encode(hasher.finalize())),
            sent_bytes,
        })
    }
}

/// `length` bytes from `offset` of the file, read whole (one part, to compare with what the
/// storage holds).
async fn read_range(path: &std::path::Path, offset: u64, length: u64) -> Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    file.take(length).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// A body of `length` bytes from `offset` of the file; fails if the file turns out shorter.
async fn file_range(path: &std::path::Path, offset: u64, length: u64) -> Result<reqwest::Body> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let chunks = ReaderStream::with_capacity(file.take(length), 256 * 1024);
    Ok(reqwest::Body::wrap_stream(super::counted(
        chunks,
        length,
        ProgressBar::hidden(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_goes_to_an_upload_url_on_another_host() {
        let args = crate::ClientArgs {
            server: Some("http://127.0.0.1:9".into()),
            key: Some(format!("{}.{}", "0".repeat(16), "A".repeat(43))),
            client_config: Some(std::path::PathBuf::from("/dev/null")),
        };
        let client = Client::from_args(&args).unwrap();
        let record_file = RecordFile::none();
        let upload = |parts_url: &str, with_key: bool| PartUpload {
            client: &client,
            record: Mutex::new(UploadRecord {
                link: String::new(),
                share_id: None,
                parts_url: parts_url.into(),
                complete_url: String::new(),
                with_key,
                part_size: 1,
                size: Some(1),
                part_urls: Default::default(),
                sent: Default::default(),
                done_message: None,
                secret: None,
                password: None,
                claim_key: None,
                ephemeral: None,
                recipient: None,
            }),
            record_file: &record_file,
            stored: Vec::new(),
            listed: Vec::new(),
        };
        let refused = upload("http://elsewhere.example/api/v1/shares/x/parts", true).request(
            Method::GET,
            "http://elsewhere.example/api/v1/shares/x/parts",
        );
        assert!(refused.is_err());
        let ours = upload("http://127.0.0.1:9/api/v1/shares/x/parts", true)
            .request(Method::GET, "http://127.0.0.1:9/api/v1/shares/x/parts")
            .unwrap()
            .build()
            .unwrap();
        assert!(ours.headers().contains_key("authorization"));
        // An upload to someone's request carries no key at all, wherever it goes.
        let keyless = upload("http://bucket.example/x", false)
            .request(Method::GET, "http://bucket.example/x")
            .unwrap()
            .build()
            .unwrap();
        assert!(!keyless.headers().contains_key("authorization"));
    }

    #[test]
    fn local_tags_take_the_form_of_the_stores_tags() {
        let sha = hex::encode(Sha256::digest(b"part"));
        assert_eq!(local_tag(b"part", &sha), Some(sha.clone()));
        let md5 = {
            use md5::Digest as _;
            hex::encode(md5::Md5::digest(b"part"))
        };
        assert_eq!(local_tag(b"part", &"0".repeat(32)), Some(md5));
        assert_eq!(local_tag(b"part", "opaque-tag"), None);
    }
}
