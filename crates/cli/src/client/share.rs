//! `once list`, `once status SHARE` and `once revoke SHARE`: the owner's shares, the owner's
//! view of one share and revoking it. SHARE may be the bare id or the link itself, since the
//! link is what people keep around.

use anyhow::{Context, Result};
use once_api::{ShareList, ShareView};
use reqwest::Method;
use time::OffsetDateTime;

use super::config::{Client, ensure_success};
use super::link::share_id_from_ref;
use super::{describe_time_at, terminal_text};
use crate::{ListArgs, ShareRef};

/// `once list`: the newest shares first, one line each; `--all` follows every page.
pub async fn list(args: ListArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    let mut shares = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/api/v1/shares?limit=100".to_owned();
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let page: ShareList = client
            .send_json(client.api(Method::GET, &path)?, "cannot list the shares")
            .await?;
        shares.extend(page.shares);
        match page.next {
            Some(next) if args.all => after = Some(next),
            Some(_) => {
                if !shares.is_empty() {
                    eprintln!("(the newest {}; --all lists every share)", shares.len());
                }
                break;
            }
            None => break,
        }
    }
    if shares.is_empty() {
        eprintln!("no shares");
        return Ok(());
    }
    for line in table(&shares, OffsetDateTime::now_utc()) {
        println!("{line}");
    }
    Ok(())
}

/// A header line, then one line per share: what a recipient finds now, downloads left, expiry,
/// name and size, link.
fn table(shares: &[ShareView], now: OffsetDateTime) -> Vec<String> {
    let mut lines = vec![
        "AVAILABILITY     LEFT  EXPIRES                                   NAME  LINK".to_owned(),
    ];
    for share in shares {
        let size = share
            .size
            .map(|bytes| format!(" ({})", bytesize::ByteSize(bytes)))
            .unwrap_or_default();
        lines.push(format!(
            "{:<16} {:>4}  {:<40}  {}{size}  {}",
            share.availability,
            share.downloads_left,
            describe_time_at(share.expires_at, now),
            share.filename,
            share.url
        ));
    }
    lines
}

pub async fn status(args: ShareRef) -> Result<()> {
    let id = share_id_from_ref(&args.share)?;
    let client = Client::from_args(&args.client)?;
    let share: ShareView = client
        .send_json(
            client.api(Method::GET, &format!("/api/v1/shares/{id}"))?,
            "cannot fetch the share",
        )
        .await?;
    for (label, value) in status_lines(&share, OffsetDateTime::now_utc()) {
        // A note may have several lines; the later ones line up under the first.
        let mut lines = value.split('\n');
        println!("{label:<16}{}", lines.next().unwrap_or_default());
        for line in lines {
            println!("{:<16}{line}", "");
        }
    }
    Ok(())
}

pub async fn revoke(args: ShareRef) -> Result<()> {
    let id = share_id_from_ref(&args.share)?;
    let client = Client::from_args(&args.client)?;
    let response = client
        .send(client.api(Method::DELETE, &format!("/api/v1/shares/{id}"))?)
        .await?;
    ensure_success(response)
        .await
        .context("cannot revoke the share")?;
    println!("revoked");
    Ok(())
}

