//! HTTPS (rustls, ring). The certificate is looked up per handshake from a slot that is
//! refilled when it is renewed: from files, by a watcher that notices a change (checked every
//! few seconds) or SIGHUP; with ACME, by the renewer (`crate::acme`). So a renewed certificate
//! is served without a restart and without dropping a connection. A broken renewal (a missing
//! file, a key that does not match) is logged and the last good certificate stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// How often the files are looked at for a change.
const CHECK_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertificateFiles {
    /// What the files look like now, to notice a change: modification times and sizes.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let look = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        Some([look(&self.cert)?, look(&self.key)?])
    }

    fn load(&self) -> anyhow::Result<CertifiedKey> {
        let chain = std::fs::read(&self.cert)
            .with_context(|| format!("cannot read the certificate {}", self.cert.display()))?;
        let key = std::fs::read(&self.key)
            .with_context(|| format!("cannot read the private key {}", self.key.display()))?;
        certified_key(&chain, &key).with_context(|| {
            format!(
                "cannot serve the certificate {} with the key {}",
                self.cert.display(),
                self.key.display()
            )
        })
    }
}

/// The certificate in service, looked up per handshake. Whoever renews it (the file watcher,
/// the ACME renewer) puts the new one in; connections already open keep theirs.
#[derive(Debug)]
pub struct CertificateSlot {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateSlot {
    pub fn new(certified: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(certified)),
        })
    }

    /// Serves `certified` from the next handshake on.
    pub fn put(&self, certified: CertifiedKey) {
        *self.current.write().expect("certificate lock") = Arc::new(certified);
    }
}

impl ResolvesServerCert for CertificateSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

/// A certificate chain and its private key, as PEM, made ready to serve.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("not a PEM certificate chain")?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the chain");
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("not a PEM private key")?;
    CertifiedKey::from_der(chain, key, &provider::default_provider())
        .context("the key does not fit the certificate")
}

/// The certificate files in service, refilled by [`watch_files`].
#[derive(Debug)]
pub struct ReloadingCertificate {
    files: CertificateFiles,
    slot: Arc<CertificateSlot>,
    seen: Mutex<Option<[(SystemTime, u64); 2]>>,
}

impl ReloadingCertificate {
    pub fn load(files: CertificateFiles) -> anyhow::Result<Arc<Self>> {
        let seen = files.stamp();
        let current = files.load()?;
        Ok(Arc::new(Self {
            files,
            slot: CertificateSlot::new(current),
            seen: Mutex::new(seen),
        }))
    }

    /// The slot the acceptor reads.
    pub fn slot(&self) -> Arc<CertificateSlot> {
        self.slot.clone()
    }

    /// Loads the files again if they changed (or always, when `forced`); true if a new
    /// certificate is now in service.
    pub fn refresh(&self, forced: bool) -> bool {
        let stamp = self.files.stamp();
        {
            let mut seen = self.seen.lock().expect("certificate stamp lock");
            if !forced && *seen == stamp {
                return false;
            }
            *seen = stamp;
        }
        match self.files.load() {
            Ok(certified) => {
                self.slot.put(certified);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(error) => {
                // A renewal caught half-written is read again at the next change or check.
                tracing::warn!(
                    error = format!("{error:#}"),
                    "TLS certificate not reloaded; the previous one stays in service"
                );
                false
            }
        }
    }
}

/// The acceptor for HTTPS connections, serving whatever `certificate` holds. HTTP/1.1 only,
/// as on plain connections.
pub fn acceptor(certificate: Arc<CertificateSlot>) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reloads the certificate when its files change, and on SIGHUP, until `shutdown`.
pub async fn watch_files(
    certificate: Arc<ReloadingCertificate>,
    mut shutdown: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup_received = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup_received = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = ticks.tick() => {
                let certificate = certificate.clone();
                let _ = tokio::task::spawn_blocking(move || certificate.refresh(false)).await;
            }
            _ = hangup_received => {
                tracing::info!("SIGHUP: reloading the TLS certificate");
                let certificate = certificate.clone();
                let _ = tokio::task::spawn_blocking(move || certificate.refresh(true)).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}
