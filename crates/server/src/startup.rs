//! Start-up and shutdown: load the configuration, open the stores, make sure the master secret
//! and the bootstrap key exist, run the HTTP server and the reaper, and on SIGINT/SIGTERM let
//! in-flight transfers finish within the configured grace period.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use once_blob::BlobStore;
use once_blob::fs::{FsBlobStore, FsLimits};
use once_blob::s3::{S3BlobStore, WriteGuard};
use once_domain::{ApiToken, MasterSecret, RequestPolicy, SecretSealer};
use once_meta::MetaStore;
use once_meta::postgres::PostgresMetaStore;
use once_meta::sqlite::SqliteMetaStore;
use tokio::io::AsyncWriteExt;

use crate::config::{Config, LogFormat, ProxyList, ServerArgs};
use crate::connections::{self, ConnectionLimits};
use crate::http::{self, AppState};
use crate::reaper::{self, ReapSettings};
use crate::service::{Service, ServiceSettings};

fn init_tracing(
    format: LogFormat,
    default_level: &str,
    traces: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ONCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only for a person at a terminal; a log file or journal gets plain text.
    let log = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Json => log.json().with_filter(filter).boxed(),
        LogFormat::Text => log.with_filter(filter).boxed(),
    };
    // The step spans go to the trace exporter whatever the log level says.
    let spans = traces.map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("once"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("once_server", tracing::Level::INFO),
            )
    });
    // A second initialisation (tests embedding the server) is harmless.
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(spans)
        .try_init();
}

