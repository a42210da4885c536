//! Server configuration: one typed struct with defaults, filled from flags > `ONCE_*`
//! environment variables > an optional TOML file (`--config`). `--print-config` shows the result
//! with secrets redacted. Each setting is declared once, in `settings!` below; `setting.rs`
//! turns the declarations into the flags, the file's keys, the defaults and the printer.

mod setting;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

use setting::{positive, settings};

settings! {
    /// Address to listen on
    bind: SocketAddr = "127.0.0.1:8080", env "ONCE_BIND";
    /// Directory for the SQLite database, blobs and the master secret
    data_dir: PathBuf = "once-data", env "ONCE_DATA_DIR";
    /// Base URL used in links, e.g. https://once.example.com when behind a proxy
    /// [default: http://<Host header>]
    public_url: Url, env "ONCE_PUBLIC_URL";
    /// Reverse proxies (addresses or networks, comma-separated, e.g. 127.0.0.1,10.0.0.0/8)
    /// whose X-Forwarded-For/-Proto/-Host headers are believed; from anyone else they are
    /// ignored [default: none]
    trusted_proxies: ProxyList, env "ONCE_TRUSTED_PROXIES";
    /// PEM certificate chain to serve HTTPS with (with tls_key); reloaded when the file
    /// changes or on SIGHUP
    tls_cert: PathBuf, env "ONCE_TLS_CERT";
    /// PEM private key of tls_cert
    tls_key: PathBuf, env "ONCE_TLS_KEY";
    /// Serve HTTPS with a certificate for these domains (comma-separated), obtained and
    /// renewed over ACME (HTTP-01 on http_bind) and cached in <data dir>/acme
    acme_domain: DomainList, env "ONCE_ACME_DOMAIN";
    /// Contact address given to the ACME certificate authority, for its notices
    acme_email: String, env "ONCE_ACME_EMAIL";
    /// ACME directory of the certificate authority
    acme_directory: Url = "https://acme-v02.api.letsencrypt.org/directory",
        env "ONCE_ACME_DIRECTORY";
    /// Extra PEM root certificate to trust for the ACME directory; for testing against a CA
    /// such as pebble
    acme_ca_cert: PathBuf, env "ONCE_ACME_CA_CERT";
    /// Plain HTTP listener beside HTTPS: answers ACME challenges and redirects everything
    /// else to https:// [default: 0.0.0.0:80 with acme_domain, else off]
    http_bind: SocketAddr, env "ONCE_HTTP_BIND";
    /// Metadata store URL (`sqlite://path`) [default: sqlite in the data directory]
    database_url: String, env "ONCE_DATABASE_URL", secret redact_password;
    /// 64 hex characters shared by every instance; signs URLs and seals key secrets
    /// [default: generated into <data dir>/master.key]
    master_secret: String, env "ONCE_MASTER_SECRET", secret redact;
    /// Ensure this API key (`KEYID.SECRET`) exists at start-up
    bootstrap_key: String, env "ONCE_BOOTSTRAP_KEY", secret redact;
    /// How long a claimant may resume a download
    claim_lease: Duration = "10m", env "ONCE_CLAIM_LEASE", check positive;
    /// Default share lifetime
    default_expires_in: Duration = "7d", env "ONCE_DEFAULT_EXPIRES_IN";
    /// Longest share lifetime a client may ask for
    max_expires_in: Duration = "30d", env "ONCE_MAX_EXPIRES_IN";
    /// How long an upload ticket stays valid
    upload_expires_in: Duration = "10m", env "ONCE_UPLOAD_EXPIRES_IN", check positive;
    /// Largest file accepted
    max_upload_size: ByteSize = "10 GiB", env "ONCE_MAX_UPLOAD_SIZE";
    /// Uploads larger than this (or of unknown size) go in parts of this size, so no request
    /// body is larger (a proxy's body limit must allow it; S3 needs 5 MiB to 5 GiB)
    upload_part_size: ByteSize = "64 MiB", env "ONCE_UPLOAD_PART_SIZE";
    /// Most downloads one share may allow
    max_downloads: u32 = 1000, env "ONCE_MAX_DOWNLOADS", check positive;
    /// Time between reaper passes; 0s disables the built-in reaper
    reap_interval: Duration = "1m", env "ONCE_REAP_INTERVAL";
    /// Age after which unreferenced blobs and stale upload files are removed
    orphan_grace: Duration = "1h", env "ONCE_ORPHAN_GRACE";
    /// How long an upload that started in time may take to finish
    upload_grace: Duration = "24h", env "ONCE_UPLOAD_GRACE";
    /// How long audit log events are kept; the reaper deletes older ones
    audit_retention: Duration = "90d", env "ONCE_AUDIT_RETENTION", check positive;
    /// How long a browser stays signed in after signing in with a key
    session_lifetime: Duration = "12h", env "ONCE_SESSION_LIFETIME", check positive;
    /// Exit cleanly once no connection has been open for this long (0s: never); meant for
    /// socket activation, where the next connection starts the server again
    exit_when_idle: Duration = "0s", env "ONCE_EXIT_WHEN_IDLE";
    /// How long in-flight requests may run after SIGINT/SIGTERM
    shutdown_grace: Duration = "30s", env "ONCE_SHUTDOWN_GRACE";
    /// Log format: text or json
    log_format: LogFormat = "text", env "ONCE_LOG_FORMAT";
    /// S3 bucket for the bytes; setting it switches from the data directory to S3
    s3_bucket: String, env "ONCE_S3_BUCKET";
    /// S3 endpoint for S3-compatible stores [default: https://s3.<region>.amazonaws.com]
    s3_endpoint: Url, env "ONCE_S3_ENDPOINT";
    /// S3 region
    s3_region: String = "us-east-1", env "ONCE_S3_REGION";
    /// Path-style bucket URLs (MinIO, Garage, …) [default: true with a custom endpoint]
    s3_path_style: bool, env "ONCE_S3_PATH_STYLE";
    /// Prefix for every object key, e.g. `once/`
    s3_prefix: String = "", env "ONCE_S3_PREFIX";
    /// How a replayed upload URL is kept from replacing a file: auto (probe at start-up),
    /// conditional-writes (trust If-None-Match without probing) or versioning
    s3_write_guard: S3WriteGuard = "auto", env "ONCE_S3_WRITE_GUARD";
    /// A request's headers must all arrive within this time (slow-header clients)
    header_read_timeout: Duration = "10s", env "ONCE_HEADER_READ_TIMEOUT", check positive;
    /// A request body that delivers no byte for this long is aborted
    body_idle_timeout: Duration = "30s", env "ONCE_BODY_IDLE_TIMEOUT", check positive;
    /// Slowest average body rate, in bytes per second over a body_idle_timeout window;
    /// slower bodies are aborted (one-byte drips)
    body_min_rate: ByteSize = "1 KiB", env "ONCE_BODY_MIN_RATE", check positive;
    /// An idle keep-alive connection is closed after this time
    keepalive_timeout: Duration = "30s", env "ONCE_KEEPALIVE_TIMEOUT", check positive;
    /// Most open connections in total; more are closed when accepted
    max_connections: u32 = 512, env "ONCE_MAX_CONNECTIONS", check positive;
    /// Most open connections from one client IP address
    max_connections_per_address: u32 = 64, env "ONCE_MAX_CONNECTIONS_PER_ADDRESS",
        check positive;
    /// Largest request head (request line and headers); larger ones get 431 (at least 8 KiB)
    max_header_bytes: ByteSize = "32 KiB", env "ONCE_MAX_HEADER_BYTES";
    /// Most headers in one request; more get 431
    max_headers: u32 = 64, env "ONCE_MAX_HEADERS", check positive;
    /// Largest JSON body of an API request, read only once the key id is known
    api_body_limit: ByteSize = "64 KiB", env "ONCE_API_BODY_LIMIT", check positive;
    /// Disk space all unfinished uploads may hold at once; at least max_upload_size
    max_pending_upload_bytes: ByteSize = "16 GiB", env "ONCE_MAX_PENDING_UPLOAD_BYTES";
    /// Shares one API key may create in any 24 hours, counted in the database (across
    /// instances); 0: no quota
    key_shares_per_day: u32 = 0, env "ONCE_KEY_SHARES_PER_DAY";
    /// Bytes one API key's shares may hold while they wait for their upload or can still be
    /// downloaded, counted in the database (across instances); 0: no quota
    key_bytes_stored: ByteSize = "0 B", env "ONCE_KEY_BYTES_STORED";
    /// Requests per second one API key may make, on average (per instance); 0: no limit
    key_rate_limit: u32 = 20, env "ONCE_KEY_RATE_LIMIT";
    /// Requests one API key may make in a burst above key_rate_limit before it gets 429
    key_rate_burst: u32 = 100, env "ONCE_KEY_RATE_BURST", check positive;
    /// Requests per second one client address may make to share and upload links (`/s/…`,
    /// `/r/…`), on average (per instance); 0: no limit
    address_rate_limit: u32 = 10, env "ONCE_ADDRESS_RATE_LIMIT";
    /// Requests one client address may make to those links in a burst before it gets 429
    address_rate_burst: u32 = 60, env "ONCE_ADDRESS_RATE_BURST", check positive;
    /// Concurrent uploads to one upload-request URL
    request_uploads_in_flight: u32 = 2, env "ONCE_REQUEST_UPLOADS_IN_FLIGHT", check positive;
    /// Uploads stop when the data volume's free space would drop below this, so the
    /// database can always commit claims
    min_free_space: ByteSize = "128 MiB", env "ONCE_MIN_FREE_SPACE", check positive;
    /// POST every event (share.claimed, share.consumed, share.expired_unread,
    /// request.fulfilled, upload.duplicate) to this URL, signed as Standard Webhooks
    /// describes; delivered from an outbox in the database [default: off]
    webhook_url: Url, env "ONCE_WEBHOOK_URL";
    /// The webhook signing secret, `whsec_` and base64 (24 to 64 random bytes); needed with
    /// webhook_url
    webhook_secret: String, env "ONCE_WEBHOOK_SECRET", secret redact;
    /// Bytes read from an upload refused because its ticket or request was used (hashed,
    /// recorded and kept as evidence); the rest is not read
    evidence_max_bytes: ByteSize = "16 MiB", env "ONCE_EVIDENCE_MAX_BYTES", check positive;
    /// Refused uploads per share or request whose bytes are kept aside; later ones are
    /// recorded and hashed only
    evidence_max_count: u32 = 3, env "ONCE_EVIDENCE_MAX_COUNT";
    /// Records of refused uploads (and their kept bytes) are deleted after this time
    evidence_retention: Duration = "30d", env "ONCE_EVIDENCE_RETENTION", check positive;
    /// Export a trace span per step (create, upload, complete, claim, reap) as OTLP over
    /// HTTP (JSON) to this collector URL, e.g. http://127.0.0.1:4318/v1/traces [default: off]
    otlp_endpoint: Url, env "ONCE_OTLP_ENDPOINT";
    /// Send every event as an e-mail over SMTP through this server: smtp://host:25,
    /// smtp://user:pass@host:587?tls=required (STARTTLS), smtps://user:pass@host:465
    /// [default: off]
    smtp_url: String, env "ONCE_SMTP_URL", secret redact_password;
    /// Where event e-mails go (comma-separated addresses); needed with smtp_url
    email_to: String, env "ONCE_EMAIL_TO";
    /// The sender of event e-mails
    email_from: String = "once <once@localhost>", env "ONCE_EMAIL_FROM";
    /// Wait before the first retry of a failed notification (webhook or e-mail); it doubles
    /// per failure, up to 1 h
    notify_retry: Duration = "5s", env "ONCE_NOTIFY_RETRY", check positive;
    /// Deliveries tried per notification before it is given up (kept as failed)
    notify_max_attempts: u32 = 15, env "ONCE_NOTIFY_MAX_ATTEMPTS", check positive;
    /// Delivered and given-up notifications stay in the outbox this long, then the reaper
    /// removes them
    notify_retention: Duration = "7d", env "ONCE_NOTIFY_RETENTION", check positive;
}

