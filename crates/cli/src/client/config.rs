//! Where the client finds its server and key (flag > environment > client config file >
//! default), and the one HTTP client every command uses, with bearer authentication and the
//! server's JSON error body turned into a readable error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use once_api::ErrorBody;
use reqwest::{Method, RequestBuilder, Response};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::ClientArgs;

/// Where `once serve` listens with no configuration at all.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The client config file, `{ server = "...", key = "..." }`. Unknown keys are refused so a
/// typo such as `sever = ` is reported instead of silently ignored.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    key: Option<String>,
}

/// The settings after precedence is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL without a trailing slash, so API paths can be appended.
    pub server: String,
    pub key: Option<String>,
    /// The config file consulted (or that would be), for error messages.
    pub config_path: Option<PathBuf>,
}

impl Settings {
    /// Resolves flags (clap has already folded `ONCE_SERVER`/`ONCE_KEY` into them) over the
    /// config file over the default.
    pub fn load(args: &ClientArgs) -> Result<Self> {
        let (path, explicit) = match &args.client_config {
            Some(path) => (Some(path.clone()), true),
            None => (default_config_path(), false),
        };
        let file = match &path {
            Some(path) => read_config(path, explicit)?,
            None => FileConfig::default(),
        };
        Self::merge(args.server.as_deref(), args.key.as_deref(), file, path)
    }

    fn merge(
        server: Option<&str>,
        key: Option<&str>,
        file: FileConfig,
        config_path: Option<PathBuf>,
    ) -> Result<Self> {
        // An empty value (e.g. `ONCE_KEY=`) means "not set", so it falls through to the file.
        let non_empty = |value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let server = match (non_empty(server), non_empty(file.server.as_deref())) {
            (Some(given), _) => super::link::parse_server(&given)?,
            (None, Some(saved)) => super::link::parse_server(&saved).with_context(|| {
                let path = config_path
                    .as_deref()
                    .unwrap_or(Path::new("the client config"));
                format!("in {}", path.display())
            })?,
            (None, None) => DEFAULT_SERVER.to_owned(),
        };
        let key = non_empty(key).or_else(|| non_empty(file.key.as_deref()));
        Ok(Self {
            server,
            key,
            config_path,
        })
    }

    /// The key for an API call, or an error saying every way to provide one.
    pub fn require_key(&self) -> Result<&str> {
        let path = self.config_path.as_deref().map_or_else(
            || "~/.config/once/client.toml".to_owned(),
            |p| p.display().to_string(),
        );
        let key = self
            .key
            .as_deref()
            .ok_or_else(|| anyhow!("no API key: pass --key, set ONCE_KEY or add key to {path}"))?;
        // Checked locally so a pasted fragment fails clearly instead of as a 401.
        once_domain::ApiToken::parse(key).map_err(|_| {
            anyhow!("the API key is malformed: expected KEYID.SECRET (from `once keys create`)")
        })?;
        Ok(key)
    }
}

/// The config file `once login` writes: the one named, else the default.
pub fn config_path(named: Option<&Path>) -> Result<PathBuf> {
    named
        .map(Path::to_owned)
        .or_else(default_config_path)
        .context(
            "no place for the client config: set HOME or XDG_CONFIG_HOME, or pass --client-config",
        )
}

/// Creates `dir` (and its parents), readable by the user only when it is new.
pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Replaces the config file with `server` and `key`. The file holds a secret, so it is
/// readable by its owner only from the first byte (a temporary file made 0600, then renamed
/// over the old one), and a crash leaves either the old file or the new one, never half.
pub fn write_config(path: &Path, server: &str, key: &str) -> Result<()> {
    let text = toml::to_string(&FileConfig {
        server: Some(server.to_owned()),
        key: Some(key.to_owned()),
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        // tempfile creates its files 0600 on Unix.
        let mut file = tempfile::Builder::new()
            .prefix(".client.toml.")
            .tempfile_in(dir)?;
        file.write_all(text.as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|error| error.error)?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write the client config {}", path.display()))
}

/// `$XDG_CONFIG_HOME/once/client.toml`, else `~/.config/once/client.toml`.
fn default_config_path() -> Option<PathBuf> {
    config_path_from(
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn config_path_from(xdg_config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    // The XDG spec says relative values are invalid and must be ignored.
    let base = xdg_config_home
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.as_os_str().is_empty())
                .map(|h| h.join(".config"))
        })?;
    Some(base.join("once").join("client.toml"))
}

/// A missing default file is normal; a missing file the user named is a mistake worth
/// reporting; a file that does not parse is always an error.
fn read_config(path: &Path, explicit: bool) -> Result<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default());
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read client config {}", path.display()));
        }
    };
    parse_config(&text).with_context(|| format!("malformed client config {}", path.display()))
}

