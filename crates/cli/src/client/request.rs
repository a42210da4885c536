//! `once request` creates a one-time upload URL for someone else; `once requests` lists yours,
//! with the link of the file once somebody has uploaded it. The URL goes to stdout alone so it
//! can be piped; everything else goes to stderr.

use anyhow::{Result, anyhow};
use once_api::{NewRequest, RequestList, RequestView};
use reqwest::Method;
use time::OffsetDateTime;

use super::config::Client;
use super::{describe_time, describe_time_at, print_qr, terminal_text};
use crate::{ClientOnly, RequestArgs};

pub async fn run(args: RequestArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    // Checked here so a bad name fails before anything is created.
    let filename = args
        .filename
        .as_deref()
        .map(once_domain::Filename::parse)
        .transpose()
        .map_err(|error| anyhow!("{error}"))?;
    let body = NewRequest {
        max_size: args.max_size.map(|size| size.as_u64()),
        expires_in: args.expires.map(super::send::whole_seconds),
        filename: filename.map(|name| name.as_str().to_owned()),
        max_downloads: args.downloads,
        note: args.note,
        from: args.from,
        ..NewRequest::default()
    };
    let created: RequestView = client
        .send_json(
            client.api(Method::POST, "/api/v1/requests")?.json(&body),
            "cannot create the upload request",
        )
        .await?;
    println!("{}", created.url);
    if args.qr {
        print_qr(&created.url)?;
    }
    eprintln!(
        "one upload, up to {}, open until {}",
        super::units::human_size(created.max_size),
        describe_time(created.expires_at)
    );
    Ok(())
}

pub async fn list(args: ClientOnly) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    let list: RequestList = client
        .send_json(
            client.api(Method::GET, "/api/v1/requests")?,
            "cannot list upload requests",
        )
        .await?;
    if list.requests.is_empty() {
        eprintln!("no upload requests");
        return Ok(());
    }
    for line in table(&list.requests, OffsetDateTime::now_utc()) {
        println!("{line}");
    }
    Ok(())
}

/// One line per request: state, id, expiry, then what matters for that state (the file's link
/// once fulfilled, the upload URL while open); below it, indented, who asks and the note the
/// uploader sees, where the request has them.
fn table(requests: &[RequestView], now: OffsetDateTime) -> Vec<String> {
    let mut lines = vec![
        format!("{:<10} {:<22} {:<40} {}", "STATE", "ID", "EXPIRES", "")
            .trim_end()
            .to_owned(),
    ];
    for request in requests {
        let expires = describe_time_at(request.expires_at, now);
        let detail = match &request.share {
            Some(share) => {
                let mut detail = share.url.clone();
                match share.size {
                    Some(size) => detail.push_str(&format!(
                        "  {} ({})",
                        share.filename,
                        bytesize::ByteSize(size)
                    )),
                    None => detail.push_str(&format!("  {}", share.filename)),
                }
                detail
            }
            None if request.state == "open" => request.url.clone(),
            None => String::new(),
        };
        lines.push(
            format!(
                "{:<10} {:<22} {:<40} {detail}",
                request.state, request.id, expires
            )
            .trim_end()
            .to_owned(),
        );
        if let Some(from) = &request.from {
            lines.push(format!("{:11}from  {}", "", terminal_text(from)));
        }
        if let Some(note) = &request.note {
            for (number, line) in terminal_text(note).split('\n').enumerate() {
                let label = if number == 0 { "note" } else { "" };
                lines.push(format!("{:11}{label:<4}  {line}", "").trim_end().to_owned());
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_share_links_for_fulfilled_requests() {
        let now = OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap();
        let request = |id: &str, state: &str| RequestView {
            id: id.to_owned(),
            url: format!("https://h/r/{id}"),
            state: state.to_owned(),
            encrypted: false,
            filename: None,
            max_size: 10,
            max_downloads: 1,
            share_expires_in: 3600,
            created_at: now,
            expires_at: now + time::Duration::hours(3),
            fulfilled_at: None,
            refused_uploads: 0,
            note: None,
            from: None,
            upload: once_api::RequestUpload {
                method: "PUT".to_owned(),
                url: format!("https://h/r/{id}"),
                expires_at: now,
            },
            share: None,
        };
        let mut fulfilled = request("AAAAAAAAAAAAAAAAAAAAAA", "fulfilled");
        let mut share = super::super::fixtures::share("BBBBBBBBBBBBBBBBBBBBBB", now);
        share.filename = "x.bin".to_owned();
        share.size = Some(2048);
        fulfilled.share = Some(share);
        let list = [
            fulfilled,
            request("CCCCCCCCCCCCCCCCCCCCCC", "expired"),
            request("DDDDDDDDDDDDDDDDDDDDDD", "open"),
        ];
        let lines = table(&list, now);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("STATE"));
        assert!(
            lines[1].starts_with("fulfilled  AAAAAAAAAAAAAAAAAAAAAA 2024-01-01T03:00:00Z (in 3h)"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("https://h/s/BBBBBBBBBBBBBBBBBBBBBB  x.bin (2.0 KiB)"));
        assert!(lines[2].starts_with("expired    CCCCCCCCCCCCCCCCCCCCCC 2024-01-01T03:00:00Z"));
        assert!(!lines[2].contains("https://"));
        assert!(lines[3].ends_with("https://h/r/DDDDDDDDDDDDDDDDDDDDDD"));
    }

    #[test]
    fn table_shows_who_asks_and_the_note_under_the_request() {
        let now = OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap();
        let request = RequestView {
            id: "AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            url: "https://h/r/AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            state: "open".to_owned(),
            encrypted: false,
            filename: None,
            max_size: 10,
            max_downloads: 1,
            share_expires_in: 3600,
            created_at: now,
            expires_at: now,
            fulfilled_at: None,
            refused_uploads: 0,
            note: Some("The signed contract,\nplease.".to_owned()),
            from: Some("Alice".to_owned()),
            upload: once_api::RequestUpload {
                method: "PUT".to_owned(),
                url: "https://h/r/AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
                expires_at: now,
            },
            share: None,
        };
        let lines = table(&[request], now);
        assert_eq!(
            lines[2..],
            [
                "           from  Alice",
                "           note  The signed contract,",
                "                 please.",
            ]
        );
    }
}
