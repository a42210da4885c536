//! `once request` creates a one-time upload URL for someone else; `once requests` lists yours,
//! with the link of the file once somebody has uploaded it. The URL goes to stdout alone so it
//! can be piped; everything else goes to stderr.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use once_api::{NewRequest, RequestList, RequestView};
use reqwest::Method;
use time::OffsetDateTime;

use super::config::Client;
use super::request_keys::RequestKeys;
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
    if filename.is_some() && !args.no_encrypt {
        bail!(
            "--filename fixes a name the server would keep in plaintext, and an encrypted \
             request's file name travels sealed for you alone: leave out --filename (the file \
             keeps the uploader's name), or add --no-encrypt"
        );
    }
    // The private key is on disk before the request exists: a request whose key was lost
    // would take an upload nobody can read.
    let keys = if args.no_encrypt {
        None
    } else {
        let store = RequestKeys::of_user()?;
        let (pair, path) = store.create()?;
        Some((store, pair, path))
    };
    let body = NewRequest {
        max_size: args.max_size.map(|size| size.as_u64()),
        expires_in: args.expires.map(super::send::whole_seconds),
        filename: filename.map(|name| name.as_str().to_owned()),
        max_downloads: args.downloads,
        note: args.note,
        from: args.from,
        encrypted: keys.is_some(),
        ..NewRequest::default()
    };
    let created: RequestView = match client
        .send_json(
            client.api(Method::POST, "/api/v1/requests")?.json(&body),
            "cannot create the upload request",
        )
        .await
    {
        Ok(created) => created,
        Err(error) => {
            if let Some((store, pair, _)) = &keys {
                store.discard(pair);
            }
            return Err(error);
        }
    };
    let url = match &keys {
        Some((_, pair, _)) => format!("{}#{}", created.url, pair.public_fragment()),
        None => created.url.clone(),
    };
    if let Some((store, pair, _)) = &keys
        && let Err(error) = store.remember_link(pair, &url)
    {
        eprintln!("note: {error:#}");
    }
    println!("{url}");
    if args.qr {
        print_qr(&url)?;
    }
    eprintln!(
        "one upload, up to {}, open until {}",
        super::units::human_size(created.max_size),
        describe_time(created.expires_at)
    );
    match &keys {
        Some((_, _, path)) => eprintln!(
            "end-to-end encrypted: the uploader's browser or `once send --to` encrypts the file \
             to a key only you hold, kept in {} (without it the upload cannot be read); \
             `once requests` lists the file once it is there, `once get` opens it",
            path.display()
        ),
        None => {
            eprintln!("not encrypted: `curl -T FILE URL` works, and the server can read the file")
        }
    }
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
    // Encrypted requests' whole links (with the public key) live only with their keys here.
    let links = RequestKeys::of_user()
        .map(|store| store.links())
        .unwrap_or_default();
    // The server knows an encrypted upload only as `encrypted`; its real name opens here.
    let mut requests = list.requests;
    for request in requests.iter_mut().filter(|request| request.encrypted) {
        if let Some(share) = request.share.as_mut()
            && let Some(name) = super::get::request_upload_name(&client, &share.url).await
        {
            share.filename = format!("{} (encrypted)", super::terminal_text(&name));
        }
    }
    for line in table(&requests, &links, OffsetDateTime::now_utc()) {
        println!("{line}");
    }
    Ok(())
}

/// One line per request: state, id, expiry, then what matters for that state (the file's link
/// once fulfilled, the upload URL while open); below it, indented, who asks and the note the
/// uploader sees, where the request has them. `links` holds the whole links of encrypted
/// requests made here, by their URL.
fn table(
    requests: &[RequestView],
    links: &HashMap<String, String>,
    now: OffsetDateTime,
) -> Vec<String> {
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
            None if request.state == "open" => {
                links.get(&request.url).unwrap_or(&request.url).clone()
            }
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
            refused: Vec::new(),
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
            RequestView {
                encrypted: true,
                ..request("EEEEEEEEEEEEEEEEEEEEEE", "open")
            },
        ];
        // The encrypted request made here shows its whole link, with the public key.
        let whole = format!("https://h/r/EEEEEEEEEEEEEEEEEEEEEE#{}", "k".repeat(43));
        let links = HashMap::from([(
            "https://h/r/EEEEEEEEEEEEEEEEEEEEEE".to_owned(),
            whole.clone(),
        )]);
        let lines = table(&list, &links, now);
        assert_eq!(lines.len(), 5);
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
        assert!(lines[4].ends_with(&whole), "{}", lines[4]);
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
            refused: Vec::new(),
        };
        let lines = table(&[request], &HashMap::new(), now);
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
