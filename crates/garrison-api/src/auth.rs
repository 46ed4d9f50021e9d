//! Operator authentication: passwords, session and API tokens, login throttling, and the
//! [`Caller`] every protected handler receives.
//!
//! Passwords and token secrets are stored only as argon2id hashes. Verifying argon2 on every
//! request would cost tens of milliseconds, so a token whose secret verified once is remembered
//! by the SHA-256 of the whole token string; every request still reads the token's row, so
//! revocation, expiry and disabling the owner take effect on the very next request, on every
//! replica.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use aws_lc_rs::{
    constant_time::verify_slices_are_equal,
    digest,
    rand::{SecureRandom, SystemRandom},
};
use axum::{extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use garrison_core::{Permission, Role, TenantId, Username, audit::Actor, now_ms};
use garrison_store::{Store, TokenKind};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

const TOKEN_PREFIX: &str = "gar_";
const CACHE_CAPACITY: usize = 50_000;

/// Why hashing failed (only a broken system RNG or allocator can cause it).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password or token secret with argon2id (OWASP parameters: 19 MiB, 2 passes).
pub fn hash_secret(secret: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| HashError("random number generator failed".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks a secret against an argon2 PHC string. An unparseable hash never verifies.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for first start and resets: 24 characters of URL-safe base64 (144 bits).
pub fn generate_password() -> Result<String, HashError> {
    let mut bytes = [0u8; 18];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HashError("random number generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A hawkBit DDI target token: `gdt_` and 256 random bits, with the SHA-256 to store (the
/// token is random enough that a slow hash would add nothing).
pub(crate) fn mint_target_token() -> Result<(String, String), HashError> {
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| HashError("random number generator failed".into()))?;
    let token = format!("gdt_{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = target_token_hash(&token);
    Ok((token, hash))
}

/// What is stored of a target token.
pub(crate) fn target_token_hash(token: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

/// A freshly minted token: the string to hand out once, its id and the hash to store.
pub struct MintedToken {
    /// Token id (hyphenated UUIDv7).
    pub id: String,
    /// `gar_<32 hex id>_<secret>`: shown once, never stored.
    pub token: String,
    /// Argon2id hash of the secret half.
    pub secret_hash: String,
}

/// Makes a new token: a UUIDv7 id and 256 random bits of secret.
pub fn mint_token() -> Result<MintedToken, HashError> {
    let id = Uuid::now_v7();
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| HashError("random number generator failed".into()))?;
    let secret = URL_SAFE_NO_PAD.encode(secret);
    Ok(MintedToken {
        id: id.to_string(),
        token: format!("{TOKEN_PREFIX}{}_{secret}", id.simple()),
        secret_hash: hash_secret(&secret)?,
    })
}

/// Splits a token string into (hyphenated id, secret); `None` if it is not one of ours.
fn parse_token(token: &str) -> Option<(String, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = (rest.get(..32)?, rest.get(33..)?);
    if rest.as_bytes().get(32) != Some(&b'_') || secret.is_empty() || secret.len() > 64 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?.to_string(), secret))
}

/// Who is calling, as established by [`Authenticator::authenticate`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// Tenant.
    pub tenant: TenantId,
    /// The operator the credential belongs to.
    pub username: Username,
    /// The credential's role.
    pub role: Role,
    /// The owner's current role (a token never acts beyond it).
    pub owner_role: Role,
    /// Token id.
    pub token_id: String,
    /// Session or API token.
    pub kind: TokenKind,
    /// Source address of the request.
    pub source: Option<IpAddr>,
}

impl Caller {
    /// Whether the caller may do `permission`: both the token's role and its owner's current
    /// role must grant it.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.grants(permission) && self.owner_role.grants(permission)
    }

    /// 403 unless the caller may do `permission`.
    pub fn require(&self, permission: Permission) -> ApiResult<()> {
        if self.may(permission) {
            Ok(())
        } else {
            metrics::counter!("garrison_api_denied_total", "permission" => permission.as_str())
                .increment(1);
            tracing::info!(
                operator = %self.username, role = %self.role, %permission,
                "Request denied: role lacks permission"
            );
            Err(ApiError::forbidden(format!(
                "role {} does not grant {permission}",
                self.role
            )))
        }
    }

    /// The audit actor for this caller.
    pub fn actor(&self) -> Actor {
        match self.kind {
            TokenKind::Session => Actor::operator(self.username.as_str()),
            TokenKind::Api => Actor::token(&self.token_id, self.username.as_str()),
        }
    }

    /// The source address as audit text.
    pub fn source_text(&self) -> Option<String> {
        self.source.map(|ip| ip.to_string())
    }

    /// An audit record of `action` on `target` by this caller, from its address.
    pub fn audit(&self, action: &str, target: &str) -> garrison_core::audit::AuditRecord {
        garrison_core::audit::AuditRecord::new(&self.tenant, self.actor(), action, target)
            .source(self.source_text())
    }

    /// The operator's name, for records that name their author.
    pub fn name(&self) -> &str {
        self.username.as_str()
    }

    /// The caller as the identity service records it.
    pub fn requester(&self) -> garrison_identity::Requester {
        garrison_identity::Requester {
            username: self.username.clone(),
            actor: self.actor(),
            source: self.source_text(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("authentication required"))
    }
}

/// The client certificate the TLS layer verified for this connection, if the client sent one
/// (devices renewing or claiming over EST).
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub garrison_pki::PeerCertificate);

/// The peer address of the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Verifies credentials against the store, with a cache of verified token digests.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    verified: Arc<Mutex<HashMap<String, [u8; 32]>>>,
}

