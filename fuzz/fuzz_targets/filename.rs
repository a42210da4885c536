//! File names and `Content-Disposition`, both ways. Whatever a sender (`Filename::parse`) or
//! a hostile server (`Filename::from_content_disposition`) supplies, a name that comes out is
//! never empty, `.` or `..`, has no separator and nothing hidden, and parses to itself; the
//! header built from it is visible ASCII and reads back as the same name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use once_domain::Filename;
use once_domain::filename::MAX_FILENAME_BYTES;

fn check(name: &Filename) {
    let text = name.as_str();
    assert!(!text.is_empty() && text != "." && text != "..", "{text:?}");
    assert!(!text.contains(['/', '\\']), "{text:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.len() <= MAX_FILENAME_BYTES, "{text:?}");
    assert_eq!(text.trim(), text);
    assert_eq!(
        Filename::parse(text).as_ref(),
        Ok(name),
        "parsing is not idempotent"
    );

    let fallback = name.ascii_fallback();
    assert!(
        fallback
            .bytes()
            .all(|b| (b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'%')) || b == b' '),
        "{fallback:?}"
    );
    let header = name.content_disposition();
    // What `http::HeaderValue` accepts without complaint, and what no proxy mangles.
    assert!(
        header.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "{header:?}"
    );
    assert_eq!(
        Filename::from_content_disposition(&header).as_ref(),
        Some(name),
        "{header:?}"
    );
}

fuzz_target!(|text: &str| {
    if let Ok(name) = Filename::parse(text) {
        check(&name);
    }
    if let Some(name) = Filename::from_content_disposition(text) {
        check(&name);
    }
});