/// The smallest request-head buffer the HTTP/1 server accepts (hyper's own minimum); a smaller
/// `max_header_bytes` would also refuse ordinary signed API requests.
const MIN_HEADER_BYTES: ByteSize = ByteSize::kib(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The names a certificate is obtained for over ACME: DNS names in ASCII (an internationalised
/// name in its `xn--` form), lowercased, without duplicates. Wildcards need DNS-01, which
/// `once` does not do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DomainList(Vec<String>);

impl DomainList {
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl std::str::FromStr for DomainList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_names(text.split(','))
    }
}

impl DomainList {
    fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut domains: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if name.starts_with("*.") {
                return Err(format!(
                    "{name}: wildcard certificates need DNS-01 challenges; once answers HTTP-01 \
                     only, so list each name"
                ));
            }
            let label_ok = |label: &str| {
                (1..=63).contains(&label.len())
                    && label
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            };
            if name.len() > 253 || !name.split('.').all(label_ok) {
                return Err(format!(
                    "{name:?} is not a DNS name (letters, digits and hyphens in dot-separated \
                     labels; an internationalised name in its xn-- form)"
                ));
            }
            // Top-level domains are never all digits, so this is an IPv4 address.
            if name
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'.')
            {
                return Err(format!("{name}: give a domain name, not an IP address"));
            }
            if !domains.contains(&name) {
                domains.push(name);
            }
        }
        if domains.is_empty() {
            return Err("give at least one domain name".into());
        }
        Ok(Self(domains))
    }
}

