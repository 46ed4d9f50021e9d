//! The SQL both backends share, written once.
//!
//! Queries use only what SQLite and PostgreSQL both understand (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), and rows are read as tuples, so the decoding below is backend-independent.
//! [`impl_store!`] stamps the one [`Store`](crate::Store) implementation onto each backend's
//! concrete types: generic code over `sqlx::Database` would need a wall of higher-ranked bounds
//! that trip the compiler's `Send` inference in async code, while the macro keeps every query
//! concretely typed.

use garrison_core::{
    Role, TenantId, Username,
    audit::{AuditEntry, ChainHash},
};
use serde_json::json;

use crate::{
    StoreError, StoreResult,
    model::{Operator, TokenInfo, TokenKind},
};

pub(crate) type OperatorRow = (String, String, String, String, bool, i64, i64);

pub(crate) fn operator_from_row(row: OperatorRow) -> StoreResult<Operator> {
    let (id, tenant, username, role, disabled, created_at, updated_at) = row;
    Ok(Operator {
        role: role
            .parse::<Role>()
            .map_err(|e| StoreError::corrupt(format!("operator {id}"), e))?,
        id,
        tenant: TenantId::new(tenant)?,
        username: Username::new(username)?,
        disabled,
        created_at,
        updated_at,
    })
}

pub(crate) type TokenRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn token_from_row(row: TokenRow) -> StoreResult<TokenInfo> {
    let (id, tenant, owner, kind, name, role, created_at, expires_at, revoked_at) = row;
    Ok(TokenInfo {
        kind: TokenKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt(format!("token {id}"), "unknown kind"))?,
        role: role
            .parse::<Role>()
            .map_err(|e| StoreError::corrupt(format!("token {id}"), e))?,
        id,
        tenant: TenantId::new(tenant)?,
        owner: Username::new(owner)?,
        name,
        created_at,
        expires_at,
        revoked_at,
    })
}

pub(crate) type AuditRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<u8>,
    Vec<u8>,
);

/// A stored hash of the wrong length cannot be a real hash; this value never matches a computed
/// one, so verification reports the entry as modified instead of failing to read it.
const UNREADABLE_HASH: ChainHash = ChainHash([0xff; 32]);

pub(crate) fn audit_from_row(row: AuditRow) -> AuditEntry {
    let (seq, at_ms, tenant, actor, action, target, before, after, source, prev, hash) = row;
    AuditEntry {
        seq,
        at_ms,
        tenant,
        actor,
        action,
        target,
        before,
        after,
        source,
        prev_hash: ChainHash::from_slice(&prev).unwrap_or(UNREADABLE_HASH),
        hash: ChainHash::from_slice(&hash).unwrap_or(UNREADABLE_HASH),
    }
}

/// What the audit log records about an operator: everything but secrets.
pub(crate) fn operator_audit_json(op: &Operator) -> serde_json::Value {
    json!({ "username": op.username, "role": op.role, "disabled": op.disabled })
}

/// What the audit log records about a token: everything but its secret and hash.
pub(crate) fn token_audit_json(t: &TokenInfo) -> serde_json::Value {
    json!({
        "id": t.id, "owner": t.owner, "kind": t.kind.as_str(), "name": t.name, "role": t.role,
        "expires_at": t.expires_at, "revoked_at": t.revoked_at,
    })
}

