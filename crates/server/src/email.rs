//! E-mail notifications: the same events as the webhook, as a short plain-text message to the
//! addresses the operator configured, sent over SMTP with `lettre` from the outbox (never on the
//! request path; see [`crate::webhooks`]).

use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, Mailboxes, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

/// How long one message may take (connect, TLS, the SMTP dialogue) before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

pub struct EmailTarget {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Mailboxes,
}

impl EmailTarget {
    /// `url` as lettre reads it: `smtp://host:25` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (TLS from the start).
    pub fn new(url: &str, from: &str, to: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| anyhow::anyhow!("smtp_url: {error}"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("email_from {from:?} is not a mail address"))?;
        let to: Mailboxes = to
            .parse()
            .with_context(|| format!("email_to {to:?} is not a list of mail addresses"))?;
        anyhow::ensure!(to.iter().next().is_some(), "email_to names no address");
        Ok(Self {
            transport,
            from,
            to,
        })
    }

    /// Sends one event (its outbox body) as a message; the error is a short reason.
    pub async fn send(&self, id: &str, payload: &str) -> Result<(), String> {
        let event: Value =
            serde_json::from_str(payload).map_err(|error| format!("a corrupt event: {error}"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(&event))
            // The outbox id makes a resent message recognisable as the same one.
            .message_id(Some(format!("<{id}@once>")))
            .header(ContentType::TEXT_PLAIN);
        for address in self.to.iter() {
            builder = builder.to(address.clone());
        }
        let message = builder
            .body(body(&event, payload))
            .map_err(|error| format!("cannot build the message: {error}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|error| {
                if error.is_permanent() {
                    "the mail server refused the message".to_owned()
                } else if error.is_timeout() {
                    "the mail server did not answer in time".to_owned()
                } else {
                    "cannot hand the message to the mail server".to_owned()
                }
            })
    }
}

/// What the event is about, in words: a plain share's name, else its short id.
fn what(data: &Value) -> String {
    match data["filename"].as_str() {
        Some(name) => format!("\"{name}\""),
        None => match data["share"].as_str() {
            Some(share) => format!("share {share}"),
            None => format!("request {}", data["request"].as_str().unwrap_or("?")),
        },
    }
}

fn subject(event: &Value) -> String {
    let data = &event["data"];
    let what = what(data);
    match event["type"].as_str().unwrap_or_default() {
        "share.claimed" => format!("once: a download of {what} was claimed"),
        "share.consumed" => format!("once: {what} was downloaded; its link is now used up"),
        "share.expired_unread" => format!("once: {what} expired without being downloaded"),
        "request.fulfilled" => format!("once: a file arrived for your upload request ({what})"),
        "upload.duplicate" => {
            format!("once ALERT: an upload to an already used link was refused ({what})")
        }
        other => format!("once: {other}"),
    }
}

fn body(event: &Value, payload: &str) -> String {
    let mut text = String::new();
    text.push_str(&subject(event));
    text.push_str(".\n\n");
    if let Some(at) = event["timestamp"].as_str() {
        text.push_str(&format!("When: {at}\n"));
    }
    let data = &event["data"];
    for (label, key) in [
        ("Share", "share"),
        ("Request", "request"),
        ("Key", "owner_key"),
        ("Size", "size"),
        ("Downloads left", "downloads_left"),
    ] {
        match &data[key] {
            Value::Null => {}
            Value::String(text_value) => text.push_str(&format!("{label}: {text_value}\n")),
            other => text.push_str(&format!("{label}: {other}\n")),
        }
    }
    text.push_str(
        "\nThe ids are shortened on purpose: a whole id is a link anyone could use. \
         `once status` and `once requests` show the whole ones.\n\nThe event as JSON:\n",
    );
    text.push_str(payload);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_a_plain_file_and_only_the_short_id_of_an_encrypted_one() {
        let plain = serde_json::json!({"type": "share.consumed", "data": {"filename": "q3.pdf", "share": "Ab12Cd…"}});
        assert_eq!(
            subject(&plain),
            "once: \"q3.pdf\" was downloaded; its link is now used up"
        );
        let sealed = serde_json::json!({"type": "share.consumed", "data": {"filename": null, "share": "Ab12Cd…"}});
        assert_eq!(
            subject(&sealed),
            "once: share Ab12Cd… was downloaded; its link is now used up"
        );
        let alarm = serde_json::json!({"type": "upload.duplicate", "data": {"request": "Zz99Yy…"}});
        assert!(subject(&alarm).contains("ALERT") && subject(&alarm).contains("request Zz99Yy…"));
    }

    #[test]
    fn bad_addresses_are_refused_with_the_setting_named() {
        let error = EmailTarget::new("smtp://127.0.0.1:25", "not an address", "a@example.com")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("email_from"), "{error}");
        let error = EmailTarget::new("smtp://127.0.0.1:25", "once@example.com", "")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("email_to"), "{error}");
    }
}