impl<'de> Deserialize<'de> for DomainList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = list_entries(deserializer)?;
        Self::from_names(entries.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// A list setting as the file may write it: a TOML array of strings, or one string with commas.
fn list_entries<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Written::deserialize(deserializer)? {
        Written::One(text) => text.split(',').map(str::to_owned).collect(),
        Written::Many(entries) => entries,
    })
}

/// The reverse proxies whose forwarding headers are believed: IP addresses (a single host) or
/// networks in CIDR notation, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProxyList(Vec<String>);

impl ProxyList {
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.0
            .iter()
            .map(|text| Self::parse_one(text).expect("checked when parsed"))
            .collect()
    }

    fn parse_one(text: &str) -> Result<ipnet::IpNet, String> {
        if let Ok(address) = text.parse::<std::net::IpAddr>() {
            return Ok(ipnet::IpNet::from(address));
        }
        let network: ipnet::IpNet = text.parse().map_err(|_| {
            format!("{text:?} is neither an IP address nor a network such as 10.0.0.0/8")
        })?;
        if network.trunc() != network {
            return Err(format!(
                "{text}: host bits are set; did you mean {}?",
                network.trunc()
            ));
        }
        Ok(network)
    }

    fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut list: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let canonical = Self::parse_one(entry)?.to_string();
            if !list.contains(&canonical) {
                list.push(canonical);
            }
        }
        Ok(Self(list))
    }
}

