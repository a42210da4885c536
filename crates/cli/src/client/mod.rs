//! The client half of `once`: `send`, `get`, `request`, `requests`, `status` and `revoke`, all
//! speaking the v1 HTTP contract. Helpers shared by several commands (progress bars, QR codes,
//! share links, time display) live here so every command presents them the same way.

pub mod config;
pub mod get;
pub mod request;
pub mod send;
pub mod share;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use once_domain::ShareId;
use time::OffsetDateTime;
use url::Url;

/// Files smaller than this hash in well under a second, so a progress bar would only flicker.
const LARGE_FILE: u64 = 32 * 1024 * 1024;

/// A byte progress bar on stderr. indicatif already hides it when stderr is not a terminal;
/// `quiet` hides it always.
fn byte_progress(len: Option<u64>, quiet: bool, message: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{msg:>11} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        // Without a known length there is no bar or ETA to show, only how much arrived.
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg:>11} {bytes} {binary_bytes_per_sec}")
                .expect("valid template"),
        ),
    };
    // A steady tick keeps the speed and ETA moving while the network stalls.
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.with_message(message.to_owned())
}

/// Prints `text` as a QR code made of half-block characters, drawn light-on-dark so it scans
/// from the usual dark terminal (as `qrencode -t UTF8` does).
fn print_qr(text: &str) -> Result<()> {
    use qrcode::render::unicode::Dense1x2;
    let code =
        qrcode::QrCode::new(text.as_bytes()).context("the link is too long for a QR code")?;
    let image = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    println!("{image}");
    Ok(())
}

/// A share link taken apart: the link without any trailing file name (so the same share
/// always compares equal) and the share id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShareLink {
    /// `scheme://host[:port][/prefix]/s/ID`, without query, fragment or file name.
    canonical: Url,
    /// The file name segment after the id, if the link had one.
    filename: Option<String>,
    id: ShareId,
}

