//! What `once send` and `once get` share about end-to-end encryption (`docs/encryption.md`):
//! the sealed metadata's JSON, the password (read from a prompt without echo or a file, never
//! from argv) and the Argon2id parameters as the wire carries them.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use once_api::ArchiveContents;
use once_seal::{PasswordParams, b64u, from_b64u};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The plaintext of `sealed_meta`: what names the file, which the server never sees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    #[serde(rename = "type")]
    pub content_type: String,
    /// The plaintext's size; absent for a pipe whose length was unknown when it was sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<ArchiveContents>,
}

/// Argon2id parameters as `NewEncryption.password` and `SealedShare.password` carry them.
pub fn params_to_wire(params: &PasswordParams) -> once_api::PasswordParams {
    once_api::PasswordParams {
        salt: b64u(&params.salt),
        memory_kib: params.memory_kib,
        iterations: params.iterations,
        parallelism: params.parallelism,
    }
}

/// The server's parameters, refused when over the reader limits (a hostile server must not
/// make the client spend unbounded memory).
pub fn params_from_wire(wire: &once_api::PasswordParams) -> Result<PasswordParams> {
    let salt: [u8; 16] = from_b64u(&wire.salt)
        .ok()
        .and_then(|salt| salt.try_into().ok())
        .context("the server sent a malformed password salt")?;
    let params = PasswordParams {
        salt,
        memory_kib: wire.memory_kib,
        iterations: wire.iterations,
        parallelism: wire.parallelism,
    };
    params
        .check()
        .map_err(|error| anyhow!("the share's password settings are refused: {error}"))?;
    Ok(params)
}

/// Where a password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource<'a> {
    /// `--password-file PATH` (`-` is standard input): its first line.
    File(&'a Path),
    /// A prompt without echo on the terminal; `confirm` asks twice (when choosing one).
    Prompt { confirm: bool },
}

/// Reads the password. An empty one is refused: it would protect nothing.
pub fn read_password(source: PasswordSource<'_>) -> Result<Zeroizing<String>> {
    let password = match source {
        PasswordSource::File(path) if path == Path::new("-") => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line
        }
        PasswordSource::File(path) => {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the password from {}", path.display())
                })?);
            Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
        }
        PasswordSource::Prompt { confirm } => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "a password prompt needs a terminal; give the password with --password-file \
                     PATH (`-` reads standard input)"
                );
            }
            let first = Zeroizing::new(
                rpassword::prompt_password("Password (not shown): ")
                    .context("cannot read the password from the terminal")?,
            );
            if confirm {
                let again = Zeroizing::new(
                    rpassword::prompt_password("Password again: ")
                        .context("cannot read the password from the terminal")?,
                );
                if *again != *first {
                    bail!("the two passwords differ; nothing was sent");
                }
            }
            first
        }
    };
    let trimmed = Zeroizing::new(password.trim_end_matches(['\r', '\n']).to_owned());
    if trimmed.is_empty() {
        bail!("the password is empty");
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_the_json_of_the_format() {
        let metadata = Metadata {
            name: "hello.txt".into(),
            content_type: "text/plain".into(),
            size: Some(12),
            note: None,
            contents: None,
        };
        assert_eq!(
            serde_json::to_string(&metadata).unwrap(),
            r#"{"name":"hello.txt","type":"text/plain","size":12}"#
        );
    }

    #[test]
    fn password_params_round_trip_and_hostile_ones_are_refused() {
        let params = PasswordParams::generate();
        assert_eq!(params_from_wire(&params_to_wire(&params)).unwrap(), params);
        let mut greedy = params_to_wire(&params);
        greedy.memory_kib = PasswordParams::MAX_MEMORY_KIB + 1;
        assert!(params_from_wire(&greedy).is_err());
        let mut short_salt = params_to_wire(&params);
        short_salt.salt = b64u(&[1; 8]);
        assert!(params_from_wire(&short_salt).is_err());
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "correct horse\r\nsecond line\n").unwrap();
        assert_eq!(
            read_password(PasswordSource::File(&path)).unwrap().as_str(),
            "correct horse"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password(PasswordSource::File(&path)).is_err());
    }
}