impl std::str::FromStr for ProxyList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_entries(text.split(','))
    }
}

impl<'de> Deserialize<'de> for ProxyList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = list_entries(deserializer)?;
        Self::from_entries(entries.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// How the bucket keeps the first upload of a ticket from being replaced (see `docs/storage.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum S3WriteGuard {
    /// Conditional writes if the bucket refuses an overwrite, else versioning if enabled.
    #[default]
    Auto,
    ConditionalWrites,
    Versioning,
}

impl From<S3WriteGuard> for once_blob::s3::WriteGuard {
    fn from(guard: S3WriteGuard) -> Self {
        match guard {
            S3WriteGuard::Auto => Self::Auto,
            S3WriteGuard::ConditionalWrites => Self::ConditionalWrites,
            S3WriteGuard::Versioning => Self::Versioning,
        }
    }
}

/// How `--print-config` shows a secret that is set.
const REDACTED: &str = "<redacted>";

fn redact(value: &Option<String>) -> Option<toml::Value> {
    value.as_ref().map(|_| REDACTED.into())
}

/// A database URL with its password (if any) replaced, so printed configs can be shared.
fn redact_password(value: &Option<String>) -> Option<toml::Value> {
    let text = value.as_ref()?;
    // Not a URL we can take apart: do not risk printing a secret in it.
    let Ok(mut url) = Url::parse(text) else {
        return Some(REDACTED.into());
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    // libpq also takes the password as a query parameter.
    if url.query_pairs().any(|(name, _)| name == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "password" {
                    "redacted".to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Some(url.as_str().into())
}

impl Config {
    /// Merges flags/env (already merged by clap) over the optional file over the defaults.
    pub fn load(args: &ServerArgs) -> anyhow::Result<Self> {
        let file = match &args.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Config::layered(args, file, Config::default());
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.check_each()?;
        anyhow::ensure!(
            self.default_expires_in <= self.max_expires_in,
            "default_expires_in must not exceed max_expires_in"
        );
        anyhow::ensure!(
            (once_domain::parts::MIN_PART_SIZE..=once_domain::parts::MAX_PART_SIZE)
                .contains(&self.upload_part_size.as_u64()),
            "upload_part_size must be between 5 MiB and 5 GiB, the part sizes S3 accepts"
        );
        anyhow::ensure!(
            self.max_header_bytes >= MIN_HEADER_BYTES,
            "max_header_bytes must be at least {MIN_HEADER_BYTES}"
        );
        anyhow::ensure!(
            self.max_pending_upload_bytes >= self.max_upload_size,
            "max_pending_upload_bytes ({}) is less than max_upload_size ({}), so an upload of \
             the largest allowed size could never finish: raise max_pending_upload_bytes or \
             lower max_upload_size",
            self.max_pending_upload_bytes,
            self.max_upload_size
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together: set both to serve HTTPS, or neither"
        );
        if self.acme_domain.is_some() {
            anyhow::ensure!(
                self.tls_cert.is_none(),
                "tls_cert/tls_key and acme_domain are two ways to get a certificate: choose one"
            );
            anyhow::ensure!(
                self.acme_directory.scheme() == "https",
                "acme_directory must be an https:// URL (RFC 8555)"
            );
            if let Some(email) = &self.acme_email {
                anyhow::ensure!(
                    email.contains('@') && !email.contains([',', ' ', ':']),
                    "acme_email must be one mail address, like admin@example.com"
                );
            }
        } else {
            anyhow::ensure!(
                self.acme_email.is_none() && self.acme_ca_cert.is_none(),
                "acme_email and acme_ca_cert are used only with acme_domain"
            );
        }
        anyhow::ensure!(
            self.http_bind.is_none() || self.tls_cert.is_some() || self.acme_domain.is_some(),
            "http_bind redirects to HTTPS, so it needs tls_cert/tls_key or acme_domain"
        );
        match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => {
                anyhow::ensure!(
                    matches!(url.scheme(), "http" | "https") && url.host().is_some(),
                    "webhook_url must be an http(s) URL with a host"
                );
                crate::webhooks::signer(secret)?;
            }
            (None, None) => {}
            (Some(_), None) => anyhow::bail!(
                "webhook_url needs webhook_secret (whsec_ and base64 of 24 to 64 random bytes, \
                 e.g. echo whsec_$(head -c 32 /dev/urandom | base64))"
            ),
            (None, Some(_)) => anyhow::bail!("webhook_secret is used only with webhook_url"),
        }
        if let Some(url) = &self.otlp_endpoint {
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https") && url.host().is_some(),
                "otlp_endpoint must be an http(s) URL with a host, such as \
                 http://127.0.0.1:4318/v1/traces"
            );
        }
        match (&self.smtp_url, &self.email_to) {
            (Some(url), Some(to)) => {
                crate::email::EmailTarget::new(url, &self.email_from, to)?;
            }
            (None, None) => {}
            (Some(_), None) => anyhow::bail!("smtp_url needs email_to, the addresses to write to"),
            (None, Some(_)) => anyhow::bail!("email_to is used only with smtp_url"),
        }
        if let Some(url) = &self.public_url {
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https") && url.host().is_some(),
                "public_url must be an http(s) URL with a host"
            );
        }
        Ok(())
    }

    /// The S3 settings when a bucket is configured. Credentials come from the usual AWS
    /// places: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else the
    /// shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`,
    /// profile `AWS_PROFILE` or `default`).
    pub fn s3_settings(&self) -> anyhow::Result<Option<once_blob::s3::S3Settings>> {
        let Some(bucket) = &self.s3_bucket else {
            anyhow::ensure!(
                self.s3_endpoint.is_none(),
                "s3_endpoint is set but s3_bucket is not"
            );
            return Ok(None);
        };
        let endpoint = match &self.s3_endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("https://s3.{}.amazonaws.com", self.s3_region).parse()?,
        };
        let (access_key, secret_key, session_token) = aws_credentials()?;
        Ok(Some(once_blob::s3::S3Settings {
            endpoint,
            bucket: bucket.clone(),
            region: self.s3_region.clone(),
            path_style: self.s3_path_style.unwrap_or(self.s3_endpoint.is_some()),
            access_key,
            secret_key,
            session_token,
            prefix: self.s3_prefix.clone(),
            write_guard: self.s3_write_guard.into(),
        }))
    }

    /// The plain HTTP listener's address: `http_bind`, else port 80 on every IPv4 address
    /// when ACME needs it for its challenges, else none.
    pub fn plain_http_bind(&self) -> Option<SocketAddr> {
        self.http_bind.or_else(|| {
            self.acme_domain
                .is_some()
                .then(|| SocketAddr::from(([0, 0, 0, 0], 80)))
        })
    }

    /// What ACME needs, when `acme_domain` is set.
    pub fn acme_settings(&self) -> Option<crate::acme::AcmeSettings> {
        let domains = self.acme_domain.as_ref()?;
        Some(crate::acme::AcmeSettings {
            domains: domains.names().to_vec(),
            email: self.acme_email.clone(),
            directory: self.acme_directory.clone(),
            ca_cert: self.acme_ca_cert.clone(),
            cache_dir: self.data_dir.join("acme"),
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}"))
    }

    pub fn share_policy(&self) -> once_domain::SharePolicy {
        once_domain::SharePolicy {
            default_expires_in: self.default_expires_in,
            max_expires_in: self.max_expires_in,
            max_downloads_limit: self.max_downloads,
            max_size: self.max_upload_size.as_u64(),
            upload_window: self.upload_expires_in,
        }
    }
}