/// Accepts `http(s)://host[/prefix]/s/ID` and `…/s/ID/filename`. The id is validated here so a
/// typo fails before any request is sent.
fn parse_share_link(text: &str) -> Result<ShareLink> {
    let url = Url::parse(text.trim()).with_context(|| format!("not a link: {text}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("not an http(s) link: {text}");
    }
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let position = segments
        .iter()
        .position(|segment| *segment == "s")
        .with_context(|| format!("not a share link (expected …/s/ID): {text}"))?;
    let id_text = segments
        .get(position + 1)
        .with_context(|| format!("the link has no share id after /s/: {text}"))?;
    let id = ShareId::parse(id_text)
        .map_err(|_| anyhow::anyhow!("malformed share id {id_text:?} in {text}"))?;
    let filename = segments
        .get(position + 2)
        .filter(|name| !name.is_empty())
        .map(|name| percent_decode(name));
    let mut canonical = url.clone();
    canonical.set_query(None);
    canonical.set_fragment(None);
    canonical
        .path_segments_mut()
        .map_err(|()| anyhow::anyhow!("not a share link: {text}"))?
        .clear()
        .extend(&segments[..position + 2]);
    Ok(ShareLink {
        canonical,
        filename,
        id,
    })
}

/// Percent-decodes one path segment (invalid escapes are kept as they are, invalid UTF-8 is
/// replaced), so `my%20file.txt` becomes `my file.txt`.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A share id given either bare or as a link (`once status`, `once revoke`).
fn share_id_from_ref(text: &str) -> Result<ShareId> {
    let text = text.trim();
    if let Ok(id) = ShareId::parse(text) {
        return Ok(id);
    }
    if text.contains("://") {
        return Ok(parse_share_link(text)?.id);
    }
    bail!("not a share id or link: {text}")
}

/// A time from the server, shown in RFC 3339 plus a coarse "in 3h" / "5m ago" so the reader
/// need not do clock arithmetic.
fn describe_time(at: OffsetDateTime) -> String {
    describe_time_at(at, OffsetDateTime::now_utc())
}

fn describe_time_at(at: OffsetDateTime, now: OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    let shown = at.format(&Rfc3339).unwrap_or_else(|_| at.to_string());
    format!("{shown} ({})", relative(at - now))
}

/// `in 2h` for the future, `3d ago` for the past, in the largest whole unit; `now` within the
/// second (the server keeps whole seconds).
fn relative(delta: time::Duration) -> String {
    let seconds = delta.whole_seconds();
    let magnitude = seconds.unsigned_abs();
    if magnitude == 0 {
        return "now".to_owned();
    }
    let (amount, unit) = match magnitude {
        0..60 => (magnitude, "s"),
        60..3_600 => (magnitude / 60, "m"),
        3_600..86_400 => (magnitude / 3_600, "h"),
        _ => (magnitude / 86_400, "d"),
    };
    if seconds >= 0 {
        format!("in {amount}{unit}")
    } else {
        format!("{amount}{unit} ago")
    }
}

/// Server answers for unit tests, built as the server would send them.
#[cfg(test)]
mod fixtures {
    use once_api::ShareView;
    use time::OffsetDateTime;

    /// A published single-download share, created at `now`, that expires a day later.
    pub fn share(id: &str, now: OffsetDateTime) -> ShareView {
        ShareView {
            id: id.to_owned(),
            url: format!("https://h/s/{id}"),
            filename: "a.txt".to_owned(),
            size: Some(1),
            content_type: "text/plain".to_owned(),
            sha256: None,
            state: "ready".to_owned(),
            availability: "available".to_owned(),
            max_downloads: 1,
            downloads_left: 1,
            created_at: now,
            expires_at: now + time::Duration::days(1),
            upload_expires_at: now + time::Duration::minutes(10),
            published_at: Some(now),
            lease_until: None,
            upload_attempts: 1,
            preview_hits: 0,
            request_id: None,
            upload: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn share_links_parse_with_and_without_file_name() {
        let plain = parse_share_link(&format!("https://once.example/s/{ID}")).unwrap();
        assert_eq!(plain.id.as_str(), ID);
        assert_eq!(plain.filename, None);
        assert_eq!(
            plain.canonical.as_str(),
            format!("https://once.example/s/{ID}")
        );

        let named =
            parse_share_link(&format!("http://h:8080/prefix/s/{ID}/my%20file.txt?x=1#y")).unwrap();
        assert_eq!(named.id.as_str(), ID);
        assert_eq!(named.filename.as_deref(), Some("my file.txt"));
        assert_eq!(
            named.canonical.as_str(),
            format!("http://h:8080/prefix/s/{ID}")
        );
    }

    #[test]
    fn bad_links_are_refused() {
        for bad in [
            "ftp://h/s/AAAAAAAAAAAAAAAAAAAAAA",
            "https://h/x/AAAAAAAAAAAAAAAAAAAAAA",
            "https://h/s/",
            "https://h/s/short",
            "https://h/s/../etc/passwd",
            "not a url",
        ] {
            assert!(parse_share_link(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn share_refs_accept_ids_and_links() {
        assert_eq!(share_id_from_ref(ID).unwrap().as_str(), ID);
        assert_eq!(
            share_id_from_ref(&format!("https://h/s/{ID}/f.bin"))
                .unwrap()
                .as_str(),
            ID
        );
        assert!(share_id_from_ref("nope").is_err());
    }

    #[test]
    fn relative_times_use_the_largest_unit() {
        assert_eq!(relative(time::Duration::milliseconds(-300)), "now");
        assert_eq!(relative(time::Duration::seconds(5)), "in 5s");
        assert_eq!(relative(time::Duration::seconds(-125)), "2m ago");
        assert_eq!(relative(time::Duration::hours(3)), "in 3h");
        assert_eq!(relative(time::Duration::days(-2)), "2d ago");
    }
}
