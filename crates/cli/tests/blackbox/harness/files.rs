//! Bytes and files: deterministic payloads, checksums, big files written and compared in
//! chunks, and directory listings.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Deterministic pseudo-random bytes.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..size)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a file of `mib` MiB quickly: one pseudo-random MiB, each copy stamped with its
/// index so that misplaced parts are caught.
pub fn write_big_file(path: &Path, mib: usize) {
    let block = payload(1024 * 1024, 99);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for index in 0..mib {
        file.write_all(&(index as u64).to_le_bytes()).unwrap();
        file.write_all(&block[8..]).unwrap();
    }
    file.flush().unwrap();
}

/// True when the two files hold the same bytes (compared in chunks, not loaded whole).
pub fn same_file_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::io::BufReader::new(std::fs::File::open(a).unwrap()),
        std::io::BufReader::new(std::fs::File::open(b).unwrap()),
    );
    let (mut left, mut right) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut left).unwrap();
        if n == 0 {
            return b.read(&mut right).unwrap() == 0;
        }
        if b.read_exact(&mut right[..n]).is_err() || left[..n] != right[..n] {
            return false;
        }
    }
}

/// Every byte of every file under `dir` (blobs, database, its journal), to look for what must
/// not be there.
pub fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in walk(dir) {
        bytes.extend(std::fs::read(entry).unwrap_or_default());
    }
    bytes
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A link without its `#KEY`.
pub fn without_key(link: &str) -> &str {
    link.split_once('#').map_or(link, |(url, _)| url)
}

/// Waits until the resume record of the `once send` running as `child` (under `home`) holds
/// at least `parts` sent parts, and returns it; fails if the send ends first.
pub async fn record_with_parts(
    child: &mut std::process::Child,
    home: &Path,
    parts: usize,
) -> serde_json::Value {
    let record_dir = home.join(".local/state/once/uploads");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(std::time::Instant::now() < deadline, "never got going");
        assert!(child.try_wait().unwrap().is_none(), "ended before the kill");
        let record = files_in(&record_dir)
            .into_iter()
            .find(|path| path.extension().is_some_and(|ext| ext == "json"))
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        if let Some(record) = record
            && record["sent"]
                .as_object()
                .is_some_and(|sent| sent.len() >= parts)
        {
            return record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
