//! Server configuration: one typed struct with defaults, filled from flags > `ONCE_*`
//! environment variables > an optional TOML file (`--config`). `--print-config` shows the result
//! with secrets redacted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytesize::ByteSize;
use clap::Args;
use serde::{Deserialize, Serialize};
use url::Url;

/// Command-line flags; each one also reads its `ONCE_*` variable. Unset ones fall back to the
/// config file, then to the defaults documented in `docs/configuration.md`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// TOML configuration file
    #[arg(long = "config", env = "ONCE_CONFIG")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "ONCE_BIND")]
    pub bind: Option<SocketAddr>,
    /// Directory for the SQLite database, blobs and the master secret [default: ./once-data]
    #[arg(long, env = "ONCE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Base URL used in links, e.g. https://once.example.com when behind a proxy
    /// [default: http://<Host header>]
    #[arg(long, env = "ONCE_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Metadata store URL (`sqlite://path`) [default: sqlite in the data directory]
    #[arg(long, env = "ONCE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// 64 hex characters shared by every instance; signs URLs and seals key secrets
    /// [default: generated into <data dir>/master.key]
    #[arg(long, env = "ONCE_MASTER_SECRET", hide_env_values = true)]
    pub master_secret: Option<String>,
    /// Ensure this API key (`KEYID.SECRET`) exists at start-up
    #[arg(long, env = "ONCE_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
    /// How long a claimant may resume a download [default: 10m]
    #[arg(long, env = "ONCE_CLAIM_LEASE", value_parser = humantime::parse_duration)]
    pub claim_lease: Option<Duration>,
    /// Default share lifetime [default: 7d]
    #[arg(long, env = "ONCE_DEFAULT_EXPIRES_IN", value_parser = humantime::parse_duration)]
    pub default_expires_in: Option<Duration>,
    /// Longest share lifetime a client may ask for [default: 30d]
    #[arg(long, env = "ONCE_MAX_EXPIRES_IN", value_parser = humantime::parse_duration)]
    pub max_expires_in: Option<Duration>,
    /// How long an upload ticket stays valid [default: 10m]
    #[arg(long, env = "ONCE_UPLOAD_EXPIRES_IN", value_parser = humantime::parse_duration)]
    pub upload_expires_in: Option<Duration>,
    /// Largest file accepted [default: 10 GiB]
    #[arg(long, env = "ONCE_MAX_UPLOAD_SIZE")]
    pub max_upload_size: Option<ByteSize>,
    /// Most downloads one share may allow [default: 1000]
    #[arg(long, env = "ONCE_MAX_DOWNLOADS")]
    pub max_downloads: Option<u32>,
    /// Time between reaper passes; 0s disables the built-in reaper [default: 1m]
    #[arg(long, env = "ONCE_REAP_INTERVAL", value_parser = humantime::parse_duration)]
    pub reap_interval: Option<Duration>,
    /// Age after which unreferenced blobs and stale upload files are removed [default: 1h]
    #[arg(long, env = "ONCE_ORPHAN_GRACE", value_parser = humantime::parse_duration)]
    pub orphan_grace: Option<Duration>,
    /// How long an upload that started in time may take to finish [default: 24h]
    #[arg(long, env = "ONCE_UPLOAD_GRACE", value_parser = humantime::parse_duration)]
    pub upload_grace: Option<Duration>,
    /// How long in-flight requests may run after SIGINT/SIGTERM [default: 30s]
    #[arg(long, env = "ONCE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "ONCE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// S3 bucket for the bytes; setting it switches from the data directory to S3
    #[arg(long, env = "ONCE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint for S3-compatible stores [default: https://s3.<region>.amazonaws.com]
    #[arg(long, env = "ONCE_S3_ENDPOINT")]
    pub s3_endpoint: Option<Url>,
    /// S3 region [default: us-east-1]
    #[arg(long, env = "ONCE_S3_REGION")]
    pub s3_region: Option<String>,
    /// Path-style bucket URLs (MinIO, Garage, …) [default: true with a custom endpoint]
    #[arg(long, env = "ONCE_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// Prefix for every object key, e.g. `once/` [default: none]
    #[arg(long, env = "ONCE_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// Direct uploads above this size are multipart [default: 64 MiB]
    #[arg(long, env = "ONCE_S3_MULTIPART_THRESHOLD")]
    pub s3_multipart_threshold: Option<ByteSize>,
    /// How a replayed upload URL is kept from replacing a file: auto (probe at start-up),
    /// conditional-writes (trust If-None-Match without probing) or versioning [default: auto]
    #[arg(long, env = "ONCE_S3_WRITE_GUARD")]
    pub s3_write_guard: Option<S3WriteGuard>,
    /// Print the effective configuration (secrets redacted) and exit
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
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

