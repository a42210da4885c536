//! The audit log's events: what happened to a share, an upload request or a key, when, and who
//! asked (client address, user agent, the key used). The HTTP layer says who asked, the service
//! decides what happened, the stores keep the event as it is. An event never holds a secret (a
//! key's secret, a signed URL, a link's fragment, a proof) nor the name of a file: a share's
//! name is the sender's to tell, and an encrypted share's name is not the server's to know.

use crate::{Instant, KeyId, RequestId, Share, ShareId, UploadRequest};

/// Longest user agent kept, in characters; anything longer is cut.
pub const USER_AGENT_MAX: usize = 200;
/// Longest detail kept, in characters.
pub const DETAIL_MAX: usize = 200;

/// What happened. The names on the wire and in the stores are [`AuditKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    ShareCreated,
    UploadCompleted,
    UploadRefused,
    ShareClaimed,
    /// The claim that took a share's last download.
    ShareConsumed,
    ClaimRefused,
    ShareRevoked,
    /// The reaper deleted the share's bytes (used up, expired, revoked or abandoned).
    ShareReaped,
    RequestCreated,
    RequestFulfilled,
    KeyCreated,
    KeyRevoked,
}

impl AuditKind {
    pub const ALL: [AuditKind; 12] = [
        AuditKind::ShareCreated,
        AuditKind::UploadCompleted,
        AuditKind::UploadRefused,
        AuditKind::ShareClaimed,
        AuditKind::ShareConsumed,
        AuditKind::ClaimRefused,
        AuditKind::ShareRevoked,
        AuditKind::ShareReaped,
        AuditKind::RequestCreated,
        AuditKind::RequestFulfilled,
        AuditKind::KeyCreated,
        AuditKind::KeyRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::ShareCreated => "share.created",
            AuditKind::UploadCompleted => "upload.completed",
            AuditKind::UploadRefused => "upload.refused",
            AuditKind::ShareClaimed => "share.claimed",
            AuditKind::ShareConsumed => "share.consumed",
            AuditKind::ClaimRefused => "claim.refused",
            AuditKind::ShareRevoked => "share.revoked",
            AuditKind::ShareReaped => "share.reaped",
            AuditKind::RequestCreated => "request.created",
            AuditKind::RequestFulfilled => "request.fulfilled",
            AuditKind::KeyCreated => "key.created",
            AuditKind::KeyRevoked => "key.revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked: the client's address (as trusted proxies report it), its user agent, and the
/// API key it used, if any (a link's recipient or an uploader to a ticket uses none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSource {
    pub client: Option<String>,
    pub user_agent: Option<String>,
    pub key: Option<KeyId>,
}

impl AuditSource {
    /// The user agent is cut to [`USER_AGENT_MAX`] characters and loses its control
    /// characters, so no client can write lines or escapes into someone's terminal.
    pub fn new(client: Option<String>, user_agent: Option<&str>, key: Option<KeyId>) -> Self {
        Self {
            client: client.map(|client| clean(&client, USER_AGENT_MAX)),
            user_agent: user_agent
                .map(|agent| clean(agent, USER_AGENT_MAX))
                .filter(|agent| !agent.is_empty()),
            key,
        }
    }

    /// What the server does on its own (the reaper) or an administrator on the server's
    /// machine (`once keys`).
    pub fn server(user_agent: &str) -> Self {
        Self::new(None, Some(user_agent), None)
    }
}

/// Drops control characters and keeps at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter(|character| !character.is_control())
        .take(max)
        .collect()
}

