//! The private keys of the requester's end-to-end encrypted upload requests. `once request`
//! makes an X25519 key pair, keeps the private key here and puts only the public key in the
//! request link's fragment; `once get` of the share an upload became finds the key again by
//! the public key the uploader sealed to (`docs/encryption.md`).
//!
//! One file per request, `<state dir>/request-keys/<b64u(R)>.key`, readable by the user only:
//! `b64u(r)` on the first line, and once the server made the request, its link (with the
//! public key) on the second, so `once requests` can show the whole link again. Losing it loses every upload made to that request, so it
//! is written and synced before the request exists, and never removed by `once`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use once_seal::{RequestKeyPair, b64u, from_b64u};

use super::config::create_private_dir;

/// A key file is a key and a link; anything much bigger is not ours.
const MAX_KEY_FILE: u64 = 16 * 1024;

pub(super) struct RequestKeys {
    dir: PathBuf,
}

impl RequestKeys {
    /// The user's store, under the client's state directory.
    pub(super) fn of_user() -> Result<RequestKeys> {
        let state = super::state_dir().context(
            "cannot find a place for the request's private key: set HOME or XDG_STATE_HOME",
        )?;
        Ok(RequestKeys::at(state.join("request-keys")))
    }

    pub(super) fn at(dir: PathBuf) -> RequestKeys {
        RequestKeys { dir }
    }

    /// A fresh key pair whose private key is already on disk (synced), and its file.
    pub(super) fn create(&self) -> Result<(RequestKeyPair, PathBuf)> {
        create_private_dir(&self.dir)?;
        let pair = RequestKeyPair::generate();
        let path = self.path_of(&pair.public_fragment());
        let mut options = std::fs::OpenOptions::new();
        // Never replaces a key: that would lose the uploads made to its request.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let line = zeroize::Zeroizing::new(format!("{}\n", b64u(&pair.to_bytes())));
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        // The file's name must survive a crash too, or the key is as good as lost.
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", self.dir.display()))?;
        Ok((pair, path))
    }

    /// Notes the request's link (`URL#PUBLIC`) in its key file. The key is already safe, so a
    /// failure here costs only the reminder.
    pub(super) fn remember_link(&self, pair: &RequestKeyPair, link: &str) -> Result<()> {
        let path = self.path_of(&pair.public_fragment());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(format!("{link}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The links noted in the key files, by their part before `#` (the request's URL as the
    /// server lists it).
    pub(super) fn links(&self) -> std::collections::HashMap<String, String> {
        let mut links = std::collections::HashMap::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return links;
        };
        for entry in entries.flatten() {
            if entry
                .path()
                .extension()
                .is_none_or(|extension| extension != "key")
            {
                continue;
            }
            let Ok(text) = read_key_file(&entry.path()) else {
                continue;
            };
            if let Some(link) = text.lines().nth(1)
                && let Some((url, _)) = link.split_once('#')
            {
                links.insert(url.to_owned(), link.to_owned());
            }
        }
        links
    }

    /// Removes the key of a request that was never made (the server refused it).
    pub(super) fn discard(&self, pair: &RequestKeyPair) {
        let _ = std::fs::remove_file(self.path_of(&pair.public_fragment()));
    }

    /// The key pair whose public key is `recipient` (`b64u(R)`, as the server reports it for
    /// an upload to an encrypted request).
    pub(super) fn find(&self, recipient: &str) -> Result<RequestKeyPair> {
        // The name comes from the server: only a well-formed key may become a path.
        if recipient.len() != 43 || from_b64u(recipient).map(|key| key.len()) != Ok(32) {
            bail!("the server reports a malformed recipient key for this share");
        }
        let path = self.path_of(recipient);
        let text = match read_key_file(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "this file was uploaded end-to-end encrypted to an upload request whose private \
                 key is not here: it would be {}. Fetch it as the user, and on the machine, that \
                 ran `once request` (or copy that key file here); nothing was downloaded",
                path.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let private = from_b64u(text.lines().next().unwrap_or_default())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| anyhow!("{} is damaged: it holds no private key", path.display()))?;
        let pair = RequestKeyPair::from_bytes(private);
        if pair.public_fragment() != recipient {
            bail!(
                "{} holds the key of another request (it was renamed or damaged)",
                path.display()
            );
        }
        Ok(pair)
    }

    fn path_of(&self, recipient: &str) -> PathBuf {
        self.dir.join(format!("{recipient}.key"))
    }
}

fn read_key_file(path: &Path) -> std::io::Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(MAX_KEY_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_found_by_its_public_key_and_private_to_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let keys = RequestKeys::at(dir.path().join("request-keys"));
        let (pair, path) = keys.create().unwrap();
        assert_eq!(
            path,
            dir.path()
                .join("request-keys")
                .join(format!("{}.key", pair.public_fragment()))
        );
        let found = keys.find(&pair.public_fragment()).unwrap();
        assert_eq!(found.to_bytes(), pair.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("request-keys")), 0o700);
        }
        let link = format!(
            "https://h/r/AAAAAAAAAAAAAAAAAAAAAA#{}",
            pair.public_fragment()
        );
        keys.remember_link(&pair, &link).unwrap();
        assert_eq!(
            keys.links().get("https://h/r/AAAAAAAAAAAAAAAAAAAAAA"),
            Some(&link)
        );
        // The key still reads with the link below it.
        assert_eq!(
            keys.find(&pair.public_fragment()).unwrap().to_bytes(),
            pair.to_bytes()
        );
        keys.discard(&pair);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_forged_or_mismatched_key_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let keys = RequestKeys::at(dir.path().to_owned());
        let absent = RequestKeyPair::generate().public_fragment();
        let error = keys.find(&absent).unwrap_err().to_string();
        assert!(error.contains("private key is not here"), "{error}");
        assert!(error.contains(&format!("{absent}.key")), "{error}");
        // A server cannot steer the lookup out of the directory.
        for forged in [
            "../../etc/passwd",
            &"A".repeat(42),
            "",
            &format!("{absent}/"),
        ] {
            let error = keys.find(forged).unwrap_err().to_string();
            assert!(
                error.contains("malformed recipient key"),
                "{forged}: {error}"
            );
        }
        // A key file under another key's name.
        let (pair, path) = keys.create().unwrap();
        let other = RequestKeyPair::generate().public_fragment();
        std::fs::rename(&path, dir.path().join(format!("{other}.key"))).unwrap();
        let error = keys.find(&other).unwrap_err().to_string();
        assert!(error.contains("key of another request"), "{error}");
        std::fs::write(dir.path().join(format!("{other}.key")), "not a key\n").unwrap();
        let error = keys.find(&other).unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
        drop(pair);
    }
}
