//! A file name as shown to recipients. It is display data only: blobs are stored under random
//! keys, so a name can never choose a path. Parsing still strips anything that could confuse a
//! recipient's file system, an HTTP header or a human reading it: directories, control
//! characters such as CR/LF, and invisible or direction-changing characters that make
//! `invoice\u{202E}fdp.exe` look like `invoiceexe.pdf`.

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};
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

/// True for a character a reader cannot see but that still changes what they see: controls
/// (Cc), format characters (Cf: bidi embeddings, overrides and isolates, zero-width spaces and
/// joiners, the BOM, the soft hyphen), line and paragraph separators (Zl, Zp), and every other
/// Default_Ignorable_Code_Point (variation selectors, the combining grapheme joiner, Hangul
/// fillers), all from the Unicode Character Database as ICU ships it.
fn is_hidden(c: char) -> bool {
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    matches!(
        category,
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

impl Filename {
    /// Keeps the last path segment (either separator), drops hidden characters (see
    /// [`is_hidden`]) and surrounding whitespace, and refuses what is left if it is empty, `.`
    /// or `..`, so a name made only of hidden characters is refused rather than shown blank.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let last_segment = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last_segment.chars().filter(|&c| !is_hidden(c)).collect();
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

    /// Reads the name back from a `Content-Disposition` value, preferring a UTF-8 `filename*`
    /// and falling back to `filename`. Used by clients to pick a default output name; the
    /// result is parsed again, so a hostile server cannot make a client write outside its
    /// directory. Total: any text gives a name or `None`, never a panic.
    pub fn from_content_disposition(header: &str) -> Option<Self> {
        let mut plain = None;
        let mut extended = None;
        for (name, value) in disposition_parameters(header) {
            if name.eq_ignore_ascii_case("filename*") {
                extended = extended.or_else(|| decode_ext_value(&value));
            } else if name.eq_ignore_ascii_case("filename") {
                plain = plain.or(Some(value));
            }
        }
        extended
            .and_then(|name| Self::parse(&name).ok())
            .or_else(|| plain.and_then(|name| Self::parse(&name).ok()))
    }
}

/// The `name=value` parameters of a header such as `Content-Disposition`, values unquoted.
/// A value is a token or a quoted string with backslash escapes (RFC 9110 §5.6.4), so a `;`
/// inside quotes does not end it; segments without `=` (the disposition type) are skipped.
fn disposition_parameters(header: &str) -> Vec<(&str, String)> {
    let mut parameters = Vec::new();
    let mut rest = header;
    loop {
        let segment = rest.trim_start();
        let Some(split) = segment.find(['=', ';']) else {
            break;
        };
        let (name, after) = segment.split_at(split);
        let Some(after) = after.strip_prefix('=') else {
            rest = after.get(1..).unwrap_or_default();
            continue;
        };
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut end = quoted.len();
                let mut chars = quoted.char_indices();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = at + 1;
                            break;
                        }
                        '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                        c => value.push(c),
                    }
                }
                let tail = &quoted[end..];
                (value, tail.split_once(';').map_or("", |(_, next)| next))
            }
            None => match after.split_once(';') {
                Some((token, next)) => (token.trim().to_owned(), next),
                None => (after.trim().to_owned(), ""),
            },
        };
        parameters.push((name.trim(), value));
        rest = remaining;
    }
    parameters
}