/// One thing that happened. `owner` is the key whose log it belongs to (the share's or the
/// request's owner, or the key itself); `key` is the key the request was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Instant,
    pub kind: AuditKind,
    pub owner: Option<KeyId>,
    pub share: Option<ShareId>,
    pub request: Option<RequestId>,
    pub key: Option<KeyId>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
    /// A few `name=value` words: an error code, a size, downloads left. Never a file name.
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, at: Instant, source: &AuditSource) -> Self {
        Self {
            at,
            kind,
            owner: None,
            share: None,
            request: None,
            key: source.key.clone(),
            client: source.client.clone(),
            user_agent: source.user_agent.clone(),
            detail: None,
        }
    }

    /// About `share`: its id, owner and request.
    pub fn of_share(mut self, share: &Share) -> Self {
        self.share = Some(share.id.clone());
        self.owner = share.owner.clone().or(self.owner);
        if share.request_id.is_some() {
            self.request = share.request_id.clone();
        }
        self
    }

    /// About the share `id`, whose owner the service looks up.
    pub fn of_share_id(mut self, id: &ShareId) -> Self {
        self.share = Some(id.clone());
        self
    }

    /// About `request`: its id and owner.
    pub fn of_request(mut self, request: &UploadRequest) -> Self {
        self.request = Some(request.id.clone());
        self.owner = Some(request.owner.clone());
        self
    }

    /// About the request `id`, whose owner the service looks up.
    pub fn of_request_id(mut self, id: &RequestId) -> Self {
        self.request = Some(id.clone());
        self
    }

    /// About the key `id`, in that key's own log.
    pub fn of_key(mut self, id: &KeyId) -> Self {
        self.owner = Some(id.clone());
        self
    }

    /// Cut to [`DETAIL_MAX`] characters, without control characters.
    pub fn with_detail(mut self, detail: impl AsRef<str>) -> Self {
        let detail = clean(detail.as_ref(), DETAIL_MAX);
        self.detail = (!detail.is_empty()).then_some(detail);
        self
    }
}

/// What a claim that left `claimed` (the share after the claim's write) records: the claim,
/// and, when it took the last download, that the share is used up. Both have the claim's
/// time, so they sort together.
pub fn claim_events(claimed: &Share, source: &AuditSource, at: Instant) -> Vec<AuditEvent> {
    let claim = AuditEvent::new(AuditKind::ShareClaimed, at, source)
        .of_share(claimed)
        .with_detail(format!("downloads_left={}", claimed.downloads_left));
    let mut events = vec![claim];
    if claimed.downloads_left == 0 {
        events.push(
            AuditEvent::new(AuditKind::ShareConsumed, at, source)
                .of_share(claimed)
                .with_detail(format!("max_downloads={}", claimed.max_downloads)),
        );
    }
    events
}

/// The detail of a new share: sizes and limits, whether it is encrypted; never its name.
pub fn share_detail(share: &Share) -> String {
    let mut words = Vec::new();
    if let Some(size) = share.size {
        words.push(format!("size={size}"));
    }
    words.push(format!("max_downloads={}", share.max_downloads));
    words.push(format!("encrypted={}", share.encryption.is_some()));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SharePolicy, ShareSpec};

    fn at() -> Instant {
        time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
    }

    fn share(max_downloads: u32) -> Share {
        let spec = ShareSpec {
            filename: "secret plans.pdf".into(),
            size: Some(5),
            max_downloads: Some(max_downloads),
            ..ShareSpec::default()
        };
        SharePolicy::default()
            .new_share(&spec, Some(KeyId::generate()), at())
            .unwrap()
    }

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("key.used"), None);
    }

    #[test]
    fn a_user_agent_loses_control_characters_and_is_cut() {
        let long = format!("curl/8\u{1b}[31m\r\nX-Evil: 1{}", "a".repeat(500));
        let source = AuditSource::new(Some("192.0.2.1".into()), Some(&long), None);
        let agent = source.user_agent.unwrap();
        assert_eq!(agent.chars().count(), USER_AGENT_MAX);
        assert!(agent.starts_with("curl/8[31mX-Evil: 1"), "{agent}");
        assert!(!agent.chars().any(char::is_control));
        assert_eq!(AuditSource::new(None, Some("\n"), None).user_agent, None);
    }

    #[test]
    fn the_last_claim_also_records_the_share_used_up() {
        let mut claimed = share(2);
        claimed.downloads_left = 1;
        let source = AuditSource::new(Some("192.0.2.1".into()), Some("once/1"), None);
        let events = claim_events(&claimed, &source, at());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, AuditKind::ShareClaimed);
        assert_eq!(events[0].owner, claimed.owner);
        assert_eq!(events[0].detail.as_deref(), Some("downloads_left=1"));
        claimed.downloads_left = 0;
        let kinds: Vec<_> = claim_events(&claimed, &source, at())
            .iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(kinds, [AuditKind::ShareClaimed, AuditKind::ShareConsumed]);
    }

    #[test]
    fn a_share_detail_never_names_the_file() {
        let detail = share_detail(&share(1));
        assert_eq!(detail, "size=5 max_downloads=1 encrypted=false");
        assert!(!detail.contains("secret"));
    }
}
