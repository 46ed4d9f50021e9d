//! The identity SQL both backends share (see [`crate::identity`] for what each method means).

use garrison_core::{
    DeviceId, TenantId,
    device::{CertificateKind, EnrollmentMethod, RevocationReason},
};
use serde_json::json;

use crate::{
    StoreError, StoreResult,
    identity::{BootstrapToken, Certificate, Claim, Device, EnrollmentRequest, RequestStatus},
};

pub(crate) const DEVICE_COLUMNS: &str = "tenant, id, quarantined, enrolled_via, current_serial, \
     created_at, updated_at, rotation_requested_at";
pub(crate) type DeviceRow = (
    String,
    String,
    bool,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

pub(crate) fn device_from_row(row: DeviceRow) -> StoreResult<Device> {
    let (tenant, id, quarantined, via, current_serial, created_at, updated_at, rotation) = row;
    Ok(Device {
        enrolled_via: EnrollmentMethod::parse(&via).ok_or_else(|| {
            StoreError::corrupt(format!("device {id}"), "unknown enrollment method")
        })?,
        tenant: TenantId::new(tenant)?,
        id: DeviceId::new(id)?,
        quarantined,
        current_serial,
        created_at,
        updated_at,
        rotation_requested_at: rotation,
    })
}

pub(crate) const CERT_COLUMNS: &str = "serial, tenant, kind, subject, fingerprint, pem, \
     not_before, not_after, issued_at, revoked_at, revocation_reason";
pub(crate) type CertRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

pub(crate) fn cert_from_row(row: CertRow) -> StoreResult<Certificate> {
    let (serial, tenant, kind, subject, fingerprint, pem, nb, na, issued, revoked_at, reason) = row;
    let what = || format!("certificate {serial}");
    Ok(Certificate {
        kind: CertificateKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt(what(), "unknown kind"))?,
        revocation_reason: reason
            .map(|r| r.parse::<RevocationReason>())
            .transpose()
            .map_err(|e| StoreError::corrupt(what(), e))?,
        tenant: TenantId::new(tenant)?,
        serial,
        subject,
        fingerprint,
        pem,
        not_before: nb,
        not_after: na,
        issued_at: issued,
        revoked_at,
    })
}

/// Why a new identity is refused to a device that still has a valid certificate.
pub(crate) fn live_identity_refusal(device: &DeviceId) -> StoreError {
    StoreError::Refused {
        reason: format!(
            "device {device} already has a valid certificate: renew with it \
             (simplereenroll) or revoke it first"
        ),
    }
}

/// Why a grant that could not be spent was refused.
pub(crate) fn grant_refusal(grant: &crate::identity::EnrollmentGrant) -> StoreError {
    use crate::identity::EnrollmentGrant as G;
    StoreError::Refused {
        reason: match grant {
            G::Token { .. } => "the bootstrap token is expired, revoked or used up",
            G::Claim { .. } => "the claim certificate is revoked, expired or used up",
            G::Approval => "the enrollment request is not approved",
            G::Renewal { .. } => {
                "the certificate presented for renewal is revoked, expired or not this device's"
            }
        }
        .to_owned(),
    }
}

/// The audit record's `after` for an issued device certificate.
pub(crate) fn issue_audit_json(
    c: &Certificate,
    method: EnrollmentMethod,
    superseded: Option<&str>,
) -> serde_json::Value {
    let mut after = cert_audit_json(c);
    after["enrolled_via"] = json!(method.as_str());
    after["superseded"] = json!(superseded);
    after
}

pub(crate) fn cert_audit_json(c: &Certificate) -> serde_json::Value {
    json!({
        "serial": c.serial, "kind": c.kind.as_str(), "subject": c.subject,
        "fingerprint": c.fingerprint, "not_after": c.not_after, "revoked_at": c.revoked_at,
        "revocation_reason": c.revocation_reason.map(|r| r.as_str()),
    })
}

pub(crate) const BOOTSTRAP_COLUMNS: &str = "id, tenant, device_pattern, max_uses, uses, \
     expires_at, created_by, created_at, revoked_at, certificate_validity_ms";
pub(crate) type BootstrapRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn bootstrap_from_row(row: BootstrapRow) -> StoreResult<BootstrapToken> {
    let (
        id,
        tenant,
        device_pattern,
        max_uses,
        uses,
        expires_at,
        created_by,
        created_at,
        revoked_at,
        certificate_validity_ms,
    ) = row;
    Ok(BootstrapToken {
        tenant: TenantId::new(tenant)?,
        id,
        device_pattern,
        max_uses,
        uses,
        expires_at,
        created_by,
        created_at,
        revoked_at,
        certificate_validity_ms,
    })
}

pub(crate) fn bootstrap_audit_json(t: &BootstrapToken) -> serde_json::Value {
    json!({
        "id": t.id, "device_pattern": t.device_pattern, "max_uses": t.max_uses, "uses": t.uses,
        "expires_at": t.expires_at, "revoked_at": t.revoked_at,
        "certificate_validity_ms": t.certificate_validity_ms,
    })
}

pub(crate) const CLAIM_SELECT: &str = "SELECT c.serial, c.tenant, c.name, c.max_uses, c.uses, \
     c.created_by, c.created_at, k.not_after, k.revoked_at FROM claims c \
     JOIN certificates k ON k.serial = c.serial";
pub(crate) type ClaimRow = (
    String,
    String,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
);