/// The TOML file: the same keys as the flags, in snake_case, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    public_url: Option<Url>,
    database_url: Option<String>,
    master_secret: Option<String>,
    bootstrap_key: Option<String>,
    #[serde(default, with = "humantime_serde")]
    claim_lease: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    default_expires_in: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_expires_in: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    upload_expires_in: Option<Duration>,
    max_upload_size: Option<ByteSize>,
    max_downloads: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    reap_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    orphan_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    upload_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_grace: Option<Duration>,
    log_format: Option<LogFormat>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<Url>,
    s3_region: Option<String>,
    s3_path_style: Option<bool>,
    s3_prefix: Option<String>,
    s3_multipart_threshold: Option<ByteSize>,
    s3_write_guard: Option<S3WriteGuard>,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<Url>,
    #[serde(serialize_with = "redact_password")]
    pub database_url: Option<String>,
    #[serde(serialize_with = "redact")]
    pub master_secret: Option<String>,
    #[serde(serialize_with = "redact")]
    pub bootstrap_key: Option<String>,
    #[serde(with = "humantime_serde")]
    pub claim_lease: Duration,
    #[serde(with = "humantime_serde")]
    pub default_expires_in: Duration,
    #[serde(with = "humantime_serde")]
    pub max_expires_in: Duration,
    #[serde(with = "humantime_serde")]
    pub upload_expires_in: Duration,
    pub max_upload_size: ByteSize,
    pub max_downloads: u32,
    #[serde(with = "humantime_serde")]
    pub reap_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub upload_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub s3_bucket: Option<String>,
    pub s3_endpoint: Option<Url>,
    pub s3_region: String,
    pub s3_path_style: Option<bool>,
    pub s3_prefix: String,
    pub s3_multipart_threshold: ByteSize,
    pub s3_write_guard: S3WriteGuard,
    // Connection and body limits (TEMPORARY until the settings land in one declaration).
    #[serde(skip)]
    pub header_read_timeout: Duration,
    #[serde(skip)]
    pub body_idle_timeout: Duration,
    #[serde(skip)]
    pub body_min_rate: ByteSize,
    #[serde(skip)]
    pub keepalive_timeout: Duration,
    #[serde(skip)]
    pub max_connections: u32,
    #[serde(skip)]
    pub max_connections_per_address: u32,
    #[serde(skip)]
    pub max_header_bytes: ByteSize,
    #[serde(skip)]
    pub max_headers: u32,
    #[serde(skip)]
    pub api_body_limit: ByteSize,
}

fn redact<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// A database URL with its password (if any) replaced, so printed configs can be shared.
fn redact_password<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        None => s.serialize_none(),
        Some(text) => match Url::parse(text) {
            Ok(mut url) => {
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
                s.serialize_str(url.as_str())
            }
            // Not a URL we can take apart: do not risk printing a secret in it.
            Err(_) => s.serialize_str("<redacted>"),
        },
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("once-data"),
            public_url: None,
            database_url: None,
            master_secret: None,
            bootstrap_key: None,
            claim_lease: Duration::from_secs(600),
            default_expires_in: Duration::from_secs(7 * 86400),
            max_expires_in: Duration::from_secs(30 * 86400),
            upload_expires_in: Duration::from_secs(600),
            max_upload_size: ByteSize::gib(10),
            max_downloads: 1000,
            reap_interval: Duration::from_secs(60),
            orphan_grace: Duration::from_secs(3600),
            upload_grace: Duration::from_secs(86400),
            shutdown_grace: Duration::from_secs(30),
            log_format: LogFormat::Text,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_path_style: None,
            s3_prefix: String::new(),
            s3_multipart_threshold: ByteSize::mib(64),
            s3_write_guard: S3WriteGuard::Auto,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            body_min_rate: ByteSize::kib(1),
            keepalive_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_address: 64,
            max_header_bytes: ByteSize::kib(32),
            max_headers: 64,
            api_body_limit: ByteSize::kib(64),
        }
    }
}

