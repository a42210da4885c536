//! Notifications: what happened to a share or a request, told to a webhook URL and/or by e-mail
//! ([`crate::email`]), as the operator configured.
//!
//! An event is one insert per channel into the outbox of the metadata store, made on the
//! request path only when a channel is configured; delivering it is the job of
//! [`Notifier::run`], a loop beside the server that leases due events (so among many instances
//! on one database each event is in one instance's hands at a time), POSTs them signed as
//! Standard Webhooks describes (or mails them), and marks them delivered or due again after a
//! doubling wait. A receiver that is down therefore never
//! slows a request, and an event survives a restart. Delivery is at least once: an instance
//! that dies between the receiver's answer and the mark hands the event to another after its
//! lease, with the same `webhook-id`, which is how a receiver recognises the repeat.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use once_domain::Instant;
use once_domain::event::{EventKind, message_id, retry_delay};
use once_meta::{MetaStore, OutboxEvent};
use standardwebhooks::Webhook;
use tokio::sync::Notify;
use url::Url;

/// How long one delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a taken event stays with this instance: above the longest delivery (a webhook's
/// 10 s, a mail's 15 s) times a batch, so a lease never runs out while its delivery is still
/// under way.
const LEASE: Duration = Duration::from_secs(120);
const BATCH: u32 = 4;
/// Events due later (retries) or written by another instance are looked for this often.
const POLL: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(3600);
/// The receiver's answer kept as the reason of a failure, at most this long.
const REASON_LIMIT: usize = 200;

/// Checks and opens a `whsec_…` signing secret.
pub fn signer(secret: &str) -> anyhow::Result<Webhook> {
    let encoded = secret
        .strip_prefix("whsec_")
        .context("webhook_secret must start with whsec_ (then base64 of 24 to 64 random bytes)")?;
    let length = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
        .context("webhook_secret: the part after whsec_ is not base64")?
        .len();
    anyhow::ensure!(
        (24..=64).contains(&length),
        "webhook_secret holds {length} bytes; use 24 to 64 random bytes"
    );
    Webhook::new(secret).map_err(|error| anyhow::anyhow!("webhook_secret: {error}"))
}

/// Where webhook events go.
pub struct WebhookTarget {
    pub url: Url,
    pub signer: Webhook,
}

/// When failed deliveries are tried again, on every channel.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Wait before the first retry; doubles per failure up to an hour.
    pub first: Duration,
    pub max_attempts: u32,
}

/// The channels events go to: a webhook, e-mail, or both.
pub struct Channels {
    pub webhook: Option<WebhookTarget>,
    pub email: Option<crate::email::EmailTarget>,
}

const WEBHOOK: &str = "webhook";
const EMAIL: &str = "email";

pub struct Notifier {
    meta: Arc<dyn MetaStore>,
    channels: Channels,
    retry: RetryPolicy,
    client: reqwest::Client,
    /// Wakes this instance's delivery loop when it wrote an event, so delivery is prompt.
    wake: Notify,
}

impl Notifier {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        channels: Channels,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            // A redirect is the receiver's mistake: following it would send signed events to
            // wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("once/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Self {
            meta,
            channels,
            retry,
            client,
            wake: Notify::new(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.channels.webhook.is_some() || self.channels.email.is_some()
    }