pub(crate) fn claim_from_row(row: ClaimRow) -> StoreResult<Claim> {
    let (serial, tenant, name, max_uses, uses, created_by, created_at, not_after, revoked_at) = row;
    Ok(Claim {
        tenant: TenantId::new(tenant)?,
        serial,
        name,
        max_uses,
        uses,
        created_by,
        created_at,
        not_after,
        revoked_at,
    })
}

pub(crate) const REQUEST_COLUMNS: &str = "tenant, device_id, status, public_key_sha256, csr_pem, \
     source, created_at, updated_at, decided_by, serial";
pub(crate) type RequestRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

pub(crate) fn request_from_row(row: RequestRow) -> StoreResult<EnrollmentRequest> {
    let (tenant, device, status, key, csr, source, created_at, updated_at, decided_by, serial) =
        row;
    Ok(EnrollmentRequest {
        status: RequestStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(format!("request {device}"), "unknown status"))?,
        tenant: TenantId::new(tenant)?,
        device_id: DeviceId::new(device)?,
        public_key_sha256: key,
        csr_pem: csr,
        source,
        created_at,
        updated_at,
        decided_by,
        serial,
    })
}

pub(crate) fn request_audit_json(r: &EnrollmentRequest) -> serde_json::Value {
    json!({
        "device_id": r.device_id, "status": r.status.as_str(),
        "public_key_sha256": r.public_key_sha256, "source": r.source, "serial": r.serial,
    })
}

