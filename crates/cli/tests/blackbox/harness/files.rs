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
