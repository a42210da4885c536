//! Words people write to each other through `once`: the sender's note to a share's recipient,
//! and an upload request's note and the name of who asks, both shown to the uploader. They are
//! plain text for a person to read, so they are held to a length a page can show and to
//! characters that cannot rewrite the page around them (no terminal escapes, no carriage
//! returns); rendering them safely (HTML escaping) is each front end's job.

use crate::DomainError;

/// The longest note, in characters (Unicode scalar values), not bytes: the limit is about
/// how much a reader is asked to read, whatever the script.
pub const MAX_NOTE_CHARS: usize = 1000;

/// The longest name of who asks for an upload, in characters.
pub const MAX_REQUESTER_CHARS: usize = 100;

/// A message from a share's sender to its recipient, or from a requester to the uploader:
/// trimmed, not empty, at most [`MAX_NOTE_CHARS`] characters, line breaks as `\n`, and no
/// control characters besides newlines and tabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(String);

impl Note {
    /// `None` for a note that is empty once trimmed: "no note" has one spelling. Windows and
    /// old Mac line breaks (`\r\n`, `\r`), which a browser's form sends, become `\n`.
    pub fn parse(raw: &str) -> Result<Option<Self>, DomainError> {
        let text = raw.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(DomainError::InvalidNote(
                "the note may not contain control characters other than newlines and tabs",
            ));
        }
        if text.chars().count() > MAX_NOTE_CHARS {
            return Err(DomainError::InvalidNote(
                "the note is longer than 1000 characters",
            ));
        }
        Ok(Some(Self(text.to_owned())))
    }

    /// [`parse`](Self::parse) for a field that may be absent.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, DomainError> {
        Ok(raw.map(Self::parse).transpose()?.flatten())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who asks for an upload, as the uploader sees it (`from` on the wire): trimmed, not empty,
/// one line of at most [`MAX_REQUESTER_CHARS`] characters without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequesterName(String);

impl RequesterName {
    /// `None` for a name that is empty once trimmed.
    pub fn parse(raw: &str) -> Result<Option<Self>, DomainError> {
        let text = raw.trim();
        if text.is_empty() {
            return Ok(None);
        }
        // A name is shown inline ("Alice asks for a file"), so nothing may break the line:
        // no control character (CR, LF, tab, escapes) and no Unicode line or paragraph
        // separator.
        if text
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            return Err(DomainError::InvalidNote(
                "`from` must be a single line without control characters",
            ));
        }
        if text.chars().count() > MAX_REQUESTER_CHARS {
            return Err(DomainError::InvalidNote(
                "`from` is longer than 100 characters",
            ));
        }
        Ok(Some(Self(text.to_owned())))
    }

    /// [`parse`](Self::parse) for a field that may be absent.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, DomainError> {
        Ok(raw.map(Self::parse).transpose()?.flatten())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequesterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(raw: &str) -> Option<String> {
        Note::parse(raw)
            .unwrap()
            .map(|note| note.as_str().to_owned())
    }

    fn requester(raw: &str) -> Option<String> {
        RequesterName::parse(raw)
            .unwrap()
            .map(|name| name.as_str().to_owned())
    }

    #[test]
    fn a_note_is_trimmed_and_keeps_its_inner_lines_and_tabs() {
        assert_eq!(
            note("  \n Hi Bob,\n\n\tthe contract.\n  "),
            Some("Hi Bob,\n\n\tthe contract.".to_owned())
        );
    }

    #[test]
    fn a_blank_note_is_no_note() {
        for blank in ["", "   ", "\n\t\r\n", "\u{3000}"] {
            assert_eq!(note(blank), None, "{blank:?}");
        }
        assert_eq!(Note::parse_optional(None).unwrap(), None);
        assert_eq!(Note::parse_optional(Some(" ")).unwrap(), None);
    }

    #[test]
    fn carriage_returns_become_newlines() {
        assert_eq!(
            note("one\r\ntwo\rthree"),
            Some("one\ntwo\nthree".to_owned())
        );
    }

    #[test]
    fn control_characters_other_than_newline_and_tab_are_refused() {
        for control in ['\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}'] {
            let error = Note::parse(&format!("look{control}here")).unwrap_err();
            assert_eq!(error.code(), "invalid_note", "U+{:04X}", u32::from(control));
        }
    }

    #[test]
    fn the_note_limit_counts_characters_not_bytes() {
        let longest = "é".repeat(MAX_NOTE_CHARS);
        assert!(longest.len() > MAX_NOTE_CHARS);
        assert_eq!(note(&longest), Some(longest.clone()));
        let error = Note::parse(&format!("{longest}a")).unwrap_err();
        assert_eq!(
            error,
            DomainError::InvalidNote("the note is longer than 1000 characters")
        );
        // Whitespace trimmed away does not count.
        assert!(note(&format!("  {longest}\n\n")).is_some());
    }

    #[test]
    fn a_requester_name_is_one_trimmed_line() {
        assert_eq!(
            requester("  Alice (accounting) "),
            Some("Alice (accounting)".to_owned())
        );
        assert_eq!(requester(" \t "), None);
        assert_eq!(RequesterName::parse_optional(None).unwrap(), None);
        for broken in [
            "Alice\nBob",
            "Al\rice",
            "Al\tice",
            "Alice\u{2028}Bob",
            "A\u{1b}[31m",
        ] {
            let error = RequesterName::parse(broken).unwrap_err();
            assert_eq!(error.code(), "invalid_note", "{broken:?}");
        }
    }

    #[test]
    fn the_requester_limit_counts_characters_not_bytes() {
        let longest = "ß".repeat(MAX_REQUESTER_CHARS);
        assert_eq!(requester(&longest), Some(longest.clone()));
        assert!(RequesterName::parse(&format!("{longest}x")).is_err());
    }
}
