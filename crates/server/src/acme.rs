//! Certificates over ACME (RFC 8555) with HTTP-01 challenges: obtained at start-up when the
//! cache in `<data dir>/acme/` holds none worth serving, renewed in the background when fewer
//! than 30 days remain, and put into the TLS slot without a restart. Challenge tokens are kept
//! in memory and answered by the plain HTTP listener (`http::plain`).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use url::Url;

use crate::tls::{CertificateSlot, certified_key};

/// Renew when fewer than this remain (Let's Encrypt's own advice for its 90-day certificates).
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the renewer looks at the certificate's expiry.
const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);
/// A failed renewal is tried again this much later, well within the remaining 30 days and
/// well below the CA's limit on failed validations.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3600);
/// Each request to the CA.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole order: account, challenges, validation, issuance.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// Waiting for the CA to validate the challenges, and to issue.
const POLLING: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

const VALIDATION_HINT: &str = "the CA did not validate the challenges; it fetches \
    http://<domain>/.well-known/acme-challenge/<token> on port 80, which must reach http_bind";

/// What the configuration asks of ACME.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names on the certificate, as DNS identifiers.
    pub domains: Vec<String>,
    /// Contact for the CA's expiry and policy mail.
    pub email: Option<String>,
    pub directory: Url,
    /// An extra root to trust for the directory's HTTPS (a test CA such as pebble's).
    pub ca_cert: Option<PathBuf>,
    /// `<data dir>/acme`.
    pub cache_dir: PathBuf,
}

/// The HTTP-01 challenges in progress: token → key authorization.
#[derive(Debug, Clone, Default)]
pub struct Challenges {
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

impl Challenges {
    /// The key authorization to answer for `token`, while its challenge is in progress.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.tokens
            .lock()
            .expect("challenge lock")
            .get(token)
            .cloned()
    }

    pub(crate) fn insert(&self, token: &str, key_authorization: &str) {
        self.tokens
            .lock()
            .expect("challenge lock")
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(crate) fn remove(&self, tokens: &[String]) {
        let mut held = self.tokens.lock().expect("challenge lock");
        for token in tokens {
            held.remove(token);
        }
    }
}

/// Withdraws an order's tokens however the order ends.
struct PublishedTokens<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Drop for PublishedTokens<'_> {
    fn drop(&mut self) {
        self.challenges.remove(&self.tokens);
    }
}

/// A certificate ready to serve, and when it expires.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certified: CertifiedKey,
    pub not_after: SystemTime,
    /// From the cache, with fewer than 30 days left: renew at once, in the background.
    pub due: bool,
}

/// `<data dir>/acme/account.json`: the account's key and id, for the directory they belong to.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// `<data dir>/acme/certificate.json`: chain and key in one file, so a crash never leaves a
/// key beside a certificate it does not fit.
#[derive(Serialize, Deserialize)]
struct StoredCertificate {
    directory: String,
    domains: Vec<String>,
    chain_pem: String,
    key_pem: String,
}

pub struct Acme {
    settings: AcmeSettings,
    challenges: Challenges,
    http: AcmeHttp,
    account: tokio::sync::Mutex<Option<Account>>,
}

impl Acme {
    pub fn new(settings: AcmeSettings, challenges: Challenges) -> anyhow::Result<Arc<Self>> {
        let http = AcmeHttp::new(settings.ca_cert.as_deref())?;
        Ok(Arc::new(Self {
            settings,
            challenges,
            http,
            account: tokio::sync::Mutex::new(None),
        }))
    }

    fn account_path(&self) -> PathBuf {
        self.settings.cache_dir.join("account.json")
    }

    fn certificate_path(&self) -> PathBuf {
        self.settings.cache_dir.join("certificate.json")
    }

