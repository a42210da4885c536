//! The client half of `once`: `login`, `send`, `get`, `request`, `requests`, `status` and `revoke`, all
//! speaking the v1 HTTP contract through `once-api`'s types. What several commands share lives
//! beside them so every command presents it the same way: pasted links and server URLs
//! (`link`), units (`units`), progress bars (`progress`), QR codes and time display (here).

mod archive;
pub mod audit;
pub mod config;
mod encryption;
pub mod get;
pub mod link;
pub mod login;
mod progress;
pub mod request;
mod request_keys;
pub mod send;
pub mod share;
pub mod units;

use anyhow::{Context, Result};
use progress::byte_progress;
use time::OffsetDateTime;

/// `$XDG_STATE_HOME/once`, else `~/.local/state/once`: what the client keeps between runs
/// (resume records of sends, the private keys of encrypted upload requests).
fn state_dir() -> Option<std::path::PathBuf> {
    state_dir_from(
        std::env::var_os("XDG_STATE_HOME").map(Into::into),
        std::env::var_os("HOME").map(Into::into),
    )
}

fn state_dir_from(
    xdg_state_home: Option<std::path::PathBuf>,
    home: Option<std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    // The XDG spec says relative values are invalid and must be ignored.
    let state = xdg_state_home
        .filter(|path| path.is_absolute())
        .or_else(|| home.map(|home| home.join(".local/state")))?;
    Some(state.join("once"))
}

/// Files smaller than this hash in well under a second, so a progress bar would only flicker.
const LARGE_FILE: u64 = 32 * 1024 * 1024;

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

/// Text someone wrote (a note, a name) as the server sent it, made safe for a terminal: a
/// control character other than a newline or a tab (an escape sequence, a carriage return
/// that would overwrite the line) becomes a space. The server refuses them, but the client
/// does not take a server's word for what reaches the terminal.
fn terminal_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect()
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

/// `in 2h` for the future, `3d ago` for the past, in at most two units (`in 1d 12h`); `now`
/// within the second (the server keeps whole seconds).
fn relative(delta: time::Duration) -> String {
    let seconds = delta.whole_seconds();
    if seconds == 0 {
        return "now".to_owned();
    }
    let amount = units::human_duration(seconds.unsigned_abs());
    if seconds > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
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
            encrypted: false,
            note: None,
            contents: None,
            upload: None,
            refused: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn client_state_lives_under_the_xdg_state_directory() {
        assert_eq!(
            state_dir_from(Some("/state".into()), Some("/home/a".into())),
            Some(PathBuf::from("/state/once"))
        );
        assert_eq!(
            state_dir_from(Some("relative".into()), Some("/home/a".into())),
            Some(PathBuf::from("/home/a/.local/state/once"))
        );
        assert_eq!(state_dir_from(None, None), None);
    }

    #[test]
    fn terminal_text_keeps_lines_and_tabs_but_no_escapes() {
        assert_eq!(
            terminal_text("Hi\n\tthere\u{1b}[2J\rX\u{9b}"),
            "Hi\n\tthere [2J X "
        );
    }

    #[test]
    fn relative_times_use_the_largest_unit() {
        assert_eq!(relative(time::Duration::milliseconds(-300)), "now");
        assert_eq!(relative(time::Duration::seconds(5)), "in 5s");
        assert_eq!(relative(time::Duration::seconds(-125)), "2m 5s ago");
        assert_eq!(relative(time::Duration::hours(3)), "in 3h");
        assert_eq!(relative(time::Duration::days(-2)), "2d ago");
    }

    #[test]
    fn a_window_that_has_just_begun_shows_what_was_asked_for() {
        // `--expires 2d` is read back a moment later; it must not say "in 1d".
        let moment = time::Duration::milliseconds(1_500);
        assert_eq!(relative(time::Duration::days(2) - moment), "in 2d");
        assert_eq!(relative(time::Duration::hours(36) - moment), "in 1d 12h");
        assert_eq!(relative(time::Duration::days(7) - moment), "in 7d");
    }
}
