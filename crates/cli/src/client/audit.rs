//! `once audit [--share ID|LINK] [--request ID|LINK] [--since 1h|RFC3339] [--json]`: the audit log of your shares,
//! requests and key, oldest first, every page of it. Lines for people; `--json` prints one
//! JSON array of the API's event objects.

use anyhow::{Context, Result};
use once_api::{AuditEventView, AuditList};
use reqwest::Method;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::config::Client;
use super::link::{request_id_from_ref, share_id_from_ref};
use super::terminal_text;
use crate::AuditArgs;

/// Events asked for per request.
const PAGE: u32 = 1000;

pub async fn run(args: AuditArgs) -> Result<()> {
    let client = Client::from_args(&args.client)?;
    let mut query = format!("limit={PAGE}");
    if let Some(share) = &args.share {
        query.push_str(&format!("&share={}", share_id_from_ref(share)?));
    }
    if let Some(request) = &args.request {
        query.push_str(&format!("&request={}", request_id_from_ref(request)?));
    }
    if let Some(since) = &args.since {
        let since = parse_since(since, OffsetDateTime::now_utc())?;
        let since = since.format(&Rfc3339).context("format the time")?;
        query.push_str(&format!("&since={}", since.replace('+', "%2B")));
    }
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/audit?{query}");
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let page: AuditList = client
            .send_json(client.api(Method::GET, &path)?, "cannot read the audit log")
            .await?;
        events.extend(page.events);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    if events.is_empty() {
        eprintln!("no events");
    }
    for event in &events {
        println!("{}", line(event));
    }
    Ok(())
}

/// `1h`, `7d` (that long before `now`) or an RFC 3339 time.
fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let back = humantime::parse_duration(text).with_context(|| {
        format!("--since {text:?} is neither a duration (1h, 7d) nor an RFC 3339 time")
    })?;
    Ok(now - back)
}

/// One event: time, kind, address, user agent, then what it was about and its detail.
fn line(event: &AuditEventView) -> String {
    let at = event
        .at
        .format(&Rfc3339)
        .unwrap_or_else(|_| event.at.to_string());
    let mut about = Vec::new();
    if let Some(id) = &event.share_id {
        about.push(format!("share={id}"));
    }
    if let Some(id) = &event.request_id {
        about.push(format!("request={id}"));
    }
    if let Some(id) = &event.key_id {
        about.push(format!("key={id}"));
    }
    if let Some(detail) = &event.detail {
        about.push(terminal_text(detail));
    }
    format!(
        "{at}  {:<17}  {:<15}  {:<24}  {}",
        event.kind,
        event.client.as_deref().unwrap_or("-"),
        format!(
            "\"{}\"",
            terminal_text(event.user_agent.as_deref().unwrap_or(""))
        ),
        about.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap()
    }

    #[test]
    fn since_is_a_duration_back_or_a_time() {
        assert_eq!(
            parse_since("1h", now()).unwrap(),
            now() - time::Duration::hours(1)
        );
        assert_eq!(parse_since("2024-01-01T00:00:00Z", now()).unwrap(), now());
        assert!(parse_since("yesterday", now()).is_err());
    }

    #[test]
    fn a_line_shows_time_kind_address_agent_and_detail() {
        let event = AuditEventView {
            seq: 7,
            at: now(),
            kind: "claim.refused".into(),
            share_id: Some("AAAAAAAAAAAAAAAAAAAAAA".into()),
            request_id: None,
            key_id: None,
            client: Some("192.0.2.1".into()),
            user_agent: Some("curl/8\u{1b}[2J".into()),
            detail: Some("code=share_consumed".into()),
        };
        let shown = line(&event);
        assert!(
            shown.starts_with("2024-01-01T00:00:00Z  claim.refused "),
            "{shown}"
        );
        assert!(shown.contains("192.0.2.1"), "{shown}");
        assert!(shown.contains("\"curl/8 [2J\""), "{shown}");
        assert!(
            shown.ends_with("share=AAAAAAAAAAAAAAAAAAAAAA code=share_consumed"),
            "{shown}"
        );
    }
}