async fn open_meta(config: &Config) -> anyhow::Result<Arc<dyn MetaStore>> {
    match config.database_url.as_deref() {
        None => {
            let path = config.data_dir.join("once.db");
            Ok(Arc::new(SqliteMetaStore::open(&path).await.with_context(
                || format!("cannot open {}", path.display()),
            )?))
        }
        Some(url) if url.starts_with("sqlite:") => Ok(Arc::new(
            SqliteMetaStore::open_url(url)
                .await
                .context("cannot open the SQLite database")?,
        )),
        Some(url) if is_postgres_url(url) => Ok(Arc::new(
            PostgresMetaStore::open(url)
                .await
                .context("cannot open the PostgreSQL database")?,
        )),
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database_url scheme {scheme:?}: this build supports sqlite: and \
                 postgres:// (or postgresql://)"
            )
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `once migrate`: applies pending schema migrations to the configured metadata store and says
/// what it did. (`once serve` does the same at start-up; on PostgreSQL an advisory lock makes
/// instances and `once migrate` starting together apply each migration once.)
pub async fn migrate(args: ServerArgs) -> anyhow::Result<()> {
    let config = Config::load(&args)?;
    init_tracing(config.log_format, "warn", None);
    match config.database_url.as_deref() {
        Some(url) if is_postgres_url(url) => {
            let (_, report) = PostgresMetaStore::open_reporting(url)
                .await
                .context("cannot migrate the PostgreSQL database")?;
            for migration in &report.applied_now {
                println!(
                    "applied migration {} ({})",
                    migration.version, migration.description
                );
            }
            let version = report
                .current
                .last()
                .map_or(0, |migration| migration.version);
            if report.applied_now.is_empty() {
                println!("PostgreSQL schema already up to date (version {version})");
            } else {
                println!("PostgreSQL schema now at version {version}");
            }
        }
        _ => {
            if config.database_url.is_none() {
                create_data_dir(&config.data_dir).await?;
            }
            open_meta(&config).await?;
            println!("SQLite schema up to date");
        }
    }
    Ok(())
}

/// The master secret from the configuration, else from `<data dir>/master.key`, created with
/// mode 0600 on first start. Racing first starts agree: only one `create_new` succeeds.
async fn master_secret(config: &Config) -> anyhow::Result<MasterSecret> {
    if let Some(text) = &config.master_secret {
        return MasterSecret::parse(text)
            .map_err(|_| anyhow::anyhow!("master_secret must be 64 hexadecimal characters"));
    }
    let path = config.data_dir.join("master.key");
    let fresh = MasterSecret::generate();
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(&path).await {
        Ok(mut file) => {
            file.write_all(format!("{}\n", fresh.to_hex()).as_bytes())
                .await?;
            file.sync_all().await?;
            return Ok(fresh);
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot create {}", path.display()));
        }
    }
    read_master_secret(&path).await
}

async fn read_master_secret(path: &Path) -> anyhow::Result<MasterSecret> {
    // The creator may still be writing it.
    for _ in 0..50 {
        let text = tokio::fs::read_to_string(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(secret) = MasterSecret::parse(&text) {
            return Ok(secret);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    anyhow::bail!(
        "{} does not hold a 64-hex-character master secret",
        path.display()
    )
}

/// Creates the data directory (and missing parents) readable by this user only: it holds the
/// master key, the database and the files. An existing directory keeps the mode its operator
/// chose.
async fn create_data_dir(path: &Path) -> anyhow::Result<()> {
    create_private_dir(path)
        .await
        .with_context(|| format!("cannot create the data directory {}", path.display()))
}

/// Creates `path` (and missing parents) with mode 0700; an existing directory keeps its mode.
pub(crate) async fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(path).await
}

/// What a command will do with the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `serve`: hands out upload tickets, so the bucket must prove it refuses overwrites.
    Serve,
    /// `reap`: never issues a ticket, so it writes no probe objects.
    Maintenance,
}

/// How to point `once keys …` at a server's stores, for the messages that refuse to guess.
const KEYS_HINT: &str = "pass the --data-dir (or ONCE_DATA_DIR, --database-url, --config) \
     that `once serve` runs with, or start `once serve` once with these settings to create it";

/// `path` as the person should look for it: relative to the working directory, the default
/// `once-data` says nothing about where that was.
fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// What `once keys …` opens: the metadata store of a server that already exists. Keys in a
/// store no server reads are a trap (they are printed, then refused with 401), so a data
/// directory or database that is not there is refused instead of created.
pub(crate) async fn open_key_store(
    args: &ServerArgs,
) -> anyhow::Result<(Config, Arc<dyn MetaStore>)> {
    let config = Config::load(args)?;
    init_tracing(config.log_format, "warn", None);
    let meta = open_existing_meta(&config).await?;
    Ok((config, meta))
}

async fn open_existing_meta(config: &Config) -> anyhow::Result<Arc<dyn MetaStore>> {
    match config.database_url.as_deref() {
        None => {
            let dir = &config.data_dir;
            if !dir.is_dir() {
                anyhow::bail!(
                    "no once server keeps its data in {}: the directory does not exist; \
                     {KEYS_HINT}",
                    shown(dir)
                );
            }
            let path = dir.join("once.db");
            if !path.is_file() {
                anyhow::bail!(
                    "no once server keeps its data in {}: it has no once.db; {KEYS_HINT}",
                    shown(dir)
                );
            }
            Ok(Arc::new(
                SqliteMetaStore::open_existing(&path)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?,
            ))
        }
        Some(url) if url.starts_with("sqlite:") => Ok(Arc::new(
            SqliteMetaStore::open_url_existing(url)
                .await
                .map_err(|error| anyhow::anyhow!("{error}; {KEYS_HINT}"))?,
        )),
        // A PostgreSQL database exists before any instance runs; its schema is the server's.
        Some(_) => open_meta(config).await,
    }
}

/// The sealer for a new key's secret: the master secret the server uses, which is either
/// configured or in `<data dir>/master.key`. A secret sealed under any other master secret
/// would pass bearer authentication but fail every HMAC-signed request, so a fresh
/// `master.key` is made only where `once serve` would make the same one: in the data directory
/// of an embedded store that has no keys yet (after `once migrate`, say).
pub(crate) async fn key_sealer(
    config: &Config,
    meta: &dyn MetaStore,
) -> anyhow::Result<SecretSealer> {
    if config.master_secret.is_some() {
        return Ok(master_secret(config).await?.sealer());
    }
    let path = config.data_dir.join("master.key");
    if path.is_file() {
        return Ok(read_master_secret(&path).await?.sealer());
    }
    let store_in_data_dir = config.database_url.is_none();
    if store_in_data_dir && meta.list_keys().await?.is_empty() {
        return Ok(master_secret(config).await?.sealer());
    }
    let reason = if config.data_dir.is_dir() {
        format!("{} does not exist", shown(&path))
    } else {
        format!(
            "the data directory {} does not exist",
            shown(&config.data_dir)
        )
    };
    anyhow::bail!(
        "cannot find the server's master secret, which seals key secrets ({reason}): pass the \
         server's --master-secret (ONCE_MASTER_SECRET) or its --data-dir"
    )
}

/// Opens both stores and assembles the service from a loaded configuration.
pub(crate) async fn build_service(config: &Config, role: Role) -> anyhow::Result<Service> {
    create_data_dir(&config.data_dir).await?;
    let meta = open_meta(config).await?;
    let blob: Arc<dyn BlobStore> = match config.s3_settings()? {
        Some(mut settings) => {
            if role == Role::Maintenance && settings.write_guard == WriteGuard::Auto {
                settings.write_guard = WriteGuard::ConditionalWrites;
            }
            let bucket = settings.bucket.clone();
            let store = S3BlobStore::connect(settings)
                .await
                .with_context(|| format!("cannot use the S3 bucket {bucket}"))?;
            tracing::info!(%bucket, write_guard = ?store.write_guard(), "using S3 storage");
            Arc::new(store)
        }
        None => Arc::new(
            FsBlobStore::open(
                &config.data_dir,
                FsLimits {
                    max_pending_bytes: config.max_pending_upload_bytes.as_u64(),
                    min_free_bytes: config.min_free_space.as_u64(),
                },
            )
            .await
            .context("cannot open the blob directory")?,
        ),
    };
    let master = master_secret(config).await?;
    let settings = ServiceSettings {
        shares: config.share_policy(),
        requests: RequestPolicy {
            default_expires_in: config.default_expires_in,
        },
        claim_lease: config.claim_lease,
        upload_grace: config.upload_grace,
        request_uploads_in_flight: config.request_uploads_in_flight,
        upload_part_size: config.upload_part_size.as_u64(),
        session_lifetime: config.session_lifetime,
        evidence: Some(crate::service::evidence::EvidencePolicy {
            max_bytes: config.evidence_max_bytes.as_u64(),
            max_count: config.evidence_max_count,
        }),
        quotas: once_domain::Quotas {
            shares_per_day: Some(config.key_shares_per_day).filter(|&limit| limit > 0),
            bytes_stored: Some(config.key_bytes_stored.as_u64()).filter(|&limit| limit > 0),
        },
    };
    let channels = crate::webhooks::Channels {
        webhook: match (&config.webhook_url, &config.webhook_secret) {
            (Some(url), Some(secret)) => Some(crate::webhooks::WebhookTarget {
                url: url.clone(),
                signer: crate::webhooks::signer(secret)?,
            }),
            _ => None,
        },
        email: match (&config.smtp_url, &config.email_to) {
            (Some(url), Some(to)) => {
                Some(crate::email::EmailTarget::new(url, &config.email_from, to)?)
            }
            _ => None,
        },
    };
    let service = Service::new(meta.clone(), blob, &master, settings);
    if channels.webhook.is_none() && channels.email.is_none() {
        return Ok(service);
    }
    let retry = crate::webhooks::RetryPolicy {
        first: config.notify_retry,
        max_attempts: config.notify_max_attempts,
    };
    Ok(
        service.with_notifier(Arc::new(crate::webhooks::Notifier::new(
            meta, channels, retry,
        )?)),
    )
}

pub(crate) async fn load(
    args: &ServerArgs,
    default_log_level: &str,
    role: Role,
) -> anyhow::Result<(Config, Service)> {
    let config = Config::load(args)?;
    init_tracing(config.log_format, default_log_level, None);
    let service = build_service(&config, role).await?;
    Ok((config, service))
}

fn reap_settings(config: &Config) -> ReapSettings {
    ReapSettings {
        orphan_grace: config.orphan_grace,
        upload_grace: config.upload_grace,
        notify_retention: config.notify_retention,
        evidence_retention: config.evidence_retention,
        audit_retention: config.audit_retention,
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The listening socket systemd (or `systemd-socket-activate`) passed in, if any: the first
/// of `LISTEN_FDS`, meant for this process (`LISTEN_PID`).
fn inherited_listener() -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let Some(listener) = fds
        .take_tcp_listener(0)
        .context("the socket passed in LISTEN_FDS is not a listening TCP socket")?
    else {
        return Ok(None);
    };
    listener.set_nonblocking(true)?;
    Ok(Some(tokio::net::TcpListener::from_std(listener)?))
}

/// Tells systemd how the service is doing; a no-op when not started by systemd.
fn notify_systemd(states: &[sd_notify::NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(%error, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog at half its interval while the server runs, when the unit asks
/// for one (`WatchdogSec=`).
fn watchdog(
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled().filter(|interval| !interval.is_zero())?;
    let every = interval / 2;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = ticks.tick() => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
                _ = shutdown.changed() => return,
            }
        }
    }))
}

/// The certificate HTTPS is served with, if any: from files (watched for renewals), or over
/// ACME (obtained now unless a cached one is still valid, then renewed in the background).
async fn certificate_slot(
    config: &Config,
    challenges: crate::acme::Challenges,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<crate::tls::CertificateSlot>>> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let certificate = crate::tls::ReloadingCertificate::load(crate::tls::CertificateFiles {
            cert: cert.clone(),
            key: key.clone(),
        })?;
        let slot = certificate.slot();
        tokio::spawn(crate::tls::watch_files(certificate, shutdown.clone()));
        return Ok(Some(slot));
    }
    let Some(settings) = config.acme_settings() else {
        return Ok(None);
    };
    let acme = crate::acme::Acme::new(settings, challenges)?;
    let first = acme
        .initial_certificate()
        .await
        .context("cannot obtain a certificate over ACME")?;
    let slot = crate::tls::CertificateSlot::new(first.certified.clone());
    tokio::spawn(acme.keep_renewed(slot.clone(), first, shutdown.clone()));
    Ok(Some(slot))
}

