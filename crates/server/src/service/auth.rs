//! Who is calling: bearer keys, HMAC-signed requests (with replay protection) and key management.

use once_domain::signing::{REQUEST_SIGNATURE_WINDOW_SECS, verify_request_signature};
use once_domain::{ApiToken, DomainError, Instant, KeyId};
use once_meta::StoredKey;

use super::*;

impl Service {
    async fn active_key(&self, id: &KeyId) -> ServiceResult<StoredKey> {
        match self.meta.find_key(id).await? {
            Some(key) if key.record.is_active() => Ok(key),
            _ => Err(DomainError::InvalidCredentials.into()),
        }
    }

    pub async fn authenticate_bearer(&self, token: &str) -> ServiceResult<Caller> {
        let token = ApiToken::parse(token)?;
        let key = self.active_key(&token.id).await?;
        if !token.secret.matches_hash(&key.secret_hash) {
            return Err(DomainError::InvalidCredentials.into());
        }
        Ok(Caller { key_id: token.id })
    }

    /// The first half of checking an HMAC-signed request, before a byte of its body is read:
    /// the key must exist and be active, so a made-up key id costs no body buffering.
    pub async fn signing_key(&self, key_id: &str) -> ServiceResult<SigningKey> {
        let key_id = KeyId::parse(key_id)?;
        let key = self.active_key(&key_id).await?;
        let secret = self
            .sealer
            .open(key_id.as_str(), &key.sealed_secret)
            .ok_or(DomainError::InvalidCredentials)?;
        Ok(SigningKey { key_id, secret })
    }

    /// Verifies an HMAC-signed request and burns its signature so it cannot be replayed,
    /// on this or any other instance sharing the metadata store.
    pub async fn authenticate_signed(
        &self,
        key: SigningKey,
        request: &SignedRequest<'_>,
        now: Instant,
    ) -> ServiceResult<Caller> {
        verify_request_signature(
            &key.secret,
            request.method,
            request.path_and_query,
            request.timestamp,
            request.body_sha256_hex,
            request.signature,
            now,
        )?;
        // Keep the record for as long as the timestamp could still be accepted.
        let keep_until = request
            .timestamp
            .checked_add(REQUEST_SIGNATURE_WINDOW_SECS + 1)
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or(DomainError::StaleTimestamp)?;
        if !self
            .meta
            .record_signature(&key.key_id, request.signature, keep_until)
            .await?
        {
            return Err(DomainError::ReplayedSignature.into());
        }
        Ok(Caller { key_id: key.key_id })
    }

    // ---- browser sessions -------------------------------------------------------------

    /// Signs a browser in with an API key: the session token its cookie carries, and when it
    /// ends. The key is checked exactly as a bearer token is.
    pub async fn open_session(
        &self,
        token: &str,
        now: Instant,
    ) -> ServiceResult<(String, Caller, Instant)> {
        let caller = self.authenticate_bearer(token.trim()).await?;
        let lifetime =
            time::Duration::try_from(self.session_lifetime).unwrap_or(time::Duration::HOUR);
        let expires_at = now
            .saturating_add(lifetime)
            .replace_nanosecond(0)
            .unwrap_or(now);
        let session = self.sessions.issue(&caller.key_id, expires_at);
        Ok((session, caller, expires_at))
    }

    /// The key behind a session cookie, which must still be active: revoking a key ends all
    /// of its sessions.
    pub async fn authenticate_session(&self, session: &str, now: Instant) -> ServiceResult<Caller> {
        let session = self.sessions.verify(session, now)?;
        self.active_key(&session.key_id)
            .await
            .map_err(|_| DomainError::SessionInvalid)?;
        Ok(Caller {
            key_id: session.key_id,
        })
    }

    /// The CSRF token pages of this session carry.
    pub fn csrf_token(&self, session: &str) -> String {
        self.sessions.csrf_token(session)
    }

    pub fn check_csrf(&self, session: &str, csrf: &str) -> ServiceResult<()> {
        Ok(self.sessions.check_csrf(session, csrf)?)
    }

    // ---- keys ---------------------------------------------------------------------------

    fn keyring(&self) -> crate::keys::Keyring<'_> {
        crate::keys::Keyring {
            meta: &*self.meta,
            sealer: &self.sealer,
        }
    }

    pub async fn create_key(&self, name: &str, now: Instant) -> ServiceResult<ApiToken> {
        self.keyring().create(name, now).await
    }

    /// Makes sure `token` exists (for `ONCE_BOOTSTRAP_KEY`).
    pub async fn ensure_key(
        &self,
        token: &ApiToken,
        name: &str,
        now: Instant,
    ) -> ServiceResult<()> {
        self.keyring().ensure(token, name, now).await
    }
}
