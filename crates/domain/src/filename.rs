//! A file name as shown to recipients. It is display data only: blobs are stored under random
//! keys, so a name can never choose a path. Parsing still strips anything that could confuse a
//! recipient's file system or an HTTP header (directories, control characters such as CR/LF).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::DomainError;

/// The longest name we keep, in bytes; common file systems allow 255.
pub const MAX_FILENAME_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filename(String);

/// RFC 5987 `attr-char`: everything else in `filename*` is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

impl Filename {
    /// Keeps the last path segment (either separator), drops control characters and
    /// surrounding whitespace, and refuses what is left if it is empty, `.` or `..`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let last_segment = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last_segment.chars().filter(|c| !c.is_control()).collect();
        let cleaned = cleaned.trim();
        if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
            return Err(DomainError::InvalidFilename(
                "the name is empty once path parts are removed",
            ));
        }
        if cleaned.len() > MAX_FILENAME_BYTES {
            return Err(DomainError::InvalidFilename(
                "the name is longer than 255 bytes",
            ));
        }
        Ok(Self(cleaned.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An ASCII-only stand-in for old clients: non-ASCII, quotes, backslashes and `%` become `_`.
    pub fn ascii_fallback(&self) -> String {
        self.0
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%') || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// `Content-Disposition: attachment` with both an ASCII `filename` and an RFC 5987
    /// `filename*` (RFC 6266 §4.3), so every client gets the best name it understands.
    pub fn content_disposition(&self) -> String {
        format!(
            "attachment; filename=\"{}\"; filename*=UTF-8''{}",
            self.ascii_fallback(),
            utf8_percent_encode(&self.0, ATTR_CHAR_ESCAPES)
        )
    }

    /// Reads the name back from a `Content-Disposition` value, preferring `filename*`.
    /// Used by clients to pick a default output name; the result is parsed again, so a hostile
    /// server cannot make a client write outside its directory.
    pub fn from_content_disposition(header: &str) -> Option<Self> {
        let mut plain = None;
        for part in header.split(';').map(str::trim) {
            if let Some(encoded) = part.strip_prefix("filename*=") {
                let encoded = encoded
                    .strip_prefix("UTF-8''")
                    .or_else(|| encoded.strip_prefix("utf-8''"))?;
                let decoded = percent_encoding::percent_decode_str(encoded)
                    .decode_utf8()
                    .ok()?;
                return Self::parse(&decoded).ok();
            }
            if let Some(quoted) = part.strip_prefix("filename=") {
                plain = Some(quoted.trim_matches('"').to_owned());
            }
        }
        plain.and_then(|name| Self::parse(&name).ok())
    }
}

impl std::fmt::Display for Filename {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Filename {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_keeps_only_the_last_segment() {
        assert_eq!(
            Filename::parse("../../etc/passwd").unwrap().as_str(),
            "passwd"
        );
        assert_eq!(
            Filename::parse("..\\..\\boot.ini").unwrap().as_str(),
            "boot.ini"
        );
        assert!(Filename::parse("../..").is_err());
        assert!(Filename::parse("dir/").is_err());
        assert!(Filename::parse("").is_err());
    }

    #[test]
    fn control_characters_are_removed() {
        let name = Filename::parse("evil\r\nSet-Cookie: x=1.txt").unwrap();
        assert_eq!(name.as_str(), "evilSet-Cookie: x=1.txt");
        assert!(!name.content_disposition().contains(['\r', '\n']));
    }

    #[test]
    fn overlong_names_are_refused() {
        assert!(Filename::parse(&"a".repeat(256)).is_err());
        assert!(Filename::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn content_disposition_has_ascii_and_utf8_forms() {
        let name = Filename::parse("naïve \"report\" 100%.pdf").unwrap();
        assert_eq!(
            name.content_disposition(),
            "attachment; filename=\"na_ve _report_ 100_.pdf\"; \
             filename*=UTF-8''na%C3%AFve%20%22report%22%20100%25.pdf"
        );
    }

    #[test]
    fn content_disposition_round_trips() {
        for raw in [
            "naïve \"report\" 100%.pdf",
            "plain.txt",
            "日本語 ファイル.zip",
        ] {
            let name = Filename::parse(raw).unwrap();
            let back = Filename::from_content_disposition(&name.content_disposition()).unwrap();
            assert_eq!(back, name);
        }
        assert_eq!(
            Filename::from_content_disposition("attachment; filename=\"../x.txt\"")
                .unwrap()
                .as_str(),
            "x.txt"
        );
    }
}