/// Stamps the shared `IdentityStore` implementation onto a backend (after [`impl_store!`]).
macro_rules! impl_identity_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// One device, through a transaction or the pool.
            async fn fetch_device<'e, E: sqlx::Executor<'e, Database = $db>>(
                executor: E,
                tenant: &garrison_core::TenantId,
                id: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Option<$crate::identity::Device>> {
                let row: Option<$crate::sql_identity::DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE tenant = $1 AND id = $2",
                    $crate::sql_identity::DEVICE_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(executor)
                .await?;
                row.map($crate::sql_identity::device_from_row).transpose()
            }

            async fn device_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                id: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Option<$crate::identity::Device>> {
                Self::fetch_device(&mut **tx, tenant, id).await
            }

            /// One certificate of a tenant, through a transaction or the pool.
            async fn fetch_cert<'e, E: sqlx::Executor<'e, Database = $db>>(
                executor: E,
                tenant: &garrison_core::TenantId,
                serial: &str,
            ) -> $crate::StoreResult<Option<$crate::identity::Certificate>> {
                let row: Option<$crate::sql_identity::CertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM certificates WHERE tenant = $1 AND serial = $2",
                    $crate::sql_identity::CERT_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(serial)
                .fetch_optional(executor)
                .await?;
                row.map($crate::sql_identity::cert_from_row).transpose()
            }

            async fn cert_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                serial: &str,
            ) -> $crate::StoreResult<$crate::identity::Certificate> {
                Self::fetch_cert(&mut **tx, tenant, serial)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound {
                        what: format!("certificate {serial:?}"),
                    })
            }

            /// A device's enrollment request, through a transaction or the pool.
            async fn fetch_request<'e, E: sqlx::Executor<'e, Database = $db>>(
                executor: E,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Option<$crate::identity::EnrollmentRequest>> {
                let row: Option<$crate::sql_identity::RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM enrollment_requests WHERE tenant = $1 AND device_id = $2",
                    $crate::sql_identity::REQUEST_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(device.as_str())
                .fetch_optional(executor)
                .await?;
                row.map($crate::sql_identity::request_from_row).transpose()
            }

            async fn request_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Option<$crate::identity::EnrollmentRequest>> {
                Self::fetch_request(&mut **tx, tenant, device).await
            }

            async fn consume_grant(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                grant: &$crate::identity::EnrollmentGrant,
                new_serial: &str,
                now: i64,
                deferred_tokens: Option<&std::collections::HashMap<String, i64>>,
            ) -> $crate::StoreResult<()> {
                use $crate::identity::EnrollmentGrant as G;
                if !matches!(grant, G::Renewal { .. }) {
                    // A second identity for a device that still has a good one would let a
                    // token holder take a device's name over: make them renew or revoke.
                    let live: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM certificates WHERE tenant = $1 AND subject = $2 \
                         AND kind = 'device' AND revoked_at IS NULL AND not_after > $3",
                    )
                    .bind(tenant.as_str())
                    .bind(device.as_str())
                    .bind(now)
                    .fetch_one(&mut **tx)
                    .await?;
                    if live > 0 {
                        return Err($crate::sql_identity::live_identity_refusal(device));
                    }
                }
                let affected = match grant {
                    // In a batch, uses are counted in memory and written once per token at the
                    // end (writers are serialised, so nothing else can spend them meanwhile).
                    G::Token { id } if deferred_tokens.is_some() => {
                        let pending = deferred_tokens
                            .and_then(|m| m.get(id).copied())
                            .unwrap_or(0);
                        let usable: Option<i64> = sqlx::query_scalar(
                            "SELECT uses FROM bootstrap_tokens WHERE id = $1 AND tenant = $2 \
                             AND revoked_at IS NULL AND expires_at > $3 AND uses + $4 < max_uses",
                        )
                        .bind(id)
                        .bind(tenant.as_str())
                        .bind(now)
                        .bind(pending)
                        .fetch_optional(&mut **tx)
                        .await?;
                        u64::from(usable.is_some())
                    }
                    G::Token { id } => sqlx::query(
                        "UPDATE bootstrap_tokens SET uses = uses + 1 WHERE id = $1 AND tenant = $2 \
                         AND revoked_at IS NULL AND expires_at > $3 AND uses < max_uses",
                    )
                    .bind(id)
                    .bind(tenant.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                    G::Claim { serial } => sqlx::query(
                        "UPDATE claims SET uses = uses + 1 WHERE serial = $1 AND tenant = $2 \
                         AND uses < max_uses AND EXISTS (SELECT 1 FROM certificates k \
                         WHERE k.serial = $1 AND k.revoked_at IS NULL AND k.not_after > $3)",
                    )
                    .bind(serial)
                    .bind(tenant.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                    G::Approval => sqlx::query(
                        "UPDATE enrollment_requests SET status = 'issued', serial = $1, \
                         updated_at = $2 WHERE tenant = $3 AND device_id = $4 \
                         AND status = 'approved'",
                    )
                    .bind(new_serial)
                    .bind(now)
                    .bind(tenant.as_str())
                    .bind(device.as_str())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                    G::Renewal { serial } => sqlx::query(
                        "SELECT serial FROM certificates WHERE serial = $1 AND tenant = $2 \
                         AND kind = 'device' AND subject = $3 AND revoked_at IS NULL \
                         AND not_after > $4",
                    )
                    .bind(serial)
                    .bind(tenant.as_str())
                    .bind(device.as_str())
                    .bind(now)
                    .fetch_all(&mut **tx)
                    .await?
                    .len() as u64,
                };
                if affected == 1 {
                    Ok(())
                } else {
                    Err($crate::sql_identity::grant_refusal(grant))
                }
            }

            async fn issue_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                grant: $crate::identity::EnrollmentGrant,
                cert: $crate::identity::NewCertificate,
                audit: garrison_core::audit::AuditRecord,
                deferred_tokens: Option<&std::collections::HashMap<String, i64>>,
            ) -> $crate::StoreResult<$crate::identity::Issued> {
                let now = garrison_core::now_ms();
                Self::consume_grant(tx, tenant, device, &grant, &cert.serial, now, deferred_tokens)
                    .await?;
                // A renewal that answers a rotation request retires the certificate it renewed.
                let mut superseded = None;
                if let $crate::identity::EnrollmentGrant::Renewal { serial } = &grant {
                    let rotating = Self::device_in(tx, tenant, device)
                        .await?
                        .is_some_and(|d| d.rotation_requested_at.is_some());
                    if rotating {
                        sqlx::query(
                            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
                             WHERE tenant = $3 AND serial = $4 AND revoked_at IS NULL",
                        )
                        .bind(now)
                        .bind(garrison_core::device::RevocationReason::Superseded.as_str())
                        .bind(tenant.as_str())
                        .bind(serial)
                        .execute(&mut **tx)
                        .await?;
                        superseded = Some(serial.clone());
                    }
                }
                sqlx::query(
                    "INSERT INTO devices (tenant, id, quarantined, enrolled_via, current_serial, \
                     created_at, updated_at) VALUES ($1, $2, FALSE, $3, $4, $5, $5) \
                     ON CONFLICT (tenant, id) DO UPDATE SET \
                     current_serial = excluded.current_serial, updated_at = excluded.updated_at, \
                     rotation_requested_at = NULL",
                )
                .bind(tenant.as_str())
                .bind(device.as_str())
                .bind(grant.method().as_str())
                .bind(&cert.serial)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO certificates (serial, tenant, kind, subject, fingerprint, pem, \
                     not_before, not_after, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&cert.serial)
                .bind(tenant.as_str())
                .bind(cert.kind.as_str())
                .bind(&cert.subject)
                .bind(&cert.fingerprint)
                .bind(&cert.pem)
                .bind(cert.not_before)
                .bind(cert.not_after)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(|e| {
                    $crate::error::conflict_or(e, || format!("certificate {}", cert.serial))
                })?;
                let stored = Self::cert_in(tx, tenant, &cert.serial).await?;
                let after = $crate::sql_identity::issue_audit_json(
                    &stored,
                    grant.method(),
                    superseded.as_deref(),
                );
                Self::append_audit(tx, audit.after(after)).await?;
                Ok($crate::identity::Issued {
                    certificate: stored,
                    superseded,
                })
            }
        }

        impl $store {
            /// One issuance of a batch in a savepoint of its own: a refused grant undoes only
            /// itself. A token use is counted in `spent` (written once per batch).
            async fn issue_alone_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                item: $crate::identity::IssueRequest,
                spent: &mut std::collections::HashMap<String, i64>,
            ) -> $crate::StoreResult<$crate::StoreResult<$crate::identity::Issued>> {
                let token = match &item.grant {
                    $crate::identity::EnrollmentGrant::Token { id } => Some(id.clone()),
                    _ => None,
                };
                let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
                match Self::issue_in(
                    &mut savepoint,
                    &item.tenant,
                    &item.device,
                    item.grant,
                    item.cert,
                    item.audit,
                    Some(spent),
                )
                .await
                {
                    Ok(issued) => {
                        savepoint.commit().await?;
                        if let Some(id) = token {
                            *spent.entry(id).or_default() += 1;
                        }
                        Ok(Ok(issued))
                    }
                    Err(e) => {
                        savepoint.rollback().await?;
                        Ok(Err(e))
                    }
                }
            }

            /// Bootstrap-token issuances of one tenant, recorded together: one query for the
            /// devices that still hold a valid certificate, one for the tokens, then multi-row
            /// inserts of devices, certificates and audit entries — a few statements per
            /// batch instead of several per issuance (each a round trip, and on PostgreSQL
            /// made while holding the audit chain's lock). Decided exactly as `issue_in`
            /// would one by one, in order. If a statement fails (a serial already taken),
            /// the attempt is undone and the issuances are recorded one by one instead.
            async fn issue_tokens_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                items: Vec<(usize, $crate::identity::IssueRequest)>,
                spent: &mut std::collections::HashMap<String, i64>,
            ) -> $crate::StoreResult<Vec<(usize, $crate::StoreResult<$crate::identity::Issued>)>>
            {
                if items.is_empty() {
                    return Ok(Vec::new());
                }
                let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
                match Self::issue_tokens_together(&mut savepoint, &items, spent).await {
                    Ok((outcomes, newly_spent)) => {
                        savepoint.commit().await?;
                        for (id, uses) in newly_spent {
                            *spent.entry(id).or_default() += uses;
                        }
                        Ok(outcomes)
                    }
                    Err(e) => {
                        savepoint.rollback().await?;
                        tracing::debug!(error = %e, "Recording issuances together failed; one by one instead");
                        let mut outcomes = Vec::with_capacity(items.len());
                        for (i, item) in items {
                            outcomes.push((i, Self::issue_alone_in(tx, item, spent).await?));
                        }
                        Ok(outcomes)
                    }
                }
            }

            async fn issue_tokens_together(
                tx: &mut sqlx::Transaction<'_, $db>,
                items: &[(usize, $crate::identity::IssueRequest)],
                spent: &std::collections::HashMap<String, i64>,
            ) -> $crate::StoreResult<(
                Vec<(usize, $crate::StoreResult<$crate::identity::Issued>)>,
                std::collections::HashMap<String, i64>,
            )> {
                let now = garrison_core::now_ms();
                let Some((_, first)) = items.first() else {
                    return Ok((Vec::new(), std::collections::HashMap::new()));
                };
                let tenant = first.tenant.as_str();
                let mut live = sqlx::QueryBuilder::<$db>::new(
                    "SELECT DISTINCT subject FROM certificates WHERE kind = 'device' \
                     AND revoked_at IS NULL AND tenant = ",
                );
                live.push_bind(tenant).push(" AND not_after > ").push_bind(now).push(" AND subject IN (");
                let mut subjects = live.separated(", ");
                for (_, item) in items {
                    subjects.push_bind(item.device.as_str());
                }
                live.push(")");
                let live: std::collections::HashSet<String> = live
                    .build_query_scalar()
                    .persistent(false)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
                let mut tokens = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, uses, max_uses FROM bootstrap_tokens WHERE revoked_at IS NULL \
                     AND tenant = ",
                );
                tokens.push_bind(tenant).push(" AND expires_at > ").push_bind(now).push(" AND id IN (");
                let mut ids = tokens.separated(", ");
                for (_, item) in items {
                    if let $crate::identity::EnrollmentGrant::Token { id } = &item.grant {
                        ids.push_bind(id.as_str());
                    }
                }
                tokens.push(")");
                let tokens: std::collections::HashMap<String, (i64, i64)> = tokens
                    .build_query_as::<(String, i64, i64)>()
                    .persistent(false)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(|(id, uses, max)| (id, (uses, max)))
                    .collect();

                let mut outcomes = Vec::with_capacity(items.len());
                let mut accepted = Vec::with_capacity(items.len());
                let mut newly_spent: std::collections::HashMap<String, i64> =
                    std::collections::HashMap::new();
                let mut identified = std::collections::HashSet::new();
                for (i, item) in items {
                    let $crate::identity::EnrollmentGrant::Token { id } = &item.grant else {
                        return Err($crate::StoreError::corrupt(
                            "issuance batch",
                            "only bootstrap-token issuances are recorded together",
                        ));
                    };
                    // As `consume_grant`: no second identity (an earlier one in this batch
                    // counts), then a use left on the token.
                    if live.contains(item.device.as_str()) || identified.contains(item.device.as_str()) {
                        outcomes.push((*i, Err($crate::sql_identity::live_identity_refusal(&item.device))));
                        continue;
                    }
                    let used = spent.get(id).copied().unwrap_or(0)
                        + newly_spent.get(id).copied().unwrap_or(0);
                    if !tokens.get(id).is_some_and(|(uses, max)| uses + used < *max) {
                        outcomes.push((*i, Err($crate::sql_identity::grant_refusal(&item.grant))));
                        continue;
                    }
                    identified.insert(item.device.as_str());
                    *newly_spent.entry(id.clone()).or_default() += 1;
                    accepted.push((*i, item));
                }
                if accepted.is_empty() {
                    return Ok((outcomes, newly_spent));
                }

                let mut devices = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO devices (tenant, id, quarantined, enrolled_via, current_serial, \
                     created_at, updated_at) ",
                );
                devices.push_values(&accepted, |mut row, (_, item)| {
                    row.push_bind(item.tenant.as_str())
                        .push_bind(item.device.as_str())
                        .push_bind(false)
                        .push_bind(item.grant.method().as_str())
                        .push_bind(item.cert.serial.as_str())
                        .push_bind(now)
                        .push_bind(now);
                });
                devices.push(
                    " ON CONFLICT (tenant, id) DO UPDATE SET \
                     current_serial = excluded.current_serial, updated_at = excluded.updated_at, \
                     rotation_requested_at = NULL",
                );
                devices.build().persistent(false).execute(&mut **tx).await?;

                let mut certificates = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO certificates (serial, tenant, kind, subject, fingerprint, pem, \
                     not_before, not_after, issued_at) ",
                );
                certificates.push_values(&accepted, |mut row, (_, item)| {
                    let cert = &item.cert;
                    row.push_bind(cert.serial.as_str())
                        .push_bind(item.tenant.as_str())
                        .push_bind(cert.kind.as_str())
                        .push_bind(cert.subject.as_str())
                        .push_bind(cert.fingerprint.as_str())
                        .push_bind(cert.pem.as_str())
                        .push_bind(cert.not_before)
                        .push_bind(cert.not_after)
                        .push_bind(now);
                });
                certificates.push(" RETURNING ").push($crate::sql_identity::CERT_COLUMNS);
                let mut stored: std::collections::HashMap<String, $crate::identity::Certificate> =
                    std::collections::HashMap::with_capacity(accepted.len());
                // RETURNING's row order is unspecified: match rows to issuances by serial.
                for row in certificates
                    .build_query_as::<$crate::sql_identity::CertRow>()
                    .persistent(false)
                    .fetch_all(&mut **tx)
                    .await?
                {
                    let cert = $crate::sql_identity::cert_from_row(row)?;
                    stored.insert(cert.serial.clone(), cert);
                }

                let mut records = Vec::with_capacity(accepted.len());
                let mut issued = Vec::with_capacity(accepted.len());
                for (i, item) in accepted {
                    let certificate = stored.remove(&item.cert.serial).ok_or_else(|| {
                        $crate::StoreError::corrupt(
                            format!("certificate {}", item.cert.serial),
                            "not returned by its insert",
                        )
                    })?;
                    records.push(item.audit.clone().after($crate::sql_identity::issue_audit_json(
                        &certificate,
                        item.grant.method(),
                        None,
                    )));
                    issued.push((i, Ok($crate::identity::Issued { certificate, superseded: None })));
                }
                Self::append_audits(tx, records).await?;
                outcomes.extend(issued);
                Ok((outcomes, newly_spent))
            }
        }

        #[async_trait::async_trait]
        impl $crate::identity::IdentityStore for $store {
            async fn device_get(
                &self,
                tenant: &garrison_core::TenantId,
                id: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Option<$crate::identity::Device>> {
                Self::fetch_device(&self.pool, tenant, id).await
            }

            async fn devices_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::identity::Device>> {
                let rows: Vec<$crate::sql_identity::DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
                    $crate::sql_identity::DEVICE_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_identity::device_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |d| d.id.to_string()))
            }

            async fn identity_changes_since(
                &self,
                after: garrison_core::UnixMillis,
            ) -> $crate::StoreResult<$crate::identity::IdentityChanges> {
                let revoked: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT serial, subject, revoked_at FROM certificates \
                     WHERE revoked_at > $1 ORDER BY revoked_at LIMIT 10000",
                )
                .bind(after)
                .fetch_all(&self.pool)
                .await?;
                let devices: Vec<(String, bool, i64)> = sqlx::query_as(
                    "SELECT id, quarantined, updated_at FROM devices \
                     WHERE updated_at > $1 ORDER BY updated_at LIMIT 10000",
                )
                .bind(after)
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::identity::IdentityChanges {
                    revoked,
                    devices: devices
                        .into_iter()
                        .map(|(d, q, at)| Ok((garrison_core::DeviceId::new(d)?, q, at)))
                        .collect::<$crate::StoreResult<_>>()?,
                })
            }

            async fn devices_quarantined(
                &self,
            ) -> $crate::StoreResult<Vec<(garrison_core::TenantId, garrison_core::DeviceId)>> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT tenant, id FROM devices WHERE quarantined")
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter()
                    .map(|(t, d)| {
                        Ok((
                            garrison_core::TenantId::new(t)?,
                            garrison_core::DeviceId::new(d)?,
                        ))
                    })
                    .collect()
            }

            async fn device_set_quarantined(
                &self,
                tenant: &garrison_core::TenantId,
                id: &garrison_core::DeviceId,
                quarantined: bool,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::Device> {
                let mut tx = self.begin_write().await?;
                let before = Self::device_in(&mut tx, tenant, id).await?.ok_or_else(|| {
                    $crate::StoreError::NotFound {
                        what: format!("device {:?}", id.as_str()),
                    }
                })?;
                sqlx::query(
                    "UPDATE devices SET quarantined = $1, updated_at = $2 \
                     WHERE tenant = $3 AND id = $4",
                )
                .bind(quarantined)
                .bind(garrison_core::now_ms())
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                let after = Self::device_in(&mut tx, tenant, id).await?.ok_or_else(|| {
                    $crate::StoreError::NotFound {
                        what: format!("device {:?}", id.as_str()),
                    }
                })?;
                let audit = audit
                    .before(serde_json::json!({ "quarantined": before.quarantined }))
                    .after(serde_json::json!({ "quarantined": after.quarantined }));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn certificate_record_issue(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                grant: $crate::identity::EnrollmentGrant,
                cert: $crate::identity::NewCertificate,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::Issued> {
                let mut tx = self.begin_write().await?;
                let issued =
                    Self::issue_in(&mut tx, tenant, device, grant, cert, audit, None).await?;
                tx.commit().await?;
                Ok(issued)
            }

            async fn certificate_record_issue_batch(
                &self,
                batch: Vec<$crate::identity::IssueRequest>,
            ) -> $crate::StoreResult<Vec<$crate::StoreResult<$crate::identity::Issued>>> {
                let mut tx = self.begin_write().await?;
                let count = batch.len();
                let mut results: Vec<Option<$crate::StoreResult<$crate::identity::Issued>>> =
                    std::iter::repeat_with(|| None).take(count).collect();
                // Token uses spent in this batch, written once per token below: updating one
                // token row per issuance would leave hundreds of row versions on PostgreSQL.
                let mut spent: std::collections::HashMap<String, i64> =
                    std::collections::HashMap::new();
                // Bootstrap-token issuances (a fleet enrolling) are recorded together, tenant
                // by tenant, in a handful of statements for the whole batch; other grants one
                // by one. Those go first, so the together path sees their certificates.
                let mut together: std::collections::BTreeMap<
                    String,
                    Vec<(usize, $crate::identity::IssueRequest)>,
                > = std::collections::BTreeMap::new();
                for (i, item) in batch.into_iter().enumerate() {
                    if matches!(item.grant, $crate::identity::EnrollmentGrant::Token { .. }) {
                        together.entry(item.tenant.as_str().to_owned()).or_default().push((i, item));
                    } else {
                        results[i] = Some(Self::issue_alone_in(&mut tx, item, &mut spent).await?);
                    }
                }
                for (_, items) in together {
                    for (i, result) in Self::issue_tokens_in(&mut tx, items, &mut spent).await? {
                        results[i] = Some(result);
                    }
                }
                for (id, uses) in &spent {
                    sqlx::query("UPDATE bootstrap_tokens SET uses = uses + $1 WHERE id = $2")
                        .bind(uses)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                results
                    .into_iter()
                    .map(|r| {
                        r.ok_or_else(|| {
                            $crate::StoreError::corrupt("issuance batch", "an issuance got no result")
                        })
                    })
                    .collect()
            }

            async fn device_request_rotation(
                &self,
                tenant: &garrison_core::TenantId,
                id: &garrison_core::DeviceId,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::Device> {
                let mut tx = self.begin_write().await?;
                let affected = sqlx::query(
                    "UPDATE devices SET rotation_requested_at = $1, updated_at = $1 \
                     WHERE tenant = $2 AND id = $3",
                )
                .bind(garrison_core::now_ms())
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if affected == 0 {
                    return Err($crate::StoreError::NotFound {
                        what: format!("device {:?}", id.as_str()),
                    });
                }
                let device = Self::device_in(&mut tx, tenant, id).await?.ok_or_else(|| {
                    $crate::StoreError::NotFound {
                        what: format!("device {:?}", id.as_str()),
                    }
                })?;
                let audit = audit.after(serde_json::json!({
                    "rotation_requested_at": device.rotation_requested_at,
                    "current_serial": device.current_serial,
                }));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(device)
            }

            async fn certificate_get(
                &self,
                tenant: &garrison_core::TenantId,
                serial: &str,
            ) -> $crate::StoreResult<Option<$crate::identity::Certificate>> {
                Self::fetch_cert(&self.pool, tenant, serial).await
            }

            async fn certificate_by_serial(
                &self,
                serial: &str,
            ) -> $crate::StoreResult<Option<$crate::identity::Certificate>> {
                let row: Option<$crate::sql_identity::CertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM certificates WHERE serial = $1",
                    $crate::sql_identity::CERT_COLUMNS
                )))
                .bind(serial)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_identity::cert_from_row).transpose()
            }

            async fn certificates_list(
                &self,
                tenant: &garrison_core::TenantId,
                filter: &$crate::identity::CertificateFilter,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::identity::Certificate>> {
                let now = garrison_core::now_ms();
                let rows: Vec<$crate::sql_identity::CertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM certificates WHERE tenant = $1 AND serial > $2 \
                     AND ($3 IS NULL OR subject = $3) AND ($4 IS NULL OR kind = $4) \
                     AND ($5 IS NULL OR (revoked_at IS NULL AND not_after > $6 AND not_after < $5)) \
                     ORDER BY serial LIMIT $7",
                    $crate::sql_identity::CERT_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.subject.as_deref())
                .bind(filter.kind.map(|k| k.as_str()))
                .bind(filter.expiring_before)
                .bind(now)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_identity::cert_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |c| c.serial.clone()))
            }

            async fn certificate_revoke(
                &self,
                tenant: &garrison_core::TenantId,
                serial: &str,
                reason: garrison_core::device::RevocationReason,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::Certificate> {
                let mut tx = self.begin_write().await?;
                let before = Self::cert_in(&mut tx, tenant, serial).await?;
                if before.revoked_at.is_some() {
                    return Err($crate::StoreError::Refused {
                        reason: format!("certificate {serial} is already revoked"),
                    });
                }
                sqlx::query(
                    "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
                     WHERE tenant = $3 AND serial = $4",
                )
                .bind(garrison_core::now_ms())
                .bind(reason.as_str())
                .bind(tenant.as_str())
                .bind(serial)
                .execute(&mut *tx)
                .await?;
                let after = Self::cert_in(&mut tx, tenant, serial).await?;
                let audit = audit
                    .before($crate::sql_identity::cert_audit_json(&before))
                    .after($crate::sql_identity::cert_audit_json(&after));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn certificates_revoked_unexpired(
                &self,
                now: garrison_core::UnixMillis,
            ) -> $crate::StoreResult<Vec<$crate::identity::Certificate>> {
                let rows: Vec<$crate::sql_identity::CertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM certificates WHERE revoked_at IS NOT NULL AND not_after > $1 \
                     ORDER BY serial",
                    $crate::sql_identity::CERT_COLUMNS
                )))
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map($crate::sql_identity::cert_from_row)
                    .collect()
            }

            async fn bootstrap_token_create(
                &self,
                new: $crate::identity::NewBootstrapToken,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::BootstrapToken> {
                let mut tx = self.begin_write().await?;
                let row: $crate::sql_identity::BootstrapRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO bootstrap_tokens (id, tenant, device_pattern, secret_hash, \
                     max_uses, uses, expires_at, created_by, created_at, certificate_validity_ms) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9) RETURNING {}",
                    $crate::sql_identity::BOOTSTRAP_COLUMNS
                )))
                .bind(&new.id)
                .bind(new.tenant.as_str())
                .bind(&new.device_pattern)
                .bind(&new.secret_hash)
                .bind(new.max_uses)
                .bind(new.expires_at)
                .bind(new.created_by.as_str())
                .bind(garrison_core::now_ms())
                .bind(new.certificate_validity_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| $crate::error::conflict_or(e, || format!("bootstrap token {}", new.id)))?;
                let token = $crate::sql_identity::bootstrap_from_row(row)?;
                let audit = audit.after($crate::sql_identity::bootstrap_audit_json(&token));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(token)
            }

            async fn bootstrap_token_auth(
                &self,
                id: &str,
            ) -> $crate::StoreResult<Option<($crate::identity::BootstrapToken, String)>> {
                let row: Option<(String, String, String, i64, i64, i64, String, i64, Option<i64>, Option<i64>, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {}, secret_hash FROM bootstrap_tokens WHERE id = $1",
                        $crate::sql_identity::BOOTSTRAP_COLUMNS
                    )))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(a, b, c, d, e, f, g, h, i, j, hash)| {
                    Ok((
                        $crate::sql_identity::bootstrap_from_row((a, b, c, d, e, f, g, h, i, j))?,
                        hash,
                    ))
                })
                .transpose()
            }

            async fn bootstrap_tokens_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::identity::BootstrapToken>> {
                let rows: Vec<$crate::sql_identity::BootstrapRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM bootstrap_tokens WHERE tenant = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3",
                    $crate::sql_identity::BOOTSTRAP_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or("\u{10ffff}"))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_identity::bootstrap_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |t| t.id.clone()))
            }

            async fn bootstrap_token_revoke(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::BootstrapToken> {
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::sql_identity::BootstrapRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE bootstrap_tokens SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE tenant = $2 AND id = $3 RETURNING {}",
                    $crate::sql_identity::BOOTSTRAP_COLUMNS
                )))
                .bind(garrison_core::now_ms())
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let token = match row {
                    Some(row) => $crate::sql_identity::bootstrap_from_row(row)?,
                    None => {
                        return Err($crate::StoreError::NotFound {
                            what: format!("bootstrap token {id:?}"),
                        });
                    }
                };
                let audit = audit.after($crate::sql_identity::bootstrap_audit_json(&token));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(token)
            }

            async fn claim_create(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
                max_uses: i64,
                created_by: &garrison_core::Username,
                cert: $crate::identity::NewCertificate,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::Claim> {
                let mut tx = self.begin_write().await?;
                let now = garrison_core::now_ms();
                sqlx::query(
                    "INSERT INTO certificates (serial, tenant, kind, subject, fingerprint, pem, \
                     not_before, not_after, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&cert.serial)
                .bind(tenant.as_str())
                .bind(cert.kind.as_str())
                .bind(&cert.subject)
                .bind(&cert.fingerprint)
                .bind(&cert.pem)
                .bind(cert.not_before)
                .bind(cert.not_after)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO claims (serial, tenant, name, max_uses, uses, created_by, \
                     created_at) VALUES ($1, $2, $3, $4, 0, $5, $6)",
                )
                .bind(&cert.serial)
                .bind(tenant.as_str())
                .bind(name)
                .bind(max_uses)
                .bind(created_by.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::error::conflict_or(e, || format!("claim {name:?}")))?;
                let row: $crate::sql_identity::ClaimRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE c.serial = $1",
                    $crate::sql_identity::CLAIM_SELECT
                )))
                .bind(&cert.serial)
                .fetch_one(&mut *tx)
                .await?;
                let claim = $crate::sql_identity::claim_from_row(row)?;
                let audit = audit.after(serde_json::json!({
                    "name": claim.name, "serial": claim.serial, "max_uses": claim.max_uses,
                    "not_after": claim.not_after,
                }));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(claim)
            }

            async fn claim_get(
                &self,
                serial: &str,
            ) -> $crate::StoreResult<Option<$crate::identity::Claim>> {
                let row: Option<$crate::sql_identity::ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE c.serial = $1",
                    $crate::sql_identity::CLAIM_SELECT
                )))
                .bind(serial)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_identity::claim_from_row).transpose()
            }

            async fn claims_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::identity::Claim>> {
                let rows: Vec<$crate::sql_identity::ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE c.tenant = $1 AND c.name > $2 ORDER BY c.name LIMIT $3",
                    $crate::sql_identity::CLAIM_SELECT
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_identity::claim_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |c| c.name.clone()))
            }

            async fn enrollment_request_submit(
                &self,
                request: $crate::identity::SubmittedRequest,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::EnrollmentRequest> {
                use $crate::identity::RequestStatus as S;
                let mut tx = self.begin_write().await?;
                let now = garrison_core::now_ms();
                let existing = Self::request_in(&mut tx, &request.tenant, &request.device_id).await?;
                let write = match &existing {
                    None => true,
                    Some(r) => match r.status {
                        // Same key re-asking changes nothing worth an audit entry.
                        S::Pending => r.public_key_sha256.as_deref() != Some(&request.public_key_sha256),
                        S::Issued => true,
                        S::Approved | S::Rejected => false,
                    },
                };
                if !write {
                    tx.commit().await?;
                    return existing.ok_or_else(|| $crate::StoreError::NotFound {
                        what: "enrollment request".into(),
                    });
                }
                sqlx::query(
                    "INSERT INTO enrollment_requests (tenant, device_id, status, public_key_sha256, \
                     csr_pem, source, created_at, updated_at) \
                     VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6) \
                     ON CONFLICT (tenant, device_id) DO UPDATE SET status = 'pending', \
                     public_key_sha256 = excluded.public_key_sha256, csr_pem = excluded.csr_pem, \
                     source = excluded.source, updated_at = excluded.updated_at, \
                     decided_by = NULL, serial = NULL",
                )
                .bind(request.tenant.as_str())
                .bind(request.device_id.as_str())
                .bind(&request.public_key_sha256)
                .bind(&request.csr_pem)
                .bind(&request.source)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let stored = Self::request_in(&mut tx, &request.tenant, &request.device_id)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound {
                        what: "enrollment request".into(),
                    })?;
                let mut audit = audit.after($crate::sql_identity::request_audit_json(&stored));
                if let Some(before) = &existing {
                    audit = audit.before($crate::sql_identity::request_audit_json(before));
                }
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn enrollment_request_get(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Option<$crate::identity::EnrollmentRequest>> {
                Self::fetch_request(&self.pool, tenant, device).await
            }

            async fn enrollment_requests_list(
                &self,
                tenant: &garrison_core::TenantId,
                status: Option<$crate::identity::RequestStatus>,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::identity::EnrollmentRequest>> {
                let rows: Vec<$crate::sql_identity::RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM enrollment_requests WHERE tenant = $1 AND device_id > $2 \
                     AND ($3 IS NULL OR status = $3) ORDER BY device_id LIMIT $4",
                    $crate::sql_identity::REQUEST_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(status.map(|s| s.as_str()))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_identity::request_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |r| r.device_id.to_string()))
            }

            async fn enrollment_requests_count(
                &self,
                tenant: &garrison_core::TenantId,
                status: $crate::identity::RequestStatus,
            ) -> $crate::StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM enrollment_requests WHERE tenant = $1 AND status = $2",
                )
                .bind(tenant.as_str())
                .bind(status.as_str())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn enrollment_request_decide(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                approve: bool,
                decided_by: &garrison_core::Username,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::EnrollmentRequest> {
                let mut tx = self.begin_write().await?;
                let before = Self::request_in(&mut tx, tenant, device).await?.ok_or_else(|| {
                    $crate::StoreError::NotFound {
                        what: format!("enrollment request for {:?}", device.as_str()),
                    }
                })?;
                if before.status != $crate::identity::RequestStatus::Pending {
                    return Err($crate::StoreError::Refused {
                        reason: format!(
                            "the request for {device} is {}, not pending",
                            before.status.as_str()
                        ),
                    });
                }
                sqlx::query(
                    "UPDATE enrollment_requests SET status = $1, decided_by = $2, updated_at = $3 \
                     WHERE tenant = $4 AND device_id = $5",
                )
                .bind(if approve { "approved" } else { "rejected" })
                .bind(decided_by.as_str())
                .bind(garrison_core::now_ms())
                .bind(tenant.as_str())
                .bind(device.as_str())
                .execute(&mut *tx)
                .await?;
                let after = Self::request_in(&mut tx, tenant, device).await?.ok_or_else(|| {
                    $crate::StoreError::NotFound {
                        what: "enrollment request".into(),
                    }
                })?;
                let audit = audit
                    .before($crate::sql_identity::request_audit_json(&before))
                    .after($crate::sql_identity::request_audit_json(&after));
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn enrollment_preauthorize(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                public_key_sha256: Option<String>,
                decided_by: &garrison_core::Username,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::identity::EnrollmentRequest> {
                let mut tx = self.begin_write().await?;
                let now = garrison_core::now_ms();
                let before = Self::request_in(&mut tx, tenant, device).await?;
                if before.as_ref().is_some_and(|r| {
                    r.status == $crate::identity::RequestStatus::Pending
                        && public_key_sha256.is_some()
                        && r.public_key_sha256 != public_key_sha256
                }) {
                    return Err($crate::StoreError::Refused {
                        reason: format!(
                            "a pending request for {device} carries a different public key; \
                             inspect it and approve or reject it instead"
                        ),
                    });
                }
                sqlx::query(
                    "INSERT INTO enrollment_requests (tenant, device_id, status, public_key_sha256, \
                     created_at, updated_at, decided_by) VALUES ($1, $2, 'approved', $3, $4, $4, $5) \
                     ON CONFLICT (tenant, device_id) DO UPDATE SET status = 'approved', \
                     public_key_sha256 = COALESCE(excluded.public_key_sha256, \
                     enrollment_requests.public_key_sha256), \
                     updated_at = excluded.updated_at, decided_by = excluded.decided_by, serial = NULL",
                )
                .bind(tenant.as_str())
                .bind(device.as_str())
                .bind(&public_key_sha256)
                .bind(now)
                .bind(decided_by.as_str())
                .execute(&mut *tx)
                .await?;
                let after = Self::request_in(&mut tx, tenant, device).await?.ok_or_else(|| {
                    $crate::StoreError::NotFound {
                        what: "enrollment request".into(),
                    }
                })?;
                let mut audit = audit.after($crate::sql_identity::request_audit_json(&after));
                if let Some(before) = &before {
                    audit = audit.before($crate::sql_identity::request_audit_json(before));
                }
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(after)
            }
        }
    };
}

pub(crate) use impl_identity_store;