impl Authenticator {
    /// An authenticator over `store`.
    pub fn new(store: Arc<dyn Store>) -> Authenticator {
        Authenticator {
            store,
            verified: Arc::default(),
        }
    }

    /// Resolves a bearer token to a caller, or explains (to the log, not the client) why not.
    pub async fn authenticate(&self, token: &str, source: Option<IpAddr>) -> ApiResult<Caller> {
        let reject = |why: &str| {
            metrics::counter!("garrison_api_auth_failures_total", "reason" => why.to_owned())
                .increment(1);
            tracing::info!(reason = why, source = ?source, "Request refused: bad credentials");
            ApiError::unauthenticated(
                "invalid, expired or revoked token; log in again with `garrison login`",
            )
        };
        let Some((id, secret)) = parse_token(token) else {
            return Err(reject("malformed"));
        };
        let Some(auth) = self.store.token_auth(&id).await? else {
            return Err(reject("unknown"));
        };
        let digest: [u8; 32] = {
            let d = digest::digest(&digest::SHA256, token.as_bytes());
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        };
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|cache| cache.get(&id).copied())
            .is_some_and(|known| verify_slices_are_equal(&known, &digest).is_ok());
        if !cached {
            let secret = secret.to_owned();
            let hash = auth.secret_hash.clone();
            let ok = tokio::task::spawn_blocking(move || verify_secret(&secret, &hash))
                .await
                .map_err(ApiError::internal)?;
            if !ok {
                return Err(reject("secret_mismatch"));
            }
            if let Ok(mut cache) = self.verified.lock() {
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(id.clone(), digest);
            }
        }
        let token_info = auth.token;
        if token_info.revoked_at.is_some() {
            return Err(reject("revoked"));
        }
        if token_info.expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(reject("expired"));
        }
        if auth.owner_disabled {
            return Err(reject("owner_disabled"));
        }
        Ok(Caller {
            tenant: token_info.tenant,
            username: token_info.owner,
            role: token_info.role,
            owner_role: auth.owner_role,
            token_id: token_info.id,
            kind: token_info.kind,
            source,
        })
    }

    /// Forgets a token's cached verification (after revocation on this replica).
    pub fn forget(&self, token_id: &str) {
        if let Ok(mut cache) = self.verified.lock() {
            cache.remove(token_id);
        }
    }
}

/// Throttles failed logins per username and per source address with a fixed window.
#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    max_per_user: u32,
    max_per_source: u32,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginThrottle {
    /// A throttle allowing `max_per_user` failures per username and `max_per_source` per
    /// address within `window`.
    pub fn new(window: Duration, max_per_user: u32, max_per_source: u32) -> LoginThrottle {
        LoginThrottle {
            window,
            max_per_user,
            max_per_source,
            failures: Mutex::default(),
        }
    }

    fn keys(username: &str, source: Option<IpAddr>) -> [String; 2] {
        [
            format!("user:{username}"),
            format!("addr:{}", source.map(|s| s.to_string()).unwrap_or_default()),
        ]
    }

    /// `Err(seconds to wait)` if either key is over its limit.
    pub fn check(&self, username: &str, source: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        let [user, addr] = Self::keys(username, source);
        for (key, max) in [(user, self.max_per_user), (addr, self.max_per_source)] {
            if let Some((start, count)) = map.get(&key)
                && *count >= max
            {
                let wait = self.window.saturating_sub(now.duration_since(*start));
                return Err(wait.as_secs().max(1));
            }
        }
        Ok(())
    }

    /// Records a failure; returns true when this failure reached a limit.
    pub fn record_failure(&self, username: &str, source: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        let [user, addr] = Self::keys(username, source);
        let mut tripped = false;
        for (key, max) in [(user, self.max_per_user), (addr, self.max_per_source)] {
            let entry = map.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
            tripped |= entry.1 == max;
        }
        tripped
    }

    /// Clears the username's failures after a successful login.
    pub fn record_success(&self, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("user:{username}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let minted = mint_token().unwrap();
        let (id, secret) = parse_token(&minted.token).unwrap();
        assert_eq!(id, minted.id);
        assert!(verify_secret(secret, &minted.secret_hash));
        assert!(!verify_secret("wrong", &minted.secret_hash));
        assert!(parse_token("gar_short").is_none());
        assert!(parse_token("Bearer x").is_none());
        assert!(parse_token(&minted.token.replacen('_', "-", 2)).is_none());
        assert!(!verify_secret("x", "not a phc string"));
    }

    #[test]
    fn throttle_trips_and_recovers() {
        let t = LoginThrottle::new(Duration::from_millis(200), 3, 10);
        let ip: Option<IpAddr> = Some([127, 0, 0, 1].into());
        assert!(t.check("alice", ip).is_ok());
        assert!(!t.record_failure("alice", ip));
        assert!(!t.record_failure("alice", ip));
        assert!(t.record_failure("alice", ip));
        assert!(t.check("alice", ip).is_err());
        assert!(t.check("bob", ip).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check("alice", ip).is_ok());
    }
}
