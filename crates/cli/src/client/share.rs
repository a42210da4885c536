//! `once status SHARE` and `once revoke SHARE`: the owner's view of one share and revoking it.
//! SHARE may be the bare id or the link itself, since the link is what people keep around.

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::Value;

use super::config::{Client, ensure_success};
use super::{describe_time, share_id_from_ref};
use crate::ShareRef;

pub async fn status(args: ShareRef) -> Result<()> {
    let id = share_id_from_ref(&args.share)?;
    let client = Client::from_args(&args.client)?;
    // Read as loose JSON: the owner's view may gain fields, and a missing one is just skipped.
    let share: Value = client
        .send_json(
            client.api(Method::GET, &format!("/api/v1/shares/{id}"))?,
            "cannot fetch the share",
        )
        .await?;
    for (label, value) in status_lines(&share) {
        println!("{label:<16}{value}");
    }
    Ok(())
}

pub async fn revoke(args: ShareRef) -> Result<()> {
    let id = share_id_from_ref(&args.share)?;
    let client = Client::from_args(&args.client)?;
    let response = client
        .api(Method::DELETE, &format!("/api/v1/shares/{id}"))?
        .send()
        .await
        .with_context(|| format!("cannot reach {}", client.settings.server))?;
    ensure_success(response)
        .await
        .context("cannot revoke the share")?;
    println!("revoked");
    Ok(())
}

/// The owner's view as label/value lines, in the order a reader asks about them.
fn status_lines(share: &Value) -> Vec<(&'static str, String)> {
    let text = |key: &str| match share.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let number = |key: &str| share.get(key).and_then(Value::as_u64);
    let mut lines = Vec::new();
    let mut push = |label, value: Option<String>| {
        if let Some(value) = value {
            lines.push((label, value));
        }
    };
    push("id", text("id"));
    push("url", text("url"));
    push("state", text("state"));
    push("availability", text("availability"));
    push("filename", text("filename"));
    push(
        "size",
        number("size").map(|bytes| format!("{} ({bytes} bytes)", bytesize::ByteSize(bytes))),
    );
    push(
        "downloads left",
        match (number("downloads_left"), number("max_downloads")) {
            (Some(left), Some(max)) => Some(format!("{left} of {max}")),
            (Some(left), None) => Some(left.to_string()),
            (None, Some(max)) => Some(format!("? of {max}")),
            (None, None) => None,
        },
    );
    push("created", text("created_at").map(|at| describe_time(&at)));
    push("expires", text("expires_at").map(|at| describe_time(&at)));
    push(
        "lease until",
        text("lease_until").map(|at| describe_time(&at)),
    );
    push("upload attempts", text("upload_attempts"));
    push("preview hits", text("preview_hits"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_present_fields_in_order() {
        let share = serde_json::json!({
            "id": "AAAAAAAAAAAAAAAAAAAAAA",
            "state": "ready",
            "availability": "available",
            "filename": "a.txt",
            "size": 2048,
            "downloads_left": 1,
            "max_downloads": 3,
            "lease_until": null,
            "upload_attempts": 1,
            "preview_hits": 0,
        });
        let lines = status_lines(&share);
        let labels: Vec<_> = lines.iter().map(|(label, _)| *label).collect();
        assert_eq!(
            labels,
            [
                "id",
                "state",
                "availability",
                "filename",
                "size",
                "downloads left",
                "upload attempts",
                "preview hits"
            ]
        );
        assert_eq!(lines[4].1, "2.0 KiB (2048 bytes)");
        assert_eq!(lines[5].1, "1 of 3");
    }
}
