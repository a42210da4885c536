//! API keys: creating them (sealed secret, hashed secret) needs only the metadata store and the
//! sealer, so `once keys …` administers keys straight on the metadata store (no HTTP, no key,
//! no blob store) for whoever can read the server's configuration and data directory. It opens
//! only a store that exists: listing or creating keys where no server looks helps nobody.

use once_domain::{
    ApiToken, AuditEvent, AuditKind, AuditSource, DomainError, Instant, KeyId, KeyRecord,
    SecretSealer,
};
use once_meta::{MetaError, MetaStore, StoredKey};

use crate::config::ServerArgs;
use crate::service::{ServiceError, ServiceResult};
use crate::startup::{key_sealer, open_key_store};

/// The stores a key is written to: its record and hashed secret in the metadata store, its
/// secret sealed under the master secret.
pub struct Keyring<'a> {
    pub meta: &'a dyn MetaStore,
    pub sealer: &'a SecretSealer,
}

impl Keyring<'_> {
    async fn store(&self, token: &ApiToken, name: &str, now: Instant) -> ServiceResult<()> {
        let name = once_domain::key::validate_key_name(name)?;
        let key = StoredKey {
            record: KeyRecord {
                id: token.id.clone(),
                name,
                created_at: now,
                revoked_at: None,
            },
            secret_hash: token.secret.hash().to_vec(),
            sealed_secret: self.sealer.seal(token.id.as_str(), &token.secret),
        };
        match self.meta.insert_key(&key).await {
            Err(MetaError::KeyExists) => Err(DomainError::KeyExists.into()),
            Err(other) => Err(other.into()),
            Ok(()) => {
                record_key_event(self.meta, AuditKind::KeyCreated, &token.id, now).await;
                Ok(())
            }
        }
    }

    /// A fresh key named `name`; the token is shown once, only its hash and sealed form are
    /// kept.
    pub async fn create(&self, name: &str, now: Instant) -> ServiceResult<ApiToken> {
        let token = ApiToken::generate();
        self.store(&token, name, now).await?;
        Ok(token)
    }

    /// Makes sure `token` exists. A different secret under the same id is an error rather
    /// than a silent overwrite.
    pub async fn ensure(&self, token: &ApiToken, name: &str, now: Instant) -> ServiceResult<()> {
        match self.meta.find_key(&token.id).await? {
            Some(existing) if token.secret.matches_hash(&existing.secret_hash) => Ok(()),
            Some(_) => Err(DomainError::KeyExists.into()),
            None => match self.store(token, name, now).await {
                // Another instance bootstrapped it at the same moment.
                Err(ServiceError::Rejected(DomainError::KeyExists)) => Ok(()),
                other => other,
            },
        }
    }
}

pub async fn create(args: ServerArgs, name: &str) -> anyhow::Result<String> {
    let (config, meta) = open_key_store(&args).await?;
    let sealer = key_sealer(&config, &*meta).await?;
    let keyring = Keyring {
        meta: &*meta,
        sealer: &sealer,
    };
    let token = keyring
        .create(name, once_domain::now())
        .await
        .map_err(|error| anyhow::anyhow!("cannot create the key: {error}"))?;
    Ok(token.reveal())
}

pub async fn list(args: ServerArgs) -> anyhow::Result<Vec<KeyRecord>> {
    let (_, meta) = open_key_store(&args).await?;
    Ok(meta.list_keys().await?)
}

pub async fn revoke(args: ServerArgs, id: &str) -> anyhow::Result<()> {
    let (_, meta) = open_key_store(&args).await?;
    let id = KeyId::parse(id)
        .map_err(|_| anyhow::anyhow!("a key id is 16 lowercase hexadecimal characters"))?;
    let now = once_domain::now();
    anyhow::ensure!(meta.revoke_key(&id, now).await?, "no active key {id}");
    record_key_event(&*meta, AuditKind::KeyRevoked, &id, now).await;
    println!("revoked {id}");
    Ok(())
}

/// Key administration happens on the server's machine, not over HTTP: its events carry no
/// address, and the key's own log holds them. Best effort, as every audit write after a change.
async fn record_key_event(meta: &dyn MetaStore, kind: AuditKind, id: &KeyId, now: Instant) {
    let event = AuditEvent::new(kind, now, &AuditSource::server("once keys")).of_key(id);
    if let Err(error) = meta.record_audit(&event).await {
        tracing::warn!(%error, %kind, "could not write an audit event");
    }
}