fn parse_config(text: &str) -> Result<FileConfig> {
    Ok(toml::from_str(text)?)
}

/// The HTTP client of every command. Redirects are never followed: a redirect from `/s/ID`
/// carries the blob URL we need to see, and following redirects blindly could forward the
/// bearer key to another host.
pub struct Client {
    http: reqwest::Client,
    pub settings: Settings,
}

impl Client {
    pub fn from_args(args: &ClientArgs) -> Result<Self> {
        Self::new(Settings::load(args)?)
    }

    pub fn new(settings: Settings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("once-cli/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            // No overall timeout: a multi-gigabyte transfer may rightly take hours. Downloads
            // detect stalls themselves.
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, settings })
    }

    /// The bare client, for URLs that are capabilities themselves (share links, signed upload
    /// and blob URLs): they get no credentials.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `{server}{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.server)
    }

    /// An authenticated request to `{server}{path}`.
    pub fn api(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        self.api_at(method, &self.url(path))
    }

    /// An authenticated request to a full URL. Callers make sure it is on our server.
    pub fn api_at(&self, method: Method, url: &str) -> Result<RequestBuilder> {
        let key = self.settings.require_key()?;
        Ok(self.http.request(method, url).bearer_auth(key))
    }

    /// Whether `url` has the same origin as the configured server, i.e. may see the key.
    pub fn is_our_server(&self, url: &Url) -> bool {
        Url::parse(&self.settings.server).is_ok_and(|ours| ours.origin() == url.origin())
    }

    /// Sends a request; a request that never got an answer becomes one line naming the host
    /// and the reason (see [`Client::transport_error`]).
    pub async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let (http, request) = request.build_split();
        let request = request.context("cannot build the request")?;
        let url = request.url().clone();
        http.execute(request)
            .await
            .map_err(|error| self.transport_error(&url, &error))
    }

    /// "cannot reach the once server at URL: connection refused (hint)": the reason from the
    /// bottom of reqwest's error chain, which otherwise runs to four nested messages, and a
    /// hint at the setting to check when the host is the configured server.
    pub fn transport_error(&self, url: &Url, error: &reqwest::Error) -> anyhow::Error {
        let reason = transport_reason(error);
        if self.is_our_server(url) {
            anyhow!(
                "cannot reach the once server at {}: {reason} (is `once serve` running there? \
                 check ONCE_SERVER or --server)",
                self.settings.server
            )
        } else {
            anyhow!(
                "cannot reach {}: {reason}",
                url.origin().ascii_serialization()
            )
        }
    }

    /// Sends an API request and decodes a 2xx JSON answer; anything else becomes an error.
    pub async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> Result<T> {
        let response = self.send(request).await?;
        let response = ensure_success(response)
            .await
            .with_context(|| what.to_owned())?;
        response
            .json()
            .await
            .with_context(|| format!("{what}: the server's answer is not the expected JSON"))
    }
}

/// Why a request got no answer, in a few words: the operating system's reason for a refused
/// or reset connection, "timed out", or the innermost message of the chain.
fn transport_reason(error: &reqwest::Error) -> String {
    use std::io::ErrorKind;
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut innermost: &dyn std::error::Error = error;
    let mut dns = false;
    while let Some(source) = innermost.source() {
        // hyper-util names a failed lookup only in the middle of the chain.
        dns |= source.to_string() == "dns error";
        innermost = source;
    }
    if let Some(io) = innermost.downcast_ref::<std::io::Error>() {
        let known = match io.kind() {
            ErrorKind::ConnectionRefused => Some("connection refused"),
            ErrorKind::ConnectionReset => Some("connection reset"),
            ErrorKind::ConnectionAborted => Some("connection aborted"),
            ErrorKind::TimedOut => Some("timed out"),
            ErrorKind::HostUnreachable => Some("host unreachable"),
            ErrorKind::NetworkUnreachable => Some("network unreachable"),
            _ => None,
        };
        if let Some(known) = known {
            return known.to_owned();
        }
    }
    let text = innermost.to_string();
    if dns {
        format!("cannot resolve the host name ({text})")
    } else {
        text
    }
}

