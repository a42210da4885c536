//! The resume record of `once send`: while a multipart upload runs, a small JSON file under
//! `$XDG_STATE_HOME/once/uploads/` (else `~/.local/state/once/uploads/`) remembers the share,
//! its ticket's URLs and the tag of every part the storage accepted. A later `once send` of
//! the same input to the same server finds it by a name derived from both, asks the server
//! which parts it holds, and sends only the rest. The record holds capabilities (the upload's
//! URLs), so it is private to the user; it is removed once the upload completes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A record is a few URLs and up to 10,000 tags; anything much bigger is not ours.
const MAX_RECORD: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct UploadRecord {
    /// The share's link (empty for an upload to someone's request, whose link is not ours).
    pub link: String,
    pub share_id: Option<String>,
    pub parts_url: String,
    pub complete_url: String,
    /// Whether the parts and completion URLs take the API key (a share of ours) or not (an
    /// upload to a request, where the URLs are the capability).
    pub with_key: bool,
    pub part_size: u64,
    pub size: Option<u64>,
    /// URLs for the first parts, as the ticket gave them (they may have expired).
    #[serde(default)]
    pub part_urls: BTreeMap<u16, String>,
    /// The storage's tag of each part this client sent and saw accepted.
    #[serde(default)]
    pub sent: BTreeMap<u16, String>,
    /// What to print when done (the request's own words, for an upload to a request).
    #[serde(default)]
    pub done_message: Option<String>,
    /// An end-to-end encrypted share: the link's secret (the fragment), so a resumed send
    /// seals the same ciphertext and prints the same link.
    #[serde(default)]
    pub secret: Option<String>,
    /// Its Argon2id parameters when a password is part of the key (never the password).
    #[serde(default)]
    pub password: Option<once_api::PasswordParams>,
    /// `b64u(Ka)` of the keys the parts were sealed with: a resume with another password
    /// would seal other bytes, and is refused instead of mixing them.
    #[serde(default)]
    pub claim_key: Option<String>,
    /// An upload to an encrypted request: our ephemeral X25519 private key, so a resumed send
    /// derives the same keys. It derives them for anyone, like `secret`: the record is the
    /// user's alone and goes once the upload is complete.
    #[serde(default)]
    pub ephemeral: Option<String>,
    /// The requester's public key it was sealed to.
    #[serde(default)]
    pub recipient: Option<String>,
}

/// Where records live.
fn records_dir() -> Option<PathBuf> {
    super::super::state_dir().map(|state| state.join("uploads"))
}

/// The record of one input sent to one destination: `identity` says what the input is (for a
/// file its path, size and SHA-256), `destination` where it goes (server, or request URL).
pub(super) struct RecordFile {
    path: Option<PathBuf>,
}

impl RecordFile {
    pub(super) fn for_input(destination: &str, identity: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(destination.as_bytes());
        hasher.update(b"\n");
        hasher.update(identity.as_bytes());
        let name = format!("{}.json", &hex::encode(hasher.finalize())[..32]);
        Self {
            path: records_dir().map(|dir| dir.join(name)),
        }
    }

    /// A record that is never written (an input that cannot be resumed, such as a pipe).
    pub(super) fn none() -> Self {
        Self { path: None }
    }

    /// The saved record, if there is a usable one; a broken one is ignored (and replaced).
    pub(super) fn load(&self) -> Option<UploadRecord> {
        use std::io::Read;
        let path = self.path.as_ref()?;
        let file = std::fs::File::open(path).ok()?;
        let mut text = String::new();
        file.take(MAX_RECORD).read_to_string(&mut text).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record atomically (temporary file, then rename), readable by the user only.
    pub(super) fn save(&self, record: &UploadRecord) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&temp)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::io::Write::write_all(&mut file, serde_json::to_string(record)?.as_bytes())
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub(super) fn remove(&self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_another_input_has_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = RecordFile {
            path: Some(dir.path().join("uploads/r.json")),
        };
        assert_eq!(file.load(), None);
        let record = UploadRecord {
            link: "http://h/s/x".into(),
            share_id: Some("x".into()),
            parts_url: "http://h/api/v1/shares/x/parts".into(),
            complete_url: "http://h/api/v1/shares/x/complete".into(),
            with_key: true,
            part_size: 10,
            size: Some(25),
            part_urls: BTreeMap::from([(1, "http://h/b/part/t/1".into())]),
            sent: BTreeMap::from([(1, "abc".into())]),
            done_message: None,
            secret: Some("A".repeat(43)),
            password: None,
            claim_key: Some("B".repeat(43)),
            ephemeral: None,
            recipient: None,
        };
        file.save(&record).unwrap();
        assert_eq!(file.load(), Some(record));
        file.remove();
        assert_eq!(file.load(), None);
        let a = RecordFile::for_input("http://h", "a");
        let b = RecordFile::for_input("http://h", "b");
        assert_ne!(a.path, b.path);
    }
}
