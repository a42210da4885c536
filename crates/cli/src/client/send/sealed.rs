//! The ciphertext `once send` uploads for an end-to-end encrypted share (`docs/encryption.md`):
//! the input sealed in records of 64 KiB. Sealing is deterministic (a record's nonce comes from
//! its index), so any byte range of the ciphertext can be made again on its own: a part is
//! sealed from the records it overlaps, and a resumed send makes the same bytes as the first.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::ProgressBar;
use once_seal::{Keys, RECORD_SIZE, SEALED_RECORD_SIZE, StreamSealer, layout};
use sha2::{Digest, Sha256};

use super::source::ByteStream;

/// The input stream sealed on the fly, in constant memory (one record held back).
pub(super) fn seal_stream(keys: Keys, input: ByteStream) -> ByteStream {
    struct State {
        input: ByteStream,
        sealer: Option<StreamSealer>,
    }
    let state = State {
        input,
        sealer: Some(StreamSealer::new(keys)),
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            let sealer = state.sealer.as_mut()?;
            match state.input.next().await {
                Some(Ok(chunk)) => {
                    let mut out = Vec::with_capacity(chunk.len() + SEALED_RECORD_SIZE);
                    sealer.push(&chunk, &mut out);
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), state));
                    }
                }
                Some(Err(error)) => {
                    state.sealer = None;
                    return Some((Err(error), state));
                }
                None => {
                    let mut out = Vec::with_capacity(SEALED_RECORD_SIZE);
                    state.sealer.take()?.finish(&mut out);
                    return Some((Ok(Bytes::from(out)), state));
                }
            }
        }
    }))
}

/// Bytes held in memory, sealed whole (a short pipe).
pub(super) fn seal_bytes(keys: Keys, plaintext: &[u8]) -> Bytes {
    let mut sealer = StreamSealer::new(keys);
    let mut out = Vec::with_capacity(layout::sealed_len(plaintext.len() as u64) as usize);
    sealer.push(plaintext, &mut out);
    sealer.finish(&mut out);
    Bytes::from(out)
}

/// Bytes `offset..offset + length` of the ciphertext of a file of `plain_len` bytes, sealed
/// from the records that range overlaps. Fails when the file is shorter than it was.
pub(super) fn sealed_range(
    file: &mut std::fs::File,
    keys: &Keys,
    plain_len: u64,
    offset: u64,
    length: u64,
) -> std::io::Result<Vec<u8>> {
    let records = layout::record_count(plain_len);
    let srs = SEALED_RECORD_SIZE as u64;
    let first = offset / srs;
    let last = (offset + length).saturating_sub(1) / srs;
    let mut sealed = Vec::with_capacity(((last - first + 1) * srs) as usize);
    let mut plaintext = vec![0u8; RECORD_SIZE];
    for index in first..=last.min(records - 1) {
        let start = index * RECORD_SIZE as u64;
        let size = (plain_len - start).min(RECORD_SIZE as u64) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut plaintext[..size])?;
        sealed.extend_from_slice(&keys.seal_record(
            index,
            index == records - 1,
            &plaintext[..size],
        ));
    }
    let skip = (offset - first * srs) as usize;
    let end = skip + length as usize;
    if end > sealed.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the range is past the end of the ciphertext",
        ));
    }
    sealed.truncate(end);
    sealed.drain(..skip);
    Ok(sealed)
}

/// [`sealed_range`] of the file at `path`, on a blocking thread.
pub(super) async fn read_sealed_range(
    path: &Path,
    keys: &Keys,
    plain_len: u64,
    offset: u64,
    length: u64,
) -> Result<Bytes> {
    let path = path.to_owned();
    let keys = keys.clone();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        sealed_range(&mut file, &keys, plain_len, offset, length)
            .map(Bytes::from)
            .with_context(|| format!("cannot read {}", path.display()))
    })
    .await
    .context("the sealing task failed")?
}