fn aws_credentials() -> anyhow::Result<(String, String, Option<String>)> {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok((key, secret, env("AWS_SESSION_TOKEN")));
    }
    let path = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".aws/credentials")))
        .context("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")?;
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or create {}",
            path.display()
        )
    })?;
    let values = profile_values(&text, &profile);
    let get = |name: &str| {
        values
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(key), Some(secret)) => Ok((key, secret, get("aws_session_token"))),
        _ => anyhow::bail!(
            "profile [{profile}] in {} has no aws_access_key_id/aws_secret_access_key",
            path.display()
        ),
    }
}

/// The `key = value` lines of one `[profile]` section of an AWS credentials file.
fn profile_values(text: &str, profile: &str) -> Vec<(String, String)> {
    let mut in_profile = false;
    let mut values = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_profile = section.trim() == profile;
        } else if in_profile && let Some((key, value)) = line.split_once('=') {
            values.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    values
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_gives_the_documented_defaults() {
        let config = Config::load(&ServerArgs::default()).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("once-data"));
        assert_eq!(config.upload_expires_in, Duration::from_secs(600));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let args = ServerArgs {
            bind: Some("127.0.0.1:9100".parse().unwrap()),
            ..ServerArgs::default()
        };
        let config = load_with_file(
            "bind = \"127.0.0.1:9000\"\nclaim_lease = \"2m\"\nmax_upload_size = \"5 MiB\"\n",
            args,
        )
        .unwrap();
        assert_eq!(config.bind, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(config.claim_lease, Duration::from_secs(120));
        assert_eq!(config.max_upload_size, ByteSize::mib(5));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        assert!(load_with_file("bnid = \"127.0.0.1:9000\"\n", ServerArgs::default()).is_err());
        let args = ServerArgs {
            claim_lease: Some(Duration::ZERO),
            ..ServerArgs::default()
        };
        assert!(Config::load(&args).is_err());
    }

    /// Loads `args` with `text` as the `--config` file.
    fn load_with_file(text: &str, args: ServerArgs) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("once.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&ServerArgs {
            config_file: Some(path),
            ..args
        })
    }

    /// `ServerArgs` as clap fills it from a command line (and the `ONCE_*` variables).
    fn parse_flags(flags: &[&str]) -> ServerArgs {
        use clap::{Args, FromArgMatches};
        let command = ServerArgs::augment_args(clap::Command::new("once"));
        let matches = command
            .try_get_matches_from(std::iter::once("once").chain(flags.iter().copied()))
            .unwrap();
        ServerArgs::from_arg_matches(&matches).unwrap()
    }

    fn load_flags(flags: &[&str]) -> anyhow::Result<Config> {
        Config::load(&parse_flags(flags))
    }

    #[test]
    fn flags_are_written_the_way_the_file_writes_them() {
        let args = parse_flags(&[
            "--claim-lease",
            "2m",
            "--max-upload-size",
            "5 MiB",
            "--max-downloads",
            "3",
            "--log-format",
            "json",
            "--s3-path-style",
            "true",
        ]);
        let config = Config::load(&args).unwrap();
        assert_eq!(config.claim_lease, Duration::from_secs(120));
        assert_eq!(config.max_upload_size, ByteSize::mib(5));
        assert_eq!(config.max_downloads, 3);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.s3_path_style, Some(true));
    }

    #[test]
    fn help_shows_each_default_as_the_file_would_write_it() {
        use clap::Args;
        let command = ServerArgs::augment_args(clap::Command::new("once"));
        let help = |id: &str| {
            let arg = command.get_arguments().find(|arg| arg.get_id() == id);
            arg.and_then(|arg| arg.get_help()).unwrap().to_string()
        };
        assert!(help("claim_lease").ends_with("[default: 10m]"));
        assert!(help("max_upload_size").ends_with("[default: 10 GiB]"));
        assert!(help("max_downloads").ends_with("[default: 1000]"));
        assert!(help("s3_prefix").ends_with("[default: none]"));
        assert!(!help("s3_bucket").contains("[default:"));
    }

    #[test]
    fn the_printed_configuration_reads_back_as_the_same_configuration() {
        let args = ServerArgs {
            public_url: Some("https://once.example.com".parse().unwrap()),
            claim_lease: Some(Duration::from_secs(90)),
            max_upload_size: Some(ByteSize::mib(5)),
            s3_bucket: Some("once".into()),
            s3_path_style: Some(false),
            ..ServerArgs::default()
        };
        let printed = Config::load(&args).unwrap().to_toml();
        let read_back = load_with_file(&printed, ServerArgs::default()).unwrap();
        assert_eq!(read_back.to_toml(), printed);
    }

    #[test]
    fn the_connection_and_upload_limits_default_to_their_documented_values() {
        let config = Config::load(&ServerArgs::default()).unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.body_idle_timeout, Duration::from_secs(30));
        assert_eq!(config.body_min_rate, ByteSize::kib(1));
        assert_eq!(config.keepalive_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, 512);
        assert_eq!(config.max_connections_per_address, 64);
        assert_eq!(config.max_header_bytes, ByteSize::kib(32));
        assert_eq!(config.max_headers, 64);
        assert_eq!(config.api_body_limit, ByteSize::kib(64));
        assert_eq!(config.max_pending_upload_bytes, ByteSize::gib(16));
        assert_eq!(config.request_uploads_in_flight, 2);
        assert_eq!(config.min_free_space, ByteSize::mib(128));
    }

    #[test]
    fn the_connection_and_upload_limits_are_read_from_the_file() {
        let config = load_with_file(
            "header_read_timeout = \"5s\"\nbody_min_rate = \"10 KiB\"\nmax_connections = 100\n\
             max_pending_upload_bytes = 21474836480\nmin_free_space = \"1 GiB\"\n",
            ServerArgs::default(),
        )
        .unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(5));
        assert_eq!(config.body_min_rate, ByteSize::kib(10));
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.max_pending_upload_bytes, ByteSize::gib(20));
        assert_eq!(config.min_free_space, ByteSize::gib(1));
    }

    #[test]
    fn a_zero_timeout_rate_limit_or_count_that_would_switch_a_protection_off_is_refused() {
        let flags = [
            ("--header-read-timeout", "0s"),
            ("--body-idle-timeout", "0s"),
            ("--body-min-rate", "0"),
            ("--keepalive-timeout", "0s"),
            ("--max-connections", "0"),
            ("--max-connections-per-address", "0"),
            ("--max-headers", "0"),
            ("--api-body-limit", "0"),
            ("--request-uploads-in-flight", "0"),
            ("--min-free-space", "0"),
        ];
        for (flag, zero) in flags {
            let error = load_flags(&[flag, zero]).unwrap_err().to_string();
            let name = flag.trim_start_matches("--").replace('-', "_");
            assert!(
                error.starts_with(&format!("{name} must be ")),
                "{flag}: {error}"
            );
        }
    }

    #[test]
    fn a_header_limit_below_hypers_smallest_buffer_is_refused() {
        let error = load_flags(&["--max-header-bytes", "4 KiB"]).unwrap_err();
        assert!(error.to_string().contains("max_header_bytes"), "{error}");
        assert!(load_flags(&["--max-header-bytes", "8 KiB"]).is_ok());
    }

    #[test]
    fn a_pending_upload_budget_smaller_than_the_largest_upload_is_refused() {
        let error = load_flags(&["--max-upload-size", "20 GiB"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("max_pending_upload_bytes"), "{error}");
        assert!(error.contains("max_upload_size"), "{error}");
        let flags = ["--max-upload-size", "20 GiB"];
        let budget = ["--max-pending-upload-bytes", "20 GiB"];
        assert!(load_flags(&[flags, budget].concat()).is_ok());
    }

    #[test]
    fn every_setting_is_documented_with_its_flag_variable_key_and_default() {
        use clap::Args;
        let docs = include_str!("../../../docs/configuration.md");
        let command = ServerArgs::augment_args(clap::Command::new("once"));
        let declared_defaults: toml::Table = Config::default().to_toml().parse().unwrap();
        for arg in command.get_arguments() {
            let (Some(flag), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let key = arg.get_id().as_str();
            let key = if key == "config_file" {
                "—".into()
            } else {
                format!("`{key}`")
            };
            let row = format!("| `--{flag}` | `{}` | {key} | ", env.to_string_lossy());
            let documented = docs
                .lines()
                .find_map(|line| line.strip_prefix(&row))
                .unwrap_or_else(|| panic!("no row for --{flag} in docs/configuration.md"));
            // Optional settings write their "[default: …]" by hand; only declared ones count.
            let help = arg.get_help().unwrap().to_string();
            if declared_defaults.contains_key(arg.get_id().as_str())
                && let Some((_, default)) = help.rsplit_once("[default: ")
            {
                let default = default.trim_end_matches(']');
                let documented = documented.split(" | ").next().unwrap();
                let expected = if default == "none" {
                    "empty".into()
                } else {
                    format!("`{default}`")
                };
                assert_eq!(documented, expected, "default of --{flag}");
            }
        }
    }

    #[test]
    fn acme_domains_are_a_comma_list_on_the_command_line_and_an_array_in_the_file() {
        let config = load_flags(&[
            "--acme-domain",
            "Once.Example.com, files.example.com,once.example.com",
        ])
        .unwrap();
        let names = config.acme_domain.as_ref().unwrap().names().to_vec();
        assert_eq!(names, ["once.example.com", "files.example.com"]);
        assert_eq!(
            config.plain_http_bind(),
            Some("0.0.0.0:80".parse().unwrap())
        );
        let printed = config.to_toml();
        assert!(
            printed.contains(
                "acme_domain = [\n    \"once.example.com\",\n    \"files.example.com\",\n]"
            ),
            "{printed}"
        );
        let read_back = load_with_file(&printed, ServerArgs::default()).unwrap();
        assert_eq!(read_back.acme_domain, config.acme_domain);
        let from_string = load_with_file(
            "acme_domain = \"a.example, b.example\"\n",
            ServerArgs::default(),
        );
        assert_eq!(
            from_string.unwrap().acme_domain.unwrap().names(),
            ["a.example", "b.example"]
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks_and_anything_else_is_refused() {
        let config =
            load_flags(&["--trusted-proxies", "127.0.0.1, ::1,10.0.0.0/8,127.0.0.1"]).unwrap();
        let list = config.trusted_proxies.as_ref().unwrap();
        let networks: Vec<String> = list.networks().iter().map(ToString::to_string).collect();
        assert_eq!(networks, ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]);
        let read_back = load_with_file(&config.to_toml(), ServerArgs::default()).unwrap();
        assert_eq!(read_back.trusted_proxies, config.trusted_proxies);
        let from_array =
            load_with_file("trusted_proxies = [\"fd00::/8\"]\n", ServerArgs::default()).unwrap();
        assert_eq!(
            from_array.trusted_proxies.unwrap().networks()[0].to_string(),
            "fd00::/8"
        );
        assert!(load_flags(&[]).unwrap().trusted_proxies.is_none());
        for bad in ["10.0.0.1/8", "localhost", "10.0.0.0/33", "*"] {
            use clap::Args;
            let command = ServerArgs::augment_args(clap::Command::new("once"));
            let parsed = command.try_get_matches_from(["once", "--trusted-proxies", bad]);
            assert!(parsed.is_err(), "{bad} was accepted");
            let in_file = format!("trusted_proxies = [{bad:?}]\n");
            assert!(
                load_with_file(&in_file, ServerArgs::default()).is_err(),
                "{bad} in the file"
            );
        }
    }

    #[test]
    fn acme_refuses_wildcards_addresses_and_a_second_way_to_get_a_certificate() {
        for bad in [
            "*.example.com",
            "127.0.0.1",
            "exa mple.com",
            "-bad.example",
            ",",
        ] {
            use clap::Args;
            let command = ServerArgs::augment_args(clap::Command::new("once"));
            let parsed = command.try_get_matches_from(["once", "--acme-domain", bad]);
            assert!(parsed.is_err(), "{bad} was accepted");
        }
        let error = load_flags(&[
            "--acme-domain",
            "a.example",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ])
        .unwrap_err();
        assert!(error.to_string().contains("choose one"), "{error}");
        let error = load_flags(&["--acme-email", "me@example.com"]).unwrap_err();
        assert!(
            error.to_string().contains("only with acme_domain"),
            "{error}"
        );
        let error = load_flags(&["--http-bind", "127.0.0.1:8081"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("needs tls_cert/tls_key or acme_domain"),
            "{error}"
        );
        let error = load_flags(&[
            "--acme-domain",
            "a.example",
            "--acme-directory",
            "http://ca.example/dir",
        ])
        .unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
        let config = load_flags(&[
            "--acme-domain",
            "a.example",
            "--http-bind",
            "127.0.0.1:8081",
        ])
        .unwrap();
        assert_eq!(
            config.plain_http_bind(),
            Some("127.0.0.1:8081".parse().unwrap())
        );
        assert_eq!(
            Config::load(&ServerArgs::default())
                .unwrap()
                .plain_http_bind(),
            None
        );
    }

    #[test]
    fn credentials_file_profiles_are_read_by_name() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\n";
        let ci = profile_values(text, "ci");
        assert_eq!(
            ci,
            vec![
                ("aws_access_key_id".into(), "C".into()),
                ("aws_secret_access_key".into(), "D".into())
            ]
        );
        assert_eq!(profile_values(text, "default")[0].1, "A");
        assert!(profile_values(text, "missing").is_empty());
    }

    #[test]
    fn a_part_size_beyond_s3_limits_is_refused() {
        for size in [ByteSize::gib(6), ByteSize::mib(1)] {
            let args = ServerArgs {
                upload_part_size: Some(size),
                ..ServerArgs::default()
            };
            let error = Config::load(&args).unwrap_err().to_string();
            assert!(error.contains("5 GiB"), "{error}");
        }
    }

    #[test]
    fn printed_config_redacts_secrets() {
        let args = ServerArgs {
            master_secret: Some("ab".repeat(32)),
            database_url: Some("postgres://once:hunter2@db.internal:5432/once".into()),
            ..ServerArgs::default()
        };
        let printed = Config::load(&args).unwrap().to_toml();
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains(&"ab".repeat(32)));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://once:redacted@db.internal:5432/once"),
            "{printed}"
        );
        let args = ServerArgs {
            database_url: Some("postgres://db/once?sslmode=require&password=hunter3".into()),
            ..ServerArgs::default()
        };
        let printed = Config::load(&args).unwrap().to_toml();
        assert!(!printed.contains("hunter3"), "{printed}");
        assert!(printed.contains("sslmode=require"), "{printed}");
    }
}