/// The owner's view as label/value lines, in the order a reader asks about them; lines that
/// do not apply (no size yet, no lease) are left out.
fn status_lines(share: &ShareView, now: OffsetDateTime) -> Vec<(&'static str, String)> {
    let time = |at: OffsetDateTime| describe_time_at(at, now);
    let mut lines = vec![
        ("id", share.id.clone()),
        ("url", share.url.clone()),
        ("state", share.state.clone()),
        ("availability", share.availability.clone()),
        ("filename", share.filename.clone()),
        (
            "encryption",
            if share.encrypted {
                // The server holds only `encrypted` as the name: the real one is sealed.
                "end to end: the name and the contents open only with the link's key".to_owned()
            } else {
                "none: the server can read the file".to_owned()
            },
        ),
    ];
    if let Some(bytes) = share.size {
        lines.push((
            "size",
            format!("{} ({bytes} bytes)", bytesize::ByteSize(bytes)),
        ));
    }
    if let Some(note) = &share.note {
        lines.push(("note", terminal_text(note)));
    }
    lines.push((
        "downloads left",
        format!("{} of {}", share.downloads_left, share.max_downloads),
    ));
    lines.push(("created", time(share.created_at)));
    lines.push(("expires", time(share.expires_at)));
    if let Some(at) = share.lease_until {
        lines.push(("lease until", time(at)));
    }
    lines.push(("upload attempts", share.upload_attempts.to_string()));
    lines.push(("preview hits", share.preview_hits.to_string()));
    // Uploads after the ticket had its file: who tried, and what they sent (by hash).
    for refused in &share.refused {
        lines.push(("refused upload", refused_line(refused, now)));
    }
    lines
}

/// One refused upload kept as evidence, on one line.
pub(super) fn refused_line(refused: &once_api::RefusedUploadView, now: OffsetDateTime) -> String {
    let received = if refused.truncated {
        format!("first {} bytes read", refused.received_size)
    } else {
        format!("{} bytes", refused.received_size)
    };
    let declared = refused
        .declared_size
        .map(|size| format!(", declared {size}"))
        .unwrap_or_default();
    let hash = refused
        .sha256
        .as_deref()
        .map(|hash| format!(", sha256 {hash}"))
        .unwrap_or_default();
    format!(
        "{} from {} ({}): {received}{declared}{hash}{}",
        describe_time_at(refused.at, now),
        refused.client_address,
        terminal_text(&refused.user_agent),
        if refused.kept { ", kept" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_a_line_per_share_after_its_header() {
        let now = OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap();
        let mut share = super::super::fixtures::share("AAAAAAAAAAAAAAAAAAAAAA", now);
        share.size = Some(2048);
        let lines = table(&[share.clone(), share], now);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("AVAILABILITY"));
        assert!(lines[1].contains("(2.0 KiB)"), "{}", lines[1]);
        assert!(
            lines[1].contains("/s/AAAAAAAAAAAAAAAAAAAAAA"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn status_shows_present_fields_in_order() {
        let now = OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap();
        let mut share = super::super::fixtures::share("AAAAAAAAAAAAAAAAAAAAAA", now);
        share.size = Some(2048);
        share.max_downloads = 3;
        let lines = status_lines(&share, now);
        let labels: Vec<_> = lines.iter().map(|(label, _)| *label).collect();
        assert_eq!(
            labels,
            [
                "id",
                "url",
                "state",
                "availability",
                "filename",
                "encryption",
                "size",
                "downloads left",
                "created",
                "expires",
                "upload attempts",
                "preview hits"
            ]
        );
        assert!(lines[5].1.starts_with("none"), "{}", lines[5].1);
        assert_eq!(lines[6].1, "2.0 KiB (2048 bytes)");
        assert_eq!(lines[7].1, "1 of 3");
        assert_eq!(lines[9].1, "2024-01-02T00:00:00Z (in 1d)");

        share.size = None;
        share.lease_until = Some(now + time::Duration::minutes(5));
        let labels: Vec<_> = status_lines(&share, now).iter().map(|(l, _)| *l).collect();
        assert!(!labels.contains(&"size") && labels.contains(&"lease until"));
        assert!(!labels.contains(&"note"));
    }

    #[test]
    fn status_shows_the_note_after_the_file() {
        let now = OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap();
        let mut share = super::super::fixtures::share("AAAAAAAAAAAAAAAAAAAAAA", now);
        share.note = Some("Hi Bob,\nthe slides.".to_owned());
        let lines = status_lines(&share, now);
        let note = lines
            .iter()
            .position(|(label, _)| *label == "note")
            .unwrap();
        assert_eq!(lines[note - 1].0, "size");
        assert_eq!(lines[note].1, "Hi Bob,\nthe slides.");
    }
}