    /// The certificate to start with: the cached one while it is valid for these names from
    /// this directory (renewed at once in the background when it is due), else a new one,
    /// obtained before HTTPS is served.
    pub async fn initial_certificate(&self) -> anyhow::Result<Issued> {
        // Readable by this user only: it holds private keys.
        let cache_dir = &self.settings.cache_dir;
        crate::startup::create_private_dir(cache_dir)
            .await
            .with_context(|| format!("cannot create {}", cache_dir.display()))?;
        match self.cached().await {
            Ok(Some(cached)) if cached.not_after > SystemTime::now() => {
                tracing::info!(
                    domains = ?self.settings.domains,
                    days_left = days_left(cached.not_after),
                    "serving the cached ACME certificate"
                );
                return Ok(cached);
            }
            Ok(Some(_)) => tracing::info!("the cached ACME certificate has expired"),
            Ok(None) => {}
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "the cached ACME certificate cannot be used; obtaining a new one"
            ),
        }
        self.obtain().await
    }

    /// The certificate in the cache, if it was issued for the configured names by the
    /// configured directory.
    async fn cached(&self) -> anyhow::Result<Option<Issued>> {
        let path = self.certificate_path();
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let stored: StoredCertificate = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a stored certificate", path.display()))?;
        if stored.directory != self.settings.directory.as_str()
            || sorted(&stored.domains) != sorted(&self.settings.domains)
        {
            tracing::info!(
                cached_for = ?stored.domains,
                "the cached ACME certificate is for other names or another CA"
            );
            return Ok(None);
        }
        let issued = ready_to_serve(&stored)?;
        Ok(Some(Issued {
            due: remaining(issued.not_after) < RENEW_BEFORE,
            ..issued
        }))
    }

    /// A new certificate from the CA, stored in the cache before it is returned.
    async fn obtain(&self) -> anyhow::Result<Issued> {
        tracing::info!(
            domains = ?self.settings.domains,
            directory = %self.settings.directory,
            "obtaining a certificate over ACME"
        );
        let stored = tokio::time::timeout(ORDER_TIMEOUT, self.order())
            .await
            .map_err(|_| anyhow::anyhow!("the ACME order took longer than {ORDER_TIMEOUT:?}"))??;
        let issued = ready_to_serve(&stored)?;
        let json = serde_json::to_vec_pretty(&stored)?;
        write_private(&self.certificate_path(), &json).await?;
        tracing::info!(
            domains = ?self.settings.domains,
            days_left = days_left(issued.not_after),
            "obtained a certificate over ACME"
        );
        Ok(issued)
    }

    async fn order(&self) -> anyhow::Result<StoredCertificate> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|domain| Identifier::Dns(domain.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("the CA refused the order")?;
        let mut published = PublishedTokens {
            challenges: &self.challenges,
            tokens: Vec::new(),
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("cannot read an authorization")?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => anyhow::bail!(
                    "the CA's authorization for {} is {status:?}",
                    authorization.identifier()
                ),
            }
            let identifier = authorization.identifier().to_string();
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .with_context(|| format!("the CA offers no http-01 challenge for {identifier}"))?;
            self.challenges
                .insert(&challenge.token, challenge.key_authorization().as_str());
            published.tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .with_context(|| format!("the CA refused the challenge for {identifier}"))?;
        }
        let status = order.poll_ready(&POLLING).await.context(VALIDATION_HINT)?;
        if status != OrderStatus::Ready {
            let mut reasons = Vec::new();
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authorization)) = authorizations.next().await {
                if authorization.refresh().await.is_err() {
                    continue;
                }
                for challenge in &authorization.challenges {
                    if let Some(problem) = &challenge.error {
                        reasons.push(format!("{}: {problem}", authorization.identifier()));
                    }
                }
            }
            anyhow::bail!(
                "{VALIDATION_HINT} (order {status:?}): {}",
                if reasons.is_empty() {
                    "no reason given".to_owned()
                } else {
                    reasons.join("; ")
                }
            );
        }
        drop(published);
        let key_pem = order
            .finalize()
            .await
            .context("cannot finalize the order")?;
        let chain_pem = order
            .poll_certificate(&POLLING)
            .await
            .context("the CA did not issue the certificate")?;
        Ok(StoredCertificate {
            directory: self.settings.directory.to_string(),
            domains: self.settings.domains.clone(),
            chain_pem,
            key_pem,
        })
    }

    /// The ACME account: the cached one for this directory, else a new one (agreeing to the
    /// CA's terms of service), cached with its key.
    async fn account(&self) -> anyhow::Result<Account> {
        let mut held = self.account.lock().await;
        if let Some(account) = held.as_ref() {
            return Ok(account.clone());
        }
        let directory = self.settings.directory.to_string();
        let path = self.account_path();
        let stored = match tokio::fs::read_to_string(&path).await {
            Ok(text) => Some(
                serde_json::from_str::<StoredAccount>(&text)
                    .with_context(|| format!("{} is not a stored ACME account", path.display()))?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let builder = Account::builder_with_http(Box::new(self.http.clone()));
        let account = match stored.filter(|stored| stored.directory == directory) {
            Some(stored) => builder
                .from_credentials(stored.credentials)
                .await
                .with_context(|| format!("cannot reach the ACME directory {directory}"))?,
            None => {
                let contact = self
                    .settings
                    .email
                    .as_ref()
                    .map(|email| format!("mailto:{email}"));
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        None,
                    )
                    .await
                    .with_context(|| format!("cannot create an account at {directory}"))?;
                let stored = StoredAccount {
                    directory,
                    credentials,
                };
                write_private(&path, &serde_json::to_vec_pretty(&stored)?).await?;
                tracing::info!(id = account.id(), "created an ACME account");
                account
            }
        };
        *held = Some(account.clone());
        Ok(account)
    }

    /// Renews the certificate in `slot` when fewer than 30 days remain (looking every 12 h,
    /// and at once when `first` is already due), until `shutdown`.
    pub async fn keep_renewed(
        self: Arc<Self>,
        slot: Arc<CertificateSlot>,
        first: Issued,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut not_after = first.not_after;
        let mut wait = if first.due {
            Duration::ZERO
        } else {
            CHECK_EVERY
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if remaining(not_after) >= RENEW_BEFORE {
                wait = CHECK_EVERY;
                continue;
            }
            let renewed = tokio::select! {
                renewed = self.obtain() => renewed,
                _ = shutdown.changed() => return,
            };
            match renewed {
                Ok(issued) => {
                    slot.put(issued.certified);
                    not_after = issued.not_after;
                    tracing::info!("renewed ACME certificate in service");
                    wait = CHECK_EVERY;
                }
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        days_left = days_left(not_after),
                        retry_in = ?RETRY_AFTER_FAILURE,
                        "ACME renewal failed; the current certificate stays in service"
                    );
                    wait = RETRY_AFTER_FAILURE;
                }
            }
        }
    }
}