/// The same bytes as [`sealed_range`], as a request body that reads and seals one record at a
/// time: a part in flight holds a record, not the whole part (parts are 64 MiB by default and
/// several go at once).
pub(super) async fn sealed_range_body(
    path: &Path,
    keys: &Keys,
    plain_len: u64,
    offset: u64,
    length: u64,
) -> Result<reqwest::Body> {
    let chunks = sealed_range_stream(path, keys, plain_len, offset, length).await?;
    Ok(reqwest::Body::wrap_stream(chunks))
}

async fn sealed_range_stream(
    path: &Path,
    keys: &Keys,
    plain_len: u64,
    offset: u64,
    length: u64,
) -> Result<impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    struct Cursor {
        file: tokio::fs::File,
        keys: Keys,
        record: u64,
        skip: usize,
        left: u64,
    }
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let records = layout::record_count(plain_len);
    let first = offset / SEALED_RECORD_SIZE as u64;
    let start = Cursor {
        file,
        keys: keys.clone(),
        record: first,
        skip: (offset - first * SEALED_RECORD_SIZE as u64) as usize,
        left: length,
    };
    let chunks = futures::stream::try_unfold(start, move |mut cursor| async move {
        if cursor.left == 0 {
            return Ok(None);
        }
        if cursor.record >= records {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the range is past the end of the ciphertext",
            ));
        }
        let at = cursor.record * RECORD_SIZE as u64;
        let size = (plain_len - at).min(RECORD_SIZE as u64) as usize;
        let mut plaintext = vec![0u8; size];
        cursor.file.seek(SeekFrom::Start(at)).await?;
        // A file that shrank since it was measured fails here instead of sealing short records.
        cursor.file.read_exact(&mut plaintext).await?;
        let sealed = Bytes::from(cursor.keys.seal_record(
            cursor.record,
            cursor.record == records - 1,
            &plaintext,
        ));
        let from = cursor.skip.min(sealed.len());
        let take = ((sealed.len() - from) as u64).min(cursor.left) as usize;
        cursor.skip = 0;
        cursor.left -= take as u64;
        cursor.record += 1;
        Ok(Some((sealed.slice(from..from + take), cursor)))
    });
    Ok(chunks)
}

