//! Records the store reads and writes. These are storage-shaped domain values; the API converts
//! them to its own wire types at its edge.

use garrison_core::{Role, TenantId, UnixMillis, Username};

/// Which storage engine backs a [`Store`](crate::Store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass as [`PageRequest::after`] to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (the API bounds it).
    pub limit: u32,
    /// Start after this cursor (from a previous [`Page::next`]).
    pub after: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> PageRequest {
        PageRequest { limit, after: None }
    }
}

/// An operator account, without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Stable id (UUIDv7).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Login name.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Disabled operators cannot log in and their tokens stop working.
    pub disabled: bool,
    /// Created at.
    pub created_at: UnixMillis,
    /// Last changed at.
    pub updated_at: UnixMillis,
}

/// An operator with the password hash, only for verifying a login.
#[derive(Debug, Clone)]
pub struct OperatorAuth {
    /// The operator.
    pub operator: Operator,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A new operator account.
#[derive(Debug, Clone)]
pub struct NewOperator {
    /// Tenant.
    pub tenant: TenantId,
    /// Login name.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string (never the password).
    pub password_hash: String,
}

/// Whether a token came from a login or was created as an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Long-lived API token for automation.
    Api,
    /// Short-lived token returned by a login.
    Session,
}

impl TokenKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "api" => Some(TokenKind::Api),
            "session" => Some(TokenKind::Session),
            _ => None,
        }
    }
}

/// A token's public description (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Token id (UUIDv7), the public half of the token string.
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// The operator it acts for.
    pub owner: Username,
    /// API or session.
    pub kind: TokenKind,
    /// A label chosen by its creator.
    pub name: String,
    /// The role it carries (never more than its owner's).
    pub role: Role,
    /// Created at.
    pub created_at: UnixMillis,
    /// Stops working at, if set.
    pub expires_at: Option<UnixMillis>,
    /// Revoked at, if revoked.
    pub revoked_at: Option<UnixMillis>,
}

/// A new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Token id (UUIDv7) chosen by the caller, as it is part of the token string.
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Owner's username.
    pub owner: Username,
    /// API or session.
    pub kind: TokenKind,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string of the secret half.
    pub secret_hash: String,
    /// Expiry, if any.
    pub expires_at: Option<UnixMillis>,
}

/// A token with what authenticating it needs.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// The token.
    pub token: TokenInfo,
    /// Argon2id PHC string of its secret.
    pub secret_hash: String,
    /// Whether the owner is disabled.
    pub owner_disabled: bool,
    /// The owner's current role: a token never acts beyond it, even if the owner was demoted.
    pub owner_role: Role,
}
