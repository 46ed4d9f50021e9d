//! Garrison's storage: one [`Store`] trait, two implementations.
//!
//! [`SqliteStore`] is the embedded default (one WAL-mode file in the data directory);
//! [`PostgresStore`] serves production and several replicas sharing one database. Both run the
//! same SQL, written once in [`sql`] with portable types (text ids, `BIGINT` milliseconds, JSON as
//! text) and `$n` placeholders; each backend supplies only what genuinely differs — connecting,
//! its migrations, and how a write transaction is serialised.
//!
//! Every state-changing method takes the [`AuditRecord`](garrison_core::audit::AuditRecord) that
//! describes it and appends it to the audit chain *in the same transaction*, so a change and its
//! audit entry are never separated.
//!
//! Architecture invariant: this crate knows SQL and nothing about HTTP, TLS or MQTT.
#![forbid(unsafe_code)]

pub mod campaigns;
mod error;
pub mod identity;
pub mod inventory;
mod model;
pub mod monitor;
mod postgres;
mod sql;
mod sql_campaigns;
mod sql_identity;
mod sql_inventory;
mod sql_monitor;
mod sql_updates;
mod sqlite;
pub mod updates;

use std::sync::Arc;

use async_trait::async_trait;
use garrison_core::{
    TenantId, UnixMillis, Username,
    audit::{AuditEntry, AuditRecord, ChainBreak, ChainHash},
};

pub use error::{StoreError, StoreResult};
pub use identity::IdentityStore;
pub use inventory::InventoryStore;
pub use model::{
    Backend, NewOperator, NewToken, Operator, OperatorAuth, Page, PageRequest, TokenAuth,
    TokenInfo, TokenKind,
};
pub use monitor::MonitorStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The outcome of walking the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Entries that verified before the first break (all of them when intact).
    pub verified: i64,
    /// The hash of the last verified entry.
    pub head: ChainHash,
    /// The first broken entry, if any.
    pub first_break: Option<ChainBreak>,
}

/// Everything Garrison persists. Implementations must be safe to share between tasks and, for
/// PostgreSQL, between several server processes.
#[async_trait]
pub trait Store:
    IdentityStore
    + InventoryStore
    + MonitorStore
    + updates::UpdateStore
    + campaigns::CampaignStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Whether the schema has been created (used before migrating, to check the master key
    /// without changing anything).
    async fn is_initialized(&self) -> StoreResult<bool>;

    /// Applies pending schema migrations.
    async fn migrate(&self) -> StoreResult<()>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// Re-analyses tables whose planner statistics have gone stale and returns their names.
    ///
    /// PostgreSQL: every table with more than 50 + 10 % of its rows changed since its last
    /// `ANALYZE` (autovacuum's own default threshold), so this is a no-op where autovacuum keeps
    /// up. Where autovacuum is off, it is what stops a plan cached while a table was still
    /// empty (a sequential scan) from being reused by every pooled connection as the table
    /// grows: an issuance then slows down linearly with the fleet. SQLite: `PRAGMA optimize`,
    /// which analyses only where it expects plans to change.
    async fn refresh_statistics(&self) -> StoreResult<Vec<String>>;

    /// Flushes and closes connections (checkpoints the SQLite WAL).
    async fn close(&self);

    /// Reads a value from the installation's key/value metadata.
    async fn meta_get(&self, key: &str) -> StoreResult<Option<String>>;

    /// Writes metadata if the key is absent; returns the value now stored.
    async fn meta_put_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;

    /// A sealed secret (an encrypted private key), if present.
    async fn secret_get(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Stores a sealed secret unless one of that name exists; returns whether it was stored.
    /// Two replicas racing at first start thus agree on one CA.
    async fn secret_put_if_absent(
        &self,
        tenant: &TenantId,
        name: &str,
        sealed: &[u8],
        audit: AuditRecord,
    ) -> StoreResult<bool>;

    /// Creates an operator; [`StoreError::Conflict`] if the username is taken.
    async fn operator_create(&self, new: NewOperator, audit: AuditRecord) -> StoreResult<Operator>;

    /// An operator with the password hash, for login.
    async fn operator_auth(
        &self,
        tenant: &TenantId,
        username: &Username,
    ) -> StoreResult<Option<OperatorAuth>>;

    /// An operator by username.
    async fn operator_get(
        &self,
        tenant: &TenantId,
        username: &Username,
    ) -> StoreResult<Option<Operator>>;

    /// Operators ordered by username.
    async fn operators_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<Operator>>;

    /// Number of operators in the tenant.
    async fn operators_count(&self, tenant: &TenantId) -> StoreResult<i64>;

    /// Disables or enables an operator. Disabling also revokes every token the operator holds.
    async fn operator_set_disabled(
        &self,
        tenant: &TenantId,
        username: &Username,
        disabled: bool,
        audit: AuditRecord,
    ) -> StoreResult<Operator>;

    /// Replaces an operator's password hash and revokes their sessions.
    async fn operator_set_password(
        &self,
        tenant: &TenantId,
        username: &Username,
        password_hash: &str,
        audit: AuditRecord,
    ) -> StoreResult<Operator>;

    /// Stores a new API or session token (its secret only as a hash).
    async fn token_create(&self, new: NewToken, audit: AuditRecord) -> StoreResult<TokenInfo>;

    /// A token with what authentication needs: its hash, owner and the owner's state.
    async fn token_auth(&self, id: &str) -> StoreResult<Option<TokenAuth>>;

    /// API tokens (not sessions), newest first, optionally only one operator's.
    async fn tokens_list(
        &self,
        tenant: &TenantId,
        owner: Option<&Username>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenInfo>>;

    /// Revokes a token; [`StoreError::NotFound`] if it does not exist in the tenant.
    async fn token_revoke(
        &self,
        tenant: &TenantId,
        id: &str,
        audit: AuditRecord,
    ) -> StoreResult<TokenInfo>;

    /// Appends an audit entry that accompanies no other change (e.g. a failed login).
    async fn audit_append(&self, record: AuditRecord) -> StoreResult<AuditEntry>;

    /// Audit entries of a tenant, newest first; the cursor is a sequence number.
    async fn audit_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;

    /// Walks the whole chain in order and reports the first break.
    async fn audit_verify(&self) -> StoreResult<AuditVerification>;

    /// Takes or renews the lease `name` for `holder` until `now + ttl`; returns whether `holder`
    /// holds it. Jobs that must run once across replicas run only while holding their lease.
    async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> StoreResult<bool>;
}

/// Opens the store a URL names: `sqlite://PATH` (created if missing) or `postgres://…`.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl {
            url: redact_url(url),
        })
    }
}

/// A URL with any password replaced by `***`, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