/// Starts the plain HTTP listener on `address`: ACME challenges, and redirects to HTTPS on
/// `https_port` (or to an `https://` public URL).
async fn serve_plain_http(
    config: &Config,
    address: std::net::SocketAddr,
    https_port: u16,
    challenges: crate::acme::Challenges,
    limits: ConnectionLimits,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<connections::Ended>> {
    let listener = listen(address).with_context(|| {
        let hint = if address.port() < 1024 {
            ": a port below 1024 needs root or CAP_NET_BIND_SERVICE (AmbientCapabilities= \
                in a systemd unit); or set http_bind to a port that port 80 is forwarded to"
        } else {
            ""
        };
        format!("cannot listen on {address} (http_bind){hint}")
    })?;
    let target = match config.public_url.as_ref() {
        Some(url) if url.scheme() == "https" => {
            http::plain::HttpsTarget::Origin(url.origin().ascii_serialization())
        }
        _ => http::plain::HttpsTarget::RequestHost { port: https_port },
    };
    tracing::info!(
        address = %listener.local_addr()?,
        "plain HTTP: answering ACME challenges, redirecting the rest to HTTPS"
    );
    Ok(tokio::spawn(connections::serve(
        listener,
        http::plain::router(challenges, target),
        limits,
        shutdown,
        config.shutdown_grace,
        None,
        None,
    )))
}

/// `once serve`.
pub async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", Config::load(&args)?.to_toml());
        return Ok(());
    }
    let config = Config::load(&args)?;
    let traces = config
        .otlp_endpoint
        .as_ref()
        .map(crate::telemetry::tracer_provider)
        .transpose()?;
    init_tracing(
        config.log_format,
        "info,tower_http=warn,sqlx=warn",
        traces.as_ref(),
    );
    let service = Arc::new(
        build_service(&config, Role::Serve)
            .await?
            .with_audit_writer(),
    );
    if let Some(token) = &config.bootstrap_key {
        let token = ApiToken::parse(token)
            .map_err(|_| anyhow::anyhow!("ONCE_BOOTSTRAP_KEY must be KEYID.SECRET"))?;
        service
            .ensure_key(&token, "bootstrap", once_domain::now())
            .await
            .map_err(|error| anyhow::anyhow!("cannot ensure the bootstrap key: {error}"))?;
    }
    let listener = match inherited_listener()? {
        Some(listener) => {
            tracing::info!(
                "serving on the socket systemd passed in (LISTEN_FDS); bind is not used"
            );
            listener
        }
        None => listen(config.bind).with_context(|| format!("cannot listen on {}", config.bind))?,
    };
    let local = listener.local_addr()?;
    let limits = ConnectionLimits {
        max_connections: config.max_connections as usize,
        max_connections_per_address: config.max_connections_per_address as usize,
        header_read_timeout: config.header_read_timeout,
        keepalive_timeout: config.keepalive_timeout,
        max_header_bytes: usize::try_from(config.max_header_bytes.as_u64()).unwrap_or(usize::MAX),
        max_headers: config.max_headers as usize,
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    // Plain HTTP comes up first: an ACME CA validates through it before HTTPS can start.
    let challenges = crate::acme::Challenges::default();
    let plain_http = match config.plain_http_bind() {
        Some(address) => Some(
            serve_plain_http(
                &config,
                address,
                local.port(),
                challenges.clone(),
                limits.clone(),
                shutdown_rx.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let certificate = certificate_slot(&config, challenges, &shutdown_rx).await?;
    let public_url = config
        .public_url
        .as_ref()
        .map(|url| url.as_str().trim_end_matches('/').to_owned());
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                http::request_metrics::REQUEST_DURATION.to_owned(),
            ),
            http::request_metrics::DURATION_BUCKETS,
        )
        .and_then(|builder| builder.install_recorder())
        .map_err(|error| tracing::warn!(%error, "metrics disabled"))
        .ok();
    let app = http::router(Arc::new(AppState {
        service: service.clone(),
        tls: certificate.is_some(),
        public_url,
        metrics,
        body_pace: http::pace::BodyPace {
            window: config.body_idle_timeout,
            min_rate: config.body_min_rate.as_u64(),
        },
        api_body_limit: usize::try_from(config.api_body_limit.as_u64()).unwrap_or(usize::MAX),
        trusted_proxies: http::forwarded::TrustedProxies::new(
            config
                .trusted_proxies
                .as_ref()
                .map(ProxyList::networks)
                .unwrap_or_default(),
        ),
        rate_limits: http::limits::RateLimits::new(
            config.key_rate_limit,
            config.key_rate_burst,
            config.address_rate_limit,
            config.address_rate_burst,
        ),
    }));

    let reaper = (!config.reap_interval.is_zero()).then(|| {
        tokio::spawn(reaper::run_loop(
            service.clone(),
            reap_settings(&config),
            config.reap_interval,
            shutdown_rx.clone(),
        ))
    });

    // Webhook deliveries run beside the server and stop with it; an event not delivered by
    // then waits in the outbox for the next start (or another instance).
    let deliveries = service
        .notifier()
        .cloned()
        .map(|notifier| tokio::spawn(notifier.run(shutdown_rx.clone())));

    let tls = certificate.map(crate::tls::acceptor).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // One plain line on stdout so scripts and tests can find the bound address.
    println!("once listening on {scheme}://{local}");
    tracing::info!(address = %local, data_dir = %config.data_dir.display(), "once is serving");
    if !service.has_keys().await.unwrap_or(true) {
        let url = config.public_url.as_ref().map_or_else(
            || format!("http://{local}"),
            |url| url.as_str().trim_end_matches('/').to_owned(),
        );
        tracing::info!(
            "no API keys yet: create one with `once keys create --name me` (same --data-dir), \
             then `once login {url}` on the client"
        );
    }

    let idle_exit = (!config.exit_when_idle.is_zero()).then_some(config.exit_when_idle);
    let mut server = tokio::spawn(connections::serve(
        listener,
        app,
        limits,
        shutdown_rx.clone(),
        config.shutdown_grace,
        tls,
        idle_exit,
    ));
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let watchdog = watchdog(shutdown_rx.clone());
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!(grace = ?config.shutdown_grace, "shutting down: finishing in-flight requests");
            notify_systemd(&[sd_notify::NotifyState::Stopping]);
            let _ = shutdown_tx.send(true);
            server.await.context("server task failed")?;
        }
        ended = &mut server => {
            ended.context("server task failed")?;
            notify_systemd(&[sd_notify::NotifyState::Stopping]);
            let _ = shutdown_tx.send(true);
        }
    }
    if let Some(plain_http) = plain_http {
        let _ = plain_http.await;
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if let Some(reaper) = reaper {
        reaper.abort();
    }
    // The audit events of the last answers are written before the process goes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), service.flush_audit()).await;
    if let Some(deliveries) = deliveries {
        // A delivery under way ends within its timeout; its lease keeps the event safe if
        // the process is gone before it can mark it.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), deliveries).await;
    }
    if let Some(traces) = traces {
        // The last batch of spans goes out before the process does (the SDK blocks for it).
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connections the kernel may hold for us before we accept them (it caps this at
/// `net.core.somaxconn`, 4096 on current kernels). Tokio's default of 1,024 overflows when a
/// link is posted somewhere busy and a thousand clients connect at once: the SYNs past the
/// queue are dropped and those clients wait a whole second to try again.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `address`, as `TcpListener::bind` makes it (address reuse, so a
/// restart need not wait for old connections) but with [`LISTEN_BACKLOG`].
fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `once reap`: one reaper pass, then exit.
pub async fn reap_once(args: ServerArgs) -> anyhow::Result<()> {
    let (config, service) = load(&args, "warn", Role::Maintenance).await?;
    let report = reaper::reap_once(&service, reap_settings(&config), once_domain::now())
        .await
        .map_err(|error| anyhow::anyhow!("reaper pass failed: {error}"))?;
    println!(
        "reaped {} shares, {} orphaned blobs, {} stale uploads, {} old rows",
        report.shares_reaped,
        report.orphans_deleted,
        report.stale_uploads_removed,
        report.rows_purged
    );
    Ok(())
}
