//! The resume record: a sidecar `<output>.part.once` beside an unfinished download, holding the
//! share link, the blob URL and the announced SHA-256, so a later run resumes within the lease
//! instead of claiming the link again.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use once_domain::Sha256Digest;
use serde::{Deserialize, Serialize};
use url::Url;

use super::super::link::ShareLink;

pub(super) const SIDECAR_SUFFIX: &str = ".part.once";
/// A sidecar holds two URLs, a digest and an encrypted share's public parameters (its sealed
/// metadata is at most 48 KiB); anything bigger is not ours.
const MAX_SIDECAR: u64 = 128 * 1024;

pub(super) struct Sidecar {
    pub(super) link: ShareLink,
    pub(super) blob: Url,
    pub(super) sha256: Option<Sha256Digest>,
    pub(super) sealed: Option<SealedRecord>,
}

/// What a resumed download of an encrypted share needs besides the link's key (which is never
/// written down): the ciphertext's length, and the sealed metadata and password parameters to
/// check the key (and password) with before anything more is downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SealedRecord {
    pub(super) sealed_len: u64,
    pub(super) sealed_meta: String,
    #[serde(default)]
    pub(super) password: Option<once_api::PasswordParams>,
    /// An upload to one of our encrypted requests: the public keys that find and derive its
    /// keys again (the private key stays in the request's key file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) recipient_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ephemeral_key: Option<String>,
}

/// Lines: the share link, the blob URL, the announced SHA-256 when there is one, and for an
/// encrypted share its [`SealedRecord`] as JSON. The blob URL is a capability for the rest of
/// the lease, so the file is private to the user.
pub(super) fn write_sidecar(
    path: &Path,
    link: &Url,
    blob: &Url,
    sha256: Option<Sha256Digest>,
    sealed: Option<&SealedRecord>,
) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let digest = sha256.map(|digest| digest.to_hex()).unwrap_or_default();
    let sealed = match sealed {
        Some(sealed) => format!("{}\n", serde_json::to_string(sealed)?),
        None => String::new(),
    };
    std::io::Write::write_all(
        &mut file,
        format!("{link}\n{blob}\n{digest}\n{sealed}").as_bytes(),
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

/// `None` when there is no sidecar; an error when there is one we cannot use, since resuming
/// is then impossible and claiming again might burn the link.
pub(super) fn read_sidecar(path: &Path) -> Result<Option<Sidecar>> {
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
    let link = ShareLink::parse(lines.next().unwrap_or_default())?;
    let blob = Url::parse(lines.next().unwrap_or_default()).context("no blob URL")?;
    // Absent or empty in records of files the server announced no checksum for.
    let sha256 = match lines.next().filter(|line| !line.is_empty()) {
        Some(hex) => Some(Sha256Digest::parse_hex(hex).map_err(|_| anyhow!("bad SHA-256"))?),
        None => None,
    };
    let sealed = match lines.next().filter(|line| !line.is_empty()) {
        Some(json) => Some(serde_json::from_str(json).context("bad encryption record")?),
        None => None,
    };
    Ok(Sidecar {
        link,
        blob,
        sha256,
        sealed,
    })
}

/// Looks in `dir` for the sidecar of an unfinished download of the same share; returns the
/// output's file name and the record.
pub(super) fn find_sidecar(dir: &Path, link: &ShareLink) -> Result<Option<(String, Sidecar)>> {
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
    fn sidecars_round_trip_and_are_found_by_link() {
        let dir = std::env::temp_dir().join(format!("once-sidecar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = ShareLink::parse(&format!("https://h/s/{ID}/f.txt")).unwrap();
        let blob = Url::parse("https://h/b/key?sig=x&exp=1").unwrap();
        let digest = Sha256Digest([7; 32]);
        write_sidecar(
            &dir.join("f.txt.part.once"),
            &link.canonical,
            &blob,
            Some(digest),
            None,
        )
        .unwrap();
        std::fs::write(dir.join("junk.part.once"), b"garbage").unwrap();

        let same = ShareLink::parse(&format!("https://h/s/{ID}")).unwrap();
        let (output, found) = find_sidecar(&dir, &same).unwrap().unwrap();
        assert_eq!(output, "f.txt");
        assert_eq!((found.blob, found.sha256), (blob.clone(), Some(digest)));

        let other = ShareLink::parse("https://h/s/BBBBBBBBBBBBBBBBBBBBBA").unwrap();
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
        // An encrypted share's record keeps its public parameters, never the key.
        let sealed = SealedRecord {
            sealed_len: 65_552,
            sealed_meta: "META".into(),
            password: None,
            recipient_key: Some("R".repeat(43)),
            ephemeral_key: Some("E".repeat(43)),
        };
        write_sidecar(
            &dir.join("e.part.once"),
            &link.canonical,
            &blob,
            None,
            Some(&sealed),
        )
        .unwrap();
        let found = read_sidecar(&dir.join("e.part.once")).unwrap().unwrap();
        assert_eq!(found.sealed, Some(sealed));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