impl Config {
    /// Merges flags/env (already merged by clap) over the optional file over the defaults.
    pub fn load(args: &ServerArgs) -> anyhow::Result<Self> {
        let file = match &args.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Config::default();
        macro_rules! pick {
            ($field:ident) => {
                args.$field
                    .clone()
                    .or(file.$field.clone())
                    .unwrap_or(defaults.$field)
            };
            (optional $field:ident) => {
                args.$field.clone().or(file.$field.clone())
            };
        }
        let config = Config {
            bind: pick!(bind),
            data_dir: pick!(data_dir),
            public_url: pick!(optional public_url),
            database_url: pick!(optional database_url),
            master_secret: pick!(optional master_secret),
            bootstrap_key: pick!(optional bootstrap_key),
            claim_lease: pick!(claim_lease),
            default_expires_in: pick!(default_expires_in),
            max_expires_in: pick!(max_expires_in),
            upload_expires_in: pick!(upload_expires_in),
            max_upload_size: pick!(max_upload_size),
            max_downloads: pick!(max_downloads),
            reap_interval: pick!(reap_interval),
            orphan_grace: pick!(orphan_grace),
            upload_grace: pick!(upload_grace),
            shutdown_grace: pick!(shutdown_grace),
            log_format: pick!(log_format),
            s3_bucket: pick!(optional s3_bucket),
            s3_endpoint: pick!(optional s3_endpoint),
            s3_region: pick!(s3_region),
            s3_path_style: pick!(optional s3_path_style),
            s3_prefix: pick!(s3_prefix),
            s3_multipart_threshold: pick!(s3_multipart_threshold),
            s3_write_guard: pick!(s3_write_guard),
            ..Config::default()
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.claim_lease.is_zero(),
            "claim_lease must be longer than 0s"
        );
        anyhow::ensure!(
            !self.upload_expires_in.is_zero(),
            "upload_expires_in must be longer than 0s"
        );
        anyhow::ensure!(
            self.default_expires_in <= self.max_expires_in,
            "default_expires_in must not exceed max_expires_in"
        );
        anyhow::ensure!(self.max_downloads >= 1, "max_downloads must be at least 1");
        anyhow::ensure!(
            self.s3_multipart_threshold.as_u64() <= once_blob::s3::MAX_PART_SIZE,
            "s3_multipart_threshold must not exceed 5 GiB, S3's largest single upload and part"
        );
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
            multipart_threshold: self.s3_multipart_threshold.as_u64(),
            write_guard: self.s3_write_guard.into(),
        }))
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("once.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\nclaim_lease = \"2m\"\nmax_upload_size = \"5 MiB\"\n",
        )
        .unwrap();
        let args = ServerArgs {
            config_file: Some(path),
            bind: Some("127.0.0.1:9100".parse().unwrap()),
            ..ServerArgs::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.bind, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(config.claim_lease, Duration::from_secs(120));
        assert_eq!(config.max_upload_size, ByteSize::mib(5));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("once.toml");
        std::fs::write(&path, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        let args = ServerArgs {
            config_file: Some(path),
            ..ServerArgs::default()
        };
        assert!(Config::load(&args).is_err());
        let args = ServerArgs {
            claim_lease: Some(Duration::ZERO),
            ..ServerArgs::default()
        };
        assert!(Config::load(&args).is_err());
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
    fn a_multipart_threshold_beyond_s3_limits_is_refused() {
        let args = ServerArgs {
            s3_multipart_threshold: Some(ByteSize::gib(6)),
            ..ServerArgs::default()
        };
        let error = Config::load(&args).unwrap_err().to_string();
        assert!(error.contains("5 GiB"), "{error}");
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