/// RFC 8187 `charset'language'percent-encoded`; only UTF-8 is understood (the only charset
/// RFC 8187 requires), anything else leaves the plain `filename` to be used.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
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

    /// Every character the brief of spoofable names lists, by code point.
    const HIDDEN: &[char] = &[
        // bidi embeddings and overrides, isolates, marks
        '\u{202A}',
        '\u{202B}',
        '\u{202C}',
        '\u{202D}',
        '\u{202E}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{200E}',
        '\u{200F}',
        '\u{061C}',
        // zero-width and invisible characters
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{2061}',
        '\u{2062}',
        '\u{2063}',
        '\u{2064}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{180E}',
        '\u{034F}',
        // Hangul fillers, variation selectors, tags
        '\u{115F}',
        '\u{1160}',
        '\u{3164}',
        '\u{FFA0}',
        '\u{FE0F}',
        '\u{E0001}',
        '\u{E0100}',
        // line and paragraph separators, other controls
        '\u{2028}',
        '\u{2029}',
        '\u{0085}',
        '\u{007F}',
        '\u{0000}',
        '\u{001B}',
    ];

    #[test]
    fn every_hidden_character_is_removed_from_the_name() {
        for &hidden in HIDDEN {
            let name = Filename::parse(&format!("re{hidden}port.pdf")).unwrap();
            assert_eq!(name.as_str(), "report.pdf", "U+{:04X}", u32::from(hidden));
        }
    }

    #[test]
    fn a_name_made_only_of_hidden_characters_is_refused_not_blank() {
        let only_hidden: String = HIDDEN.iter().collect();
        assert!(Filename::parse(&only_hidden).is_err());
        assert!(Filename::parse("\u{202E}\u{200B} \u{3164}").is_err());
        assert!(
            Filename::parse(".\u{200B}.").is_err(),
            "cleaning must not hide `..`"
        );
    }

    #[test]
    fn right_to_left_override_cannot_disguise_the_extension() {
        let name = Filename::parse("invoice_2026\u{202E}fdp.exe").unwrap();
        assert_eq!(name.as_str(), "invoice_2026fdp.exe");
        assert_eq!(name.ascii_fallback(), "invoice_2026fdp.exe");
        assert_eq!(
            name.content_disposition(),
            "attachment; filename=\"invoice_2026fdp.exe\"; filename*=UTF-8''invoice_2026fdp.exe"
        );
        let isolated = Filename::parse("photo\u{2067}gpj.\u{2069}scr").unwrap();
        assert!(isolated.content_disposition().ends_with("''photogpj.scr"));
    }

    #[test]
    fn visible_non_ascii_letters_and_emoji_survive() {
        let name = Filename::parse("Ελληνικά 日本語 café 🎉.txt").unwrap();
        assert_eq!(name.as_str(), "Ελληνικά 日本語 café 🎉.txt");
    }

    #[test]
    fn content_disposition_parameters_follow_the_quoting_rules() {
        for (header, expected) in [
            // a quoted `;` does not split, backslash escapes are undone
            (
                "attachment; filename=\"a;b \\\"c\\\".txt\"",
                Some("a;b \"c\".txt"),
            ),
            // parameter names and the charset are case-insensitive; a language tag is allowed
            ("attachment; FILENAME=plain.txt", Some("plain.txt")),
            (
                "attachment; filename=\"x.txt\"; Filename*=utf-8'en'%C3%A9t%C3%A9.txt",
                Some("été.txt"),
            ),
            // a charset we do not read, or a broken encoding, leaves the plain name in charge
            (
                "attachment; filename*=ISO-8859-1''%E9t%E9.txt; filename=\"ete.txt\"",
                Some("ete.txt"),
            ),
            (
                "attachment; filename*=UTF-8''%FF.txt; filename=ok.txt",
                Some("ok.txt"),
            ),
            // a hostile server's hidden characters are cleaned like any other name
            (
                "attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
                Some("invoicefdp.exe"),
            ),
            ("attachment", None),
        ] {
            let parsed = Filename::from_content_disposition(header);
            assert_eq!(parsed.as_ref().map(Filename::as_str), expected, "{header}");
        }
    }

    #[test]
    fn content_disposition_parser_never_panics_on_any_prefix_of_hostile_input() {
        let hostile = "attachment;;=; filename=\"unterminated \\\"é; filename*=UTF-8'' \
                       %; filename*=''; filename*=UTF-8'%E2%80'x; =\"\\; filename=日本\\";
        for (at, _) in hostile.char_indices() {
            let _ = Filename::from_content_disposition(&hostile[..at]);
            let _ = Filename::from_content_disposition(&hostile[at..]);
            let _ = Filename::parse(&hostile[at..]);
        }
    }
}