/// Passes 2xx responses through and turns anything else into an error built from the body.
pub async fn ensure_success(response: Response) -> Result<Response> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(error_from_response(response).await)
    }
}

/// Error bodies are small; a hostile or broken server cannot make us buffer more than this.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `"<message> (<code>, HTTP <status>)"` from `{"error":{"code","message"}}`; for other bodies
/// (a proxy's HTML page, an S3 XML error) the most useful text we can find.
pub async fn error_from_response(mut response: Response) -> anyhow::Error {
    let status = response.status();
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    anyhow!(describe_error(status, &body))
}

fn describe_error(status: reqwest::StatusCode, body: &[u8]) -> String {
    let code = status.as_u16();
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        let message = super::units::humanize_message(&error.message);
        return format!("{message} ({}, HTTP {code})", error.code);
    }
    let text = String::from_utf8_lossy(body);
    // S3-compatible stores answer `<Error><Code>…</Code><Message>…</Message></Error>`.
    if let (Some(s3_code), Some(message)) =
        (xml_element(&text, "Code"), xml_element(&text, "Message"))
    {
        return format!("{message} ({s3_code}, HTTP {code})");
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let snippet: String = text
        .trim()
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if snippet.is_empty() || text.trim_start().starts_with('<') {
        format!("HTTP {code} {reason}")
    } else {
        format!("HTTP {code} {reason}: {snippet}")
    }
}