/// Stamps the shared `Store` implementation onto a backend. The backend type provides
/// `pool`, `begin_write()`, `schema_exists()`, `run_migrations()` and `close_pool()`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr) => {
        impl $store {
            /// Appends `record` to the audit chain inside `tx`. The write transaction is
            /// serialised (see `begin_write`), so reading the head and appending cannot race.
            async fn append_audit(
                tx: &mut sqlx::Transaction<'_, $db>,
                record: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<garrison_core::audit::AuditEntry> {
                let mut entries = Self::append_audits(tx, vec![record]).await?;
                entries.pop().ok_or_else(|| {
                    $crate::StoreError::corrupt("audit append", "no entry was sealed")
                })
            }

            /// Appends `records` to the audit chain inside `tx`, in order: one read of the
            /// head and multi-row inserts, however many there are (a batch of issuances).
            async fn append_audits(
                tx: &mut sqlx::Transaction<'_, $db>,
                records: Vec<garrison_core::audit::AuditRecord>,
            ) -> $crate::StoreResult<Vec<garrison_core::audit::AuditEntry>> {
                if records.is_empty() {
                    return Ok(Vec::new());
                }
                let head: Option<(i64, Vec<u8>)> =
                    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(&mut **tx)
                        .await?;
                let (mut seq, mut prev) = match head {
                    Some((seq, hash)) => (
                        seq + 1,
                        garrison_core::audit::ChainHash::from_slice(&hash).ok_or_else(|| {
                            $crate::StoreError::corrupt(
                                format!("audit entry {seq}"),
                                "hash is not 32 bytes; run `garrison audit verify`",
                            )
                        })?,
                    ),
                    None => (1, garrison_core::audit::ChainHash::GENESIS),
                };
                let at = garrison_core::now_ms();
                let mut entries = Vec::with_capacity(records.len());
                for record in records {
                    let entry = record.seal(seq, at, prev);
                    prev = entry.hash;
                    seq += 1;
                    entries.push(entry);
                }
                // 11 parameters a row: far below either backend's limit per statement.
                for chunk in entries.chunks(1000) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO audit_log (seq, at_ms, tenant, actor, action, target, \
                         before_state, after_state, source, prev_hash, hash) ",
                    );
                    insert.push_values(chunk, |mut row, entry| {
                        row.push_bind(entry.seq)
                            .push_bind(entry.at_ms)
                            .push_bind(entry.tenant.as_str())
                            .push_bind(entry.actor.as_str())
                            .push_bind(entry.action.as_str())
                            .push_bind(entry.target.as_str())
                            .push_bind(entry.before.as_deref())
                            .push_bind(entry.after.as_deref())
                            .push_bind(entry.source.as_deref())
                            .push_bind(entry.prev_hash.0.to_vec())
                            .push_bind(entry.hash.0.to_vec());
                    });
                    // A single entry (the common case) keeps one statement text, worth caching.
                    insert.build().persistent(chunk.len() == 1).execute(&mut **tx).await?;
                }
                Ok(entries)
            }

            async fn operator_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                username: &garrison_core::Username,
            ) -> $crate::StoreResult<$crate::Operator> {
                let row: Option<$crate::sql::OperatorRow> = sqlx::query_as(
                    "SELECT id, tenant, username, role, disabled, created_at, updated_at \
                     FROM operators WHERE tenant = $1 AND username = $2",
                )
                .bind(tenant.as_str())
                .bind(username.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                match row {
                    Some(row) => $crate::sql::operator_from_row(row),
                    None => Err($crate::StoreError::NotFound {
                        what: format!("operator {username:?}"),
                    }),
                }
            }

            async fn token_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<$crate::TokenInfo> {
                let row: Option<$crate::sql::TokenRow> = sqlx::query_as(
                    "SELECT t.id, t.tenant, o.username, t.kind, t.name, t.role, t.created_at, \
                     t.expires_at, t.revoked_at FROM tokens t JOIN operators o ON o.id = t.operator_id \
                     WHERE t.tenant = $1 AND t.id = $2",
                )
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                match row {
                    Some(row) => $crate::sql::token_from_row(row),
                    None => Err($crate::StoreError::NotFound {
                        what: format!("token {id:?}"),
                    }),
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            async fn is_initialized(&self) -> $crate::StoreResult<bool> {
                self.schema_exists().await
            }

            async fn migrate(&self) -> $crate::StoreResult<()> {
                self.run_migrations().await
            }

            async fn ping(&self) -> $crate::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn refresh_statistics(&self) -> $crate::StoreResult<Vec<String>> {
                self.analyze_stale().await
            }

            async fn close(&self) {
                self.close_pool().await
            }

            async fn meta_get(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT value FROM garrison_meta WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn meta_put_if_absent(
                &self,
                key: &str,
                value: &str,
            ) -> $crate::StoreResult<String> {
                sqlx::query(
                    "INSERT INTO garrison_meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(
                    sqlx::query_scalar("SELECT value FROM garrison_meta WHERE key = $1")
                        .bind(key)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn secret_get(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
            ) -> $crate::StoreResult<Option<Vec<u8>>> {
                Ok(
                    sqlx::query_scalar("SELECT sealed FROM secrets WHERE tenant = $1 AND name = $2")
                        .bind(tenant.as_str())
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn secret_put_if_absent(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
                sealed: &[u8],
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let inserted = sqlx::query(
                    "INSERT INTO secrets (tenant, name, sealed, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, name) DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(name)
                .bind(sealed.to_vec())
                .bind(garrison_core::now_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    Self::append_audit(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn operator_create(
                &self,
                new: $crate::NewOperator,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::Operator> {
                let mut tx = self.begin_write().await?;
                let now = garrison_core::now_ms();
                let row: $crate::sql::OperatorRow = sqlx::query_as(
                    "INSERT INTO operators (id, tenant, username, role, password_hash, disabled, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) \
                     RETURNING id, tenant, username, role, disabled, created_at, updated_at",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(new.tenant.as_str())
                .bind(new.username.as_str())
                .bind(new.role.as_str())
                .bind(&new.password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    $crate::error::conflict_or(e, || format!("operator {:?}", new.username.as_str()))
                })?;
                let op = $crate::sql::operator_from_row(row)?;
                let audit = audit.after($crate::sql::operator_audit_json(&op));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(op)
            }

            async fn operator_auth(
                &self,
                tenant: &garrison_core::TenantId,
                username: &garrison_core::Username,
            ) -> $crate::StoreResult<Option<$crate::OperatorAuth>> {
                let row: Option<(String, String, String, String, bool, i64, i64, String)> =
                    sqlx::query_as(
                        "SELECT id, tenant, username, role, disabled, created_at, updated_at, \
                         password_hash FROM operators WHERE tenant = $1 AND username = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(username.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(id, t, u, r, d, c, up, hash)| {
                    Ok($crate::OperatorAuth {
                        operator: $crate::sql::operator_from_row((id, t, u, r, d, c, up))?,
                        password_hash: hash,
                    })
                })
                .transpose()
            }

            async fn operator_get(
                &self,
                tenant: &garrison_core::TenantId,
                username: &garrison_core::Username,
            ) -> $crate::StoreResult<Option<$crate::Operator>> {
                let row: Option<$crate::sql::OperatorRow> = sqlx::query_as(
                    "SELECT id, tenant, username, role, disabled, created_at, updated_at \
                     FROM operators WHERE tenant = $1 AND username = $2",
                )
                .bind(tenant.as_str())
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql::operator_from_row).transpose()
            }

            async fn operators_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::Operator>> {
                let rows: Vec<$crate::sql::OperatorRow> = sqlx::query_as(
                    "SELECT id, tenant, username, role, disabled, created_at, updated_at \
                     FROM operators WHERE tenant = $1 AND username > $2 ORDER BY username LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql::operator_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |o| {
                    o.username.as_str().to_owned()
                }))
            }

            async fn operators_count(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<i64> {
                Ok(
                    sqlx::query_scalar("SELECT COUNT(*) FROM operators WHERE tenant = $1")
                        .bind(tenant.as_str())
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn operator_set_disabled(
                &self,
                tenant: &garrison_core::TenantId,
                username: &garrison_core::Username,
                disabled: bool,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::Operator> {
                let mut tx = self.begin_write().await?;
                let before = Self::operator_in(&mut tx, tenant, username).await?;
                let now = garrison_core::now_ms();
                sqlx::query(
                    "UPDATE operators SET disabled = $1, updated_at = $2 \
                     WHERE tenant = $3 AND username = $4",
                )
                .bind(disabled)
                .bind(now)
                .bind(tenant.as_str())
                .bind(username.as_str())
                .execute(&mut *tx)
                .await?;
                if disabled {
                    sqlx::query(
                        "UPDATE tokens SET revoked_at = $1 \
                         WHERE operator_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(&before.id)
                    .execute(&mut *tx)
                    .await?;
                }
                let after = Self::operator_in(&mut tx, tenant, username).await?;
                let audit = audit
                    .before($crate::sql::operator_audit_json(&before))
                    .after($crate::sql::operator_audit_json(&after));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn operator_set_password(
                &self,
                tenant: &garrison_core::TenantId,
                username: &garrison_core::Username,
                password_hash: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::Operator> {
                let mut tx = self.begin_write().await?;
                let op = Self::operator_in(&mut tx, tenant, username).await?;
                let now = garrison_core::now_ms();
                sqlx::query("UPDATE operators SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(password_hash)
                    .bind(now)
                    .bind(&op.id)
                    .execute(&mut *tx)
                    .await?;
                let revoked = sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 \
                     WHERE operator_id = $2 AND kind = 'session' AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&op.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let audit =
                    audit.after(serde_json::json!({ "sessions_revoked": revoked }));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(op)
            }

            async fn token_create(
                &self,
                new: $crate::NewToken,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::TokenInfo> {
                let mut tx = self.begin_write().await?;
                let owner = Self::operator_in(&mut tx, &new.tenant, &new.owner).await?;
                sqlx::query(
                    "INSERT INTO tokens (id, tenant, operator_id, kind, name, role, secret_hash, \
                     created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
                )
                .bind(&new.id)
                .bind(new.tenant.as_str())
                .bind(&owner.id)
                .bind(new.kind.as_str())
                .bind(&new.name)
                .bind(new.role.as_str())
                .bind(&new.secret_hash)
                .bind(garrison_core::now_ms())
                .bind(new.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::error::conflict_or(e, || format!("token {:?}", new.id)))?;
                let token = Self::token_in(&mut tx, &new.tenant, &new.id).await?;
                let audit = audit.after($crate::sql::token_audit_json(&token));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(token)
            }

            async fn token_auth(&self, id: &str) -> $crate::StoreResult<Option<$crate::TokenAuth>> {
                #[allow(clippy::type_complexity)]
                let row: Option<(
                    String, String, String, String, String, String, i64, Option<i64>,
                    Option<i64>, String, bool, String,
                )> = sqlx::query_as(
                    "SELECT t.id, t.tenant, o.username, t.kind, t.name, t.role, t.created_at, \
                     t.expires_at, t.revoked_at, t.secret_hash, o.disabled, o.role \
                     FROM tokens t JOIN operators o ON o.id = t.operator_id WHERE t.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(id, tenant, owner, kind, name, role, c, e, r, hash, disabled, orole)| {
                    let token = $crate::sql::token_from_row((id, tenant, owner, kind, name, role, c, e, r))?;
                    Ok($crate::TokenAuth {
                        owner_role: orole.parse::<garrison_core::Role>().map_err(|err| {
                            $crate::StoreError::corrupt(format!("operator {}", token.owner), err)
                        })?,
                        token,
                        secret_hash: hash,
                        owner_disabled: disabled,
                    })
                })
                .transpose()
            }

            async fn tokens_list(
                &self,
                tenant: &garrison_core::TenantId,
                owner: Option<&garrison_core::Username>,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::TokenInfo>> {
                // Token ids are hyphenated lowercase UUIDs, all of which sort below "g".
                let rows: Vec<$crate::sql::TokenRow> = sqlx::query_as(
                    "SELECT t.id, t.tenant, o.username, t.kind, t.name, t.role, t.created_at, \
                     t.expires_at, t.revoked_at FROM tokens t JOIN operators o ON o.id = t.operator_id \
                     WHERE t.tenant = $1 AND t.kind = 'api' AND ($2 = '' OR o.username = $2) \
                     AND t.id < $3 ORDER BY t.id DESC LIMIT $4",
                )
                .bind(tenant.as_str())
                .bind(owner.map(|o| o.as_str()).unwrap_or(""))
                .bind(page.after.as_deref().unwrap_or("g"))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql::token_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |t| t.id.clone()))
            }

            async fn token_revoke(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::TokenInfo> {
                let mut tx = self.begin_write().await?;
                let before = Self::token_in(&mut tx, tenant, id).await?;
                sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 \
                     WHERE tenant = $2 AND id = $3 AND revoked_at IS NULL",
                )
                .bind(garrison_core::now_ms())
                .bind(tenant.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let after = Self::token_in(&mut tx, tenant, id).await?;
                let audit = audit
                    .before($crate::sql::token_audit_json(&before))
                    .after($crate::sql::token_audit_json(&after));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn audit_append(
                &self,
                record: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<garrison_core::audit::AuditEntry> {
                let mut tx = self.begin_write().await?;
                let entry = Self::append_audit(&mut tx, record).await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn audit_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<garrison_core::audit::AuditEntry>> {
                let after = match page.after.as_deref() {
                    Some(cursor) => cursor.parse::<i64>().map_err(|_| {
                        $crate::StoreError::NotFound { what: format!("audit cursor {cursor:?}") }
                    })?,
                    None => i64::MAX,
                };
                let rows: Vec<$crate::sql::AuditRow> = sqlx::query_as(
                    "SELECT seq, at_ms, tenant, actor, action, target, before_state, after_state, \
                     source, prev_hash, hash FROM audit_log WHERE tenant = $1 AND seq < $2 \
                     ORDER BY seq DESC LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(after)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows.into_iter().map($crate::sql::audit_from_row).collect();
                Ok($crate::sql::paginate(items, page.limit, |e| e.seq.to_string()))
            }

            async fn audit_verify(&self) -> $crate::StoreResult<$crate::AuditVerification> {
                let mut verifier = garrison_core::audit::ChainVerifier::new();
                let mut last_seq = 0i64;
                loop {
                    let rows: Vec<$crate::sql::AuditRow> = sqlx::query_as(
                        "SELECT seq, at_ms, tenant, actor, action, target, before_state, \
                         after_state, source, prev_hash, hash FROM audit_log WHERE seq > $1 \
                         ORDER BY seq LIMIT 2000",
                    )
                    .bind(last_seq)
                    .fetch_all(&self.pool)
                    .await?;
                    let Some(last) = rows.last() else { break };
                    last_seq = last.0;
                    for row in rows {
                        let entry = $crate::sql::audit_from_row(row);
                        if let Err(first_break) = verifier.check(&entry) {
                            return Ok($crate::AuditVerification {
                                verified: verifier.verified(),
                                head: verifier.head(),
                                first_break: Some(first_break),
                            });
                        }
                    }
                }
                Ok($crate::AuditVerification {
                    verified: verifier.verified(),
                    head: verifier.head(),
                    first_break: None,
                })
            }

            async fn lease_acquire(
                &self,
                name: &str,
                holder: &str,
                now: garrison_core::UnixMillis,
                ttl_ms: i64,
            ) -> $crate::StoreResult<bool> {
                sqlx::query(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                     expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
                )
                .bind(name)
                .bind(holder)
                .bind(now.saturating_add(ttl_ms))
                .bind(now)
                .execute(&self.pool)
                .await?;
                let current: Option<String> =
                    sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(current.as_deref() == Some(holder))
            }
        }
    };
}

pub(crate) use impl_store;

/// Trims a `limit + 1` fetch to `limit` items and derives the next cursor from the last item.
pub(crate) fn paginate<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> crate::Page<T> {
    let limit = limit as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    crate::Page { items, next }
}
