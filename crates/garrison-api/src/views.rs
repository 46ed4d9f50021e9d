//! Wire types of the API: what JSON clients send and receive. Converted by hand from store
//! records, because a serialised shape is a compatibility promise the store must not make.

use garrison_core::{Role, audit::AuditEntry, format_ms, now_ms};
use garrison_store::{Operator, Page, TokenInfo, TokenKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PageOf<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> PageOf<T> {
    /// Converts a store page item by item.
    pub fn from_page<U>(page: Page<U>, f: impl Fn(U) -> T) -> PageOf<T> {
        PageOf {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next,
        }
    }
}

/// Credentials for `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Operator username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Session token; send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The token's id (for `DELETE /api/v1/tokens/{id}`).
    pub token_id: String,
    /// Who logged in.
    pub username: String,
    /// Their role.
    pub role: Role,
    /// When the session ends (RFC 3339).
    pub expires_at: String,
}

/// The authenticated caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Username.
    pub username: String,
    /// The credential's role.
    pub role: Role,
    /// `session` or `api`.
    pub credential: String,
    /// The credential's token id.
    pub token_id: String,
    /// Permissions the caller holds, by stable name.
    pub permissions: Vec<String>,
}

/// Change one's own password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    pub current_password: String,
    /// The new password (at least 12 characters).
    pub new_password: String,
}

/// An operator account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// Username.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Disabled operators cannot log in; their tokens were revoked.
    pub disabled: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl From<Operator> for OperatorView {
    fn from(o: Operator) -> Self {
        OperatorView {
            username: o.username.into(),
            role: o.role,
            disabled: o.disabled,
            created_at: format_ms(o.created_at),
            updated_at: format_ms(o.updated_at),
        }
    }
}

/// Create an operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperator {
    /// Username: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Initial password (at least 12 characters). Omit to have one generated and returned once.
    #[serde(default)]
    pub password: Option<String>,
}

/// A created operator.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedOperator {
    /// The operator.
    pub operator: OperatorView,
    /// The generated password, present only when none was supplied. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
}

/// An API token's description (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Token id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Owner's username.
    pub owner: String,
    /// Role the token carries.
    pub role: Role,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Expires (RFC 3339), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Revoked (RFC 3339), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now_ms()) {
            "expired"
        } else {
            "active"
        };
        TokenView {
            id: t.id,
            name: t.name,
            owner: t.owner.into(),
            role: t.role,
            state: state.to_owned(),
            created_at: format_ms(t.created_at),
            expires_at: t.expires_at.map(format_ms),
            revoked_at: t.revoked_at.map(format_ms),
        }
    }
}

/// Create an API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label, e.g. `prometheus` or `ci-deploy` (1–100 characters).
    pub name: String,
    /// The token's role; defaults to the caller's. Never more than the caller's.
    #[serde(default)]
    pub role: Option<Role>,
    /// Lifetime such as `30d` or `12h` (1 minute to 3650 days); default `90d`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A created API token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token string. Shown once: store it now.
    pub token: String,
    /// Its description.
    pub info: TokenView,
}

/// An audit log entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the chain.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who or what (`operator:alice`, `token:…(alice)`, `system:…`, `anonymous:…`).
    pub actor: String,
    /// Dotted verb.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// State before, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// State after, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// Source address, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The entry's chain hash (hex).
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        let parse = |text: Option<String>| {
            text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
        };
        AuditEntryView {
            seq: e.seq,
            at: format_ms(e.at_ms),
            actor: e.actor,
            action: e.action,
            target: e.target,
            before: parse(e.before),
            after: parse(e.after),
            source: e.source,
            hash: e.hash.to_hex(),
        }
    }
}

/// Result of walking the audit chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyView {
    /// True when every entry verified.
    pub intact: bool,
    /// Entries verified before the first break (all when intact).
    pub verified: i64,
    /// Hash of the last verified entry: record it elsewhere to detect truncation later.
    pub head: String,
    /// The first broken entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_break: Option<garrison_core::audit::ChainBreak>,
}

/// Server information.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// Garrison version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// SHA-256 fingerprint of the root CA certificate.
    pub ca_fingerprint: String,
}

/// Health or readiness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// Why not ready, if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub(crate) fn credential_name(kind: TokenKind) -> &'static str {
    kind.as_str()
}