fn xml_element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(server: Option<&str>, key: Option<&str>) -> FileConfig {
        FileConfig {
            server: server.map(str::to_owned),
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn flags_and_env_beat_the_file_which_beats_the_default() {
        let s = Settings::merge(
            Some("https://flag.example/"),
            Some("flagkey"),
            file(Some("https://file.example"), Some("filekey")),
            None,
        )
        .unwrap();
        assert_eq!(s.server, "https://flag.example");
        assert_eq!(s.key.as_deref(), Some("flagkey"));

        let s = Settings::merge(
            None,
            None,
            file(Some("https://file.example/once/"), Some("filekey")),
            None,
        )
        .unwrap();
        assert_eq!(s.server, "https://file.example/once");
        assert_eq!(s.key.as_deref(), Some("filekey"));

        let s = Settings::merge(None, Some(""), FileConfig::default(), None).unwrap();
        assert_eq!(s.server, DEFAULT_SERVER);
        assert_eq!(s.key, None);
    }

    #[test]
    fn bad_server_urls_are_refused() {
        for bad in ["ftp://x", "http://h/?q=1", "not a url"] {
            assert!(
                Settings::merge(Some(bad), None, FileConfig::default(), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_server_without_a_scheme_is_refused_from_any_source_with_a_hint() {
        let error =
            Settings::merge(Some("localhost:8080"), None, FileConfig::default(), None).unwrap_err();
        assert!(
            format!("{error:#}").ends_with("did you mean http://localhost:8080?"),
            "{error:#}"
        );
        let error = Settings::merge(
            None,
            None,
            file(Some("once.example.com"), None),
            Some(PathBuf::from("/cfg/once/client.toml")),
        )
        .unwrap_err();
        let error = format!("{error:#}");
        assert!(error.starts_with("in /cfg/once/client.toml: "), "{error}");
        assert!(
            error.ends_with("did you mean https://once.example.com?"),
            "{error}"
        );
    }

    #[test]
    fn a_written_config_reads_back_and_only_its_owner_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh").join("once").join("client.toml");
        write_config(&path, "https://old.example", "old.key").unwrap();
        write_config(&path, "https://once.example", "k.s").unwrap();
        assert_eq!(
            read_config(&path, true).unwrap(),
            file(Some("https://once.example"), Some("k.s"))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["client.toml"]);
    }

    #[test]
    fn missing_key_error_names_the_config_file() {
        let s = Settings::merge(
            None,
            None,
            FileConfig::default(),
            Some(PathBuf::from("/cfg/once/client.toml")),
        )
        .unwrap();
        let error = s.require_key().unwrap_err().to_string();
        assert_eq!(
            error,
            "no API key: pass --key, set ONCE_KEY or add key to /cfg/once/client.toml"
        );
    }

    #[test]
    fn keys_are_checked_for_shape() {
        let good = format!("0123456789abcdef.{}", "A".repeat(43));
        let s = Settings::merge(None, Some(&good), FileConfig::default(), None).unwrap();
        assert_eq!(s.require_key().unwrap(), good);
        let s = Settings::merge(None, Some("nodot"), FileConfig::default(), None).unwrap();
        assert!(s.require_key().is_err());
    }

    #[test]
    fn config_file_parses_and_rejects_garbage() {
        assert_eq!(
            parse_config("server = \"https://x\"\nkey = \"k\"\n").unwrap(),
            file(Some("https://x"), Some("k"))
        );
        assert_eq!(parse_config("").unwrap(), FileConfig::default());
        assert!(parse_config("server = ").is_err());
        assert!(parse_config("sever = \"https://x\"").is_err());
    }

    #[test]
    fn missing_default_config_is_fine_but_a_named_one_is_not() {
        let path = Path::new("/nonexistent/once/client.toml");
        assert_eq!(read_config(path, false).unwrap(), FileConfig::default());
        assert!(read_config(path, true).is_err());
    }

    #[test]
    fn config_path_prefers_absolute_xdg_config_home() {
        assert_eq!(
            config_path_from(Some("/xdg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/xdg/once/client.toml"))
        );
        assert_eq!(
            config_path_from(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.config/once/client.toml"))
        );
        assert_eq!(config_path_from(None, None), None);
    }

    #[test]
    fn limits_in_error_bodies_are_shown_in_human_units() {
        let too_long = describe_error(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error":{"code":"invalid_expiry","message":"invalid expiry: expires_in must be at most 2592000 seconds"}}"#,
        );
        assert_eq!(
            too_long,
            "invalid expiry: expires_in must be at most 30d (invalid_expiry, HTTP 400)"
        );
    }

    /// A loopback port nobody listens on: bound, then released.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn an_unreachable_server_is_one_line_with_a_hint() {
        let server = format!("http://127.0.0.1:{}", closed_port());
        let args = ClientArgs {
            server: Some(server.clone()),
            key: None,
            client_config: Some(PathBuf::from("/dev/null")),
        };
        let client = Client::from_args(&args).unwrap();
        let request = client.http().get(client.url("/healthz"));
        let error = format!("{:#}", client.send(request).await.unwrap_err());
        assert_eq!(
            error,
            format!(
                "cannot reach the once server at {server}: connection refused (is `once serve` \
                 running there? check ONCE_SERVER or --server)"
            )
        );

        let elsewhere = format!("http://127.0.0.1:{}/s/x", closed_port());
        let request = client.http().get(&elsewhere);
        let error = format!("{:#}", client.send(request).await.unwrap_err());
        assert!(error.ends_with(": connection refused"), "{error}");
        assert!(!error.contains("ONCE_SERVER"), "{error}");
    }

    #[test]
    fn error_bodies_become_readable_messages() {
        let gone = describe_error(
            reqwest::StatusCode::GONE,
            br#"{"error":{"code":"share_consumed","message":"this share has already been downloaded"}}"#,
        );
        assert_eq!(
            gone,
            "this share has already been downloaded (share_consumed, HTTP 410)"
        );
        let s3 = describe_error(
            reqwest::StatusCode::FORBIDDEN,
            b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        );
        assert_eq!(s3, "Request has expired (AccessDenied, HTTP 403)");
        assert_eq!(
            describe_error(reqwest::StatusCode::BAD_GATEWAY, b"<html>oops</html>"),
            "HTTP 502 Bad Gateway"
        );
        assert_eq!(
            describe_error(reqwest::StatusCode::BAD_GATEWAY, b"upstream down\n"),
            "HTTP 502 Bad Gateway: upstream down"
        );
    }
}