/// The stored pair as rustls serves it, with the leaf's expiry.
fn ready_to_serve(stored: &StoredCertificate) -> anyhow::Result<Issued> {
    let certified = certified_key(stored.chain_pem.as_bytes(), stored.key_pem.as_bytes())?;
    let leaf = certified.end_entity_cert().context("no leaf certificate")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|error| anyhow::anyhow!("cannot parse the certificate: {error}"))?;
    let seconds = u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0);
    Ok(Issued {
        certified,
        not_after: UNIX_EPOCH + Duration::from_secs(seconds),
        due: false,
    })
}

fn remaining(not_after: SystemTime) -> Duration {
    not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

fn days_left(not_after: SystemTime) -> u64 {
    remaining(not_after).as_secs() / 86_400
}

fn sorted(domains: &[String]) -> Vec<String> {
    let mut domains = domains.to_vec();
    domains.sort();
    domains.dedup();
    domains
}

/// Replaces `path` with `bytes` (mode 0600) in one rename, so a crash leaves the old file or
/// the new one, never half of one.
async fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(&temporary)
        .await
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temporary, path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The CA's HTTPS, through reqwest (rustls with ring), with a timeout on every request.
#[derive(Clone)]
struct AcmeHttp(reqwest::Client);

impl AcmeHttp {
    fn new(ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("once/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read acme_ca_cert {}", path.display()))?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("acme_ca_cert {} is not PEM", path.display()))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Self(
            builder.build().context("cannot build the ACME client")?,
        ))
    }
}

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        request: ::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let other = |error: reqwest::Error| instant_acme::Error::Other(Box::new(error));
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let request = reqwest::Request::try_from(::http::Request::from_parts(parts, body))
                .map_err(other)?;
            let response = client.execute(request).await.map_err(other)?;
            let mut head = ::http::Response::new(());
            *head.status_mut() = response.status();
            *head.version_mut() = response.version();
            *head.headers_mut() = response.headers().clone();
            let body = response.bytes().await.map_err(other)?;
            let (parts, ()) = head.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(body),
            })
        })
    }
}
