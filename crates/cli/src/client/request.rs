//! `once request` creates a one-time upload URL for someone else; `once requests` lists yours,
//! with the link of the file once somebody has uploaded it. The URL goes to stdout alone so it
//! can be piped; everything else goes to stderr.

use anyhow::{Result, anyhow};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::config::Client;
use super::{describe_time, print_qr};
use crate::{ClientOnly, RequestArgs};

#[derive(Serialize)]
struct NewRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_downloads: Option<u32>,
}

#[derive(Deserialize)]
struct CreatedRequest {
    url: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    max_size: Option<u64>,
}

#[derive(Deserialize)]
struct RequestList {
    requests: Vec<RequestEntry>,
}

#[derive(Deserialize)]
struct RequestEntry {
    id: String,
    #[serde(default)]
    url: Option<String>,
    state: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    share: Option<ShareSummary>,
}

#[derive(Deserialize)]
struct ShareSummary {
    url: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

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
        expires_in: args
            .expires
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        filename: filename.as_ref().map(|name| name.as_str()),
        max_downloads: args.downloads,
    };
    let created: CreatedRequest = client
        .send_json(
            client.api(Method::POST, "/api/v1/requests")?.json(&body),
            "cannot create the upload request",
        )
        .await?;
    println!("{}", created.url);
    if args.qr {
        print_qr(&created.url)?;
    }
    let mut details = Vec::new();
    if let Some(max) = created.max_size {
        details.push(format!("up to {}", bytesize::ByteSize(max)));
    }
    if let Some(at) = &created.expires_at {
        details.push(format!("open until {}", describe_time(at)));
    }
    if !details.is_empty() {
        eprintln!("one upload, {}", details.join(", "));
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
    for line in table(&list.requests) {
        println!("{line}");
    }
    Ok(())
}

/// One line per request: state, id, expiry, then what matters for that state (the file's link
/// once fulfilled, the upload URL while open).
fn table(requests: &[RequestEntry]) -> Vec<String> {
    let mut lines = vec![
        format!("{:<10} {:<22} {:<40} {}", "STATE", "ID", "EXPIRES", "")
            .trim_end()
            .to_owned(),
    ];
    for request in requests {
        let expires = request
            .expires_at
            .as_deref()
            .map(describe_time)
            .unwrap_or_else(|| "-".to_owned());
        let detail = match &request.share {
            Some(share) => {
                let mut detail = share.url.clone();
                let name = share.filename.as_deref().or(request.filename.as_deref());
                match (name, share.size) {
                    (Some(name), Some(size)) => {
                        detail.push_str(&format!("  {name} ({})", bytesize::ByteSize(size)));
                    }
                    (Some(name), None) => detail.push_str(&format!("  {name}")),
                    (None, _) => {}
                }
                detail
            }
            None if request.state == "open" => request.url.clone().unwrap_or_default(),
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
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_share_links_for_fulfilled_requests() {
        let list: RequestList = serde_json::from_value(serde_json::json!({
            "requests": [
                {
                    "id": "AAAAAAAAAAAAAAAAAAAAAA", "url": "https://h/r/AAAAAAAAAAAAAAAAAAAAAA",
                    "state": "fulfilled", "max_size": 10, "expires_at": "not a time",
                    "created_at": "2024-01-01T00:00:00Z", "fulfilled_at": "2024-01-01T00:00:01Z",
                    "share": {"id": "BBBBBBBBBBBBBBBBBBBBBB", "url": "https://h/s/BBBBBBBBBBBBBBBBBBBBBB",
                              "filename": "x.bin", "size": 2048}
                },
                {
                    "id": "CCCCCCCCCCCCCCCCCCCCCC", "url": "https://h/r/CCCCCCCCCCCCCCCCCCCCCC",
                    "state": "expired", "max_size": 10, "share": null
                }
            ]
        }))
        .unwrap();
        let lines = table(&list.requests);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("STATE"));
        assert!(lines[1].starts_with("fulfilled  AAAAAAAAAAAAAAAAAAAAAA not a time"));
        assert!(lines[1].ends_with("https://h/s/BBBBBBBBBBBBBBBBBBBBBB  x.bin (2.0 KiB)"));
        assert!(lines[2].starts_with("expired    CCCCCCCCCCCCCCCCCCCCCC -"));
        assert!(!lines[2].contains("https://"));
    }
}