/// The SHA-256 of the file's ciphertext, sealed in one pass and thrown away: the share is
/// created with the checksum of what the server will store.
pub(super) async fn sealed_sha256(
    path: &Path,
    keys: &Keys,
    plain_len: u64,
    bar: ProgressBar,
) -> Result<String> {
    let path = path.to_owned();
    let keys = keys.clone();
    tokio::task::spawn_blocking(move || -> Result<String> {
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut hasher = Sha256::new();
        let records = layout::record_count(plain_len);
        let mut plaintext = vec![0u8; RECORD_SIZE];
        let mut sealed = Vec::with_capacity(SEALED_RECORD_SIZE);
        for index in 0..records {
            let size = (plain_len - index * RECORD_SIZE as u64).min(RECORD_SIZE as u64) as usize;
            file.read_exact(&mut plaintext[..size])
                .with_context(|| format!("{} changed while it was being read", path.display()))?;
            sealed.clear();
            sealed.extend_from_slice(&keys.seal_record(
                index,
                index == records - 1,
                &plaintext[..size],
            ));
            hasher.update(&sealed);
            bar.inc(size as u64);
        }
        bar.finish_and_clear();
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .context("the sealing task failed")?
}

#[cfg(test)]
mod tests {
    use super::*;
    use once_seal::{Secret, StreamOpener};

    fn keys() -> Keys {
        Keys::for_share(&Secret::from_bytes([7; 32]), None).unwrap()
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn open(sealed: &[u8]) -> Vec<u8> {
        let mut opener = StreamOpener::new(keys(), sealed.len() as u64, 0).unwrap();
        let mut out = Vec::new();
        opener.push(sealed, &mut out).unwrap();
        opener.finish(&mut out).unwrap();
        out
    }

    async fn sealed_by_stream(input: &[u8], chunk: usize) -> Vec<u8> {
        let chunks: Vec<std::io::Result<Bytes>> = input
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream: ByteStream = Box::pin(futures::stream::iter(chunks));
        let mut sealed = Vec::new();
        let mut stream = seal_stream(keys(), stream);
        while let Some(chunk) = stream.next().await {
            sealed.extend_from_slice(&chunk.unwrap());
        }
        sealed
    }

    #[tokio::test]
    async fn a_sealed_stream_opens_with_once_seal_for_every_interesting_length() {
        for len in [
            0,
            1,
            RECORD_SIZE - 1,
            RECORD_SIZE,
            RECORD_SIZE + 1,
            3 * RECORD_SIZE + 5,
        ] {
            let input = plaintext(len);
            for chunk in [1000, RECORD_SIZE, 300_000] {
                let sealed = sealed_by_stream(&input, chunk).await;
                assert_eq!(sealed.len() as u64, layout::sealed_len(len as u64), "{len}");
                assert_eq!(open(&sealed), input, "{len} in chunks of {chunk}");
                assert_eq!(sealed, seal_bytes(keys(), &input).to_vec(), "{len}");
            }
        }
    }

    #[tokio::test]
    async fn parts_sealed_separately_concatenate_to_the_whole_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for len in [0, 1, RECORD_SIZE, RECORD_SIZE + 1, 5 * RECORD_SIZE + 123] {
            let input = plaintext(len);
            std::fs::write(&path, &input).unwrap();
            let whole = seal_bytes(keys(), &input);
            let total = whole.len() as u64;
            // Part sizes that do and do not fall on record boundaries.
            for part in [1000u64, SEALED_RECORD_SIZE as u64, 100_000, total] {
                let mut joined = Vec::new();
                let mut offset = 0;
                while offset < total {
                    let length = part.min(total - offset);
                    joined.extend_from_slice(
                        &read_sealed_range(&path, &keys(), len as u64, offset, length)
                            .await
                            .unwrap(),
                    );
                    offset += length;
                }
                assert_eq!(joined, whole.to_vec(), "{len} in parts of {part}");
            }
            let digest = sealed_sha256(&path, &keys(), len as u64, ProgressBar::hidden())
                .await
                .unwrap();
            assert_eq!(digest, hex::encode(Sha256::digest(&whole)));
        }
    }

    #[tokio::test]
    async fn a_streamed_part_is_the_same_bytes_as_the_buffered_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        let len = 3 * RECORD_SIZE + 77;
        std::fs::write(&path, plaintext(len)).unwrap();
        let sealed_len = layout::sealed_len(len as u64);
        let srs = SEALED_RECORD_SIZE as u64;
        for (offset, length) in [
            (0, sealed_len),
            (0, 1),
            (srs - 1, 2),
            (srs, srs),
            (10, 2 * srs + 5),
            (sealed_len - 3, 3),
        ] {
            let mut file = std::fs::File::open(&path).unwrap();
            let buffered = sealed_range(&mut file, &keys(), len as u64, offset, length).unwrap();
            let streamed: Vec<u8> = sealed_range_stream(&path, &keys(), len as u64, offset, length)
                .await
                .unwrap()
                .map(|chunk| chunk.unwrap())
                .collect::<Vec<_>>()
                .await
                .concat();
            assert_eq!(streamed, buffered, "offset {offset}, length {length}");
        }
        let past_the_end = sealed_range_stream(&path, &keys(), len as u64, sealed_len - 1, 2)
            .await
            .unwrap()
            .collect::<Vec<_>>()
            .await;
        assert!(past_the_end.iter().any(Result::is_err));
    }

    #[tokio::test]
    async fn a_file_that_shrank_fails_instead_of_sealing_short_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, plaintext(10)).unwrap();
        assert!(
            read_sealed_range(&path, &keys(), 20, 0, 36).await.is_err(),
            "a range past the file's end"
        );
        assert!(
            sealed_sha256(&path, &keys(), 20, ProgressBar::hidden())
                .await
                .is_err()
        );
    }
}