    fn channel_names(&self) -> impl Iterator<Item = &'static str> {
        [
            self.channels.webhook.as_ref().map(|_| WEBHOOK),
            self.channels.email.as_ref().map(|_| EMAIL),
        ]
        .into_iter()
        .flatten()
    }

    /// Keeps an event for delivery. Never fails the caller: the thing the event tells about
    /// has happened already, and a lost notification is logged, not turned into an error.
    pub async fn emit(&self, kind: EventKind, data: serde_json::Value) {
        if !self.enabled() {
            return;
        }
        let at = time::OffsetDateTime::now_utc();
        let now = once_domain::now();
        let payload = serde_json::json!({
            "type": kind.as_str(),
            "timestamp": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "data": data,
        })
        .to_string();
        // One row per channel, so a mail server that is down does not hold back the webhook.
        for channel in self.channel_names() {
            let event = OutboxEvent {
                id: message_id(at),
                channel: channel.to_owned(),
                kind: kind.as_str().to_owned(),
                payload: payload.clone(),
                created_at: now,
                attempts: 0,
            };
            match self.meta.enqueue_event(&event).await {
                Ok(()) => {
                    metrics::counter!("once_notification_events_total", "type" => kind.as_str(), "channel" => channel)
                        .increment(1);
                }
                Err(error) => {
                    metrics::counter!("once_notification_events_lost_total").increment(1);
                    tracing::error!(%error, event = kind.as_str(), channel, "could not keep a notification event");
                }
            }
        }
        self.wake.notify_one();
    }

    /// The delivery loop, until shutdown. Does nothing without a configured webhook.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if !self.enabled() {
            return;
        }
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            // A full batch may mean more are due: go on until none is.
            loop {
                match self.deliver_due().await {
                    Ok(taken) if taken == BATCH as usize => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "could not take webhook events; trying again");
                        break;
                    }
                }
            }
        }
    }

    /// Takes the due events and tries each once; returns how many it took.
    async fn deliver_due(&self) -> once_meta::MetaResult<usize> {
        let now = once_domain::now();
        let events = self
            .meta
            .take_due_events(now, once_domain::share::add(now, LEASE), BATCH)
            .await?;
        for event in &events {
            let outcome = match event.channel.as_str() {
                WEBHOOK => match &self.channels.webhook {
                    Some(target) => self.post(target, event).await,
                    None => Err("no webhook is configured now".to_owned()),
                },
                EMAIL => match &self.channels.email {
                    Some(target) => target.send(&event.id, &event.payload).await,
                    None => Err("no e-mail is configured now".to_owned()),
                },
                other => Err(format!("unknown channel {other:?}")),
            };
            self.record(event, outcome).await;
        }
        Ok(events.len())
    }

    async fn post(&self, target: &WebhookTarget, event: &OutboxEvent) -> Result<(), String> {
        let attempt_at = once_domain::now();
        let signature = target
            .signer
            .sign(
                &event.id,
                attempt_at.unix_timestamp(),
                event.payload.as_bytes(),
            )
            .map_err(|error| format!("cannot sign: {error}"))?;
        let response = self
            .client
            .post(target.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", attempt_at.unix_timestamp().to_string())
            .header("webhook-signature", signature)
            .body(event.payload.clone())
            .send()
            .await
            .map_err(|error| describe(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(format!("the receiver answered {status}"))
    }

    async fn record(&self, event: &OutboxEvent, outcome: Result<(), String>) {
        let now = once_domain::now();
        let written = match outcome {
            Ok(()) => {
                metrics::counter!("once_notification_deliveries_total", "channel" => channel_label(&event.channel), "outcome" => "delivered")
                    .increment(1);
                self.meta.event_delivered(&event.id, now).await.map(|_| ())
            }
            Err(reason) => {
                let reason: String = reason.chars().take(REASON_LIMIT).collect();
                let retry_at = retry_delay(
                    event.attempts,
                    self.retry.first,
                    RETRY_CAP,
                    self.retry.max_attempts,
                )
                .map(|delay| once_domain::share::add(now, delay));
                let outcome = if retry_at.is_some() {
                    "failed"
                } else {
                    "given_up"
                };
                metrics::counter!("once_notification_deliveries_total", "channel" => channel_label(&event.channel), "outcome" => outcome)
                    .increment(1);
                tracing::warn!(
                    channel = %event.channel,
                    event = %event.kind,
                    id = %event.id,
                    attempts = event.attempts,
                    %reason,
                    given_up = retry_at.is_none(),
                    "notification delivery failed"
                );
                self.meta
                    .event_failed(&event.id, retry_at, &reason, now)
                    .await
            }
        };
        if let Err(error) = written {
            // The lease runs out and the event is tried again: at least once, never lost.
            tracing::warn!(%error, id = %event.id, "could not record a notification delivery");
        }
    }

    /// Removes delivered and given-up events older than `before` (the reaper's purge).
    pub async fn purge(&self, before: Instant) -> once_meta::MetaResult<u64> {
        self.meta.purge_events(before).await
    }
}

/// A transport error in a few words, never with the URL (which may hold a token the operator
/// put in it).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the receiver did not answer in time".into()
    } else if error.is_connect() {
        "cannot connect to the receiver".into()
    } else {
        "the request to the receiver failed".into()
    }
}

/// A channel name as a metric label: only the known ones, so a corrupt row cannot mint series.
fn channel_label(channel: &str) -> &'static str {
    match channel {
        WEBHOOK => WEBHOOK,
        EMAIL => EMAIL,
        _ => "unknown",
    }
}
