//! The SQL behind [`MonitorStore`](crate::monitor::MonitorStore), written once for both
//! backends (see [`sql`](crate::sql) for why it is a macro).

use garrison_core::{DeviceId, Severity, TenantId};
use serde_json::json;

use crate::{
    StoreError, StoreResult,
    monitor::{Alert, AlertNote, AlertStatus, IntelSource, ResponseAction, ResponseStatus},
    sql_inventory::from_json,
};

pub(crate) const ALERT_COLUMNS: &str = "id, tenant, dedup_key, rule_id, title, severity, \
     device_id, status, techniques, tags, first_seen, last_seen, occurrences, evidence, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    id: String,
    tenant: String,
    dedup_key: String,
    rule_id: String,
    title: String,
    severity: String,
    device_id: Option<String>,
    status: String,
    techniques: String,
    tags: String,
    first_seen: i64,
    last_seen: i64,
    occurrences: i64,
    evidence: String,
    updated_at: i64,
}

pub(crate) fn alert_from_row(row: AlertRow) -> StoreResult<Alert> {
    let what = format!("alert {}", row.id);
    Ok(Alert {
        tenant: TenantId::new(row.tenant)?,
        device: row.device_id.map(DeviceId::new).transpose()?,
        severity: row
            .severity
            .parse::<Severity>()
            .map_err(|e| StoreError::corrupt(what.clone(), e))?,
        status: AlertStatus::parse(&row.status)
            .ok_or_else(|| StoreError::corrupt(what.clone(), "unknown status"))?,
        techniques: from_json(&what, &row.techniques)?,
        tags: from_json(&what, &row.tags)?,
        evidence: from_json(&what, &row.evidence)?,
        id: row.id,
        dedup_key: row.dedup_key,
        rule_id: row.rule_id,
        title: row.title,
        first_seen: row.first_seen,
        last_seen: row.last_seen,
        occurrences: row.occurrences,
        updated_at: row.updated_at,
    })
}

pub(crate) fn alert_audit_json(a: &Alert) -> serde_json::Value {
    json!({
        "id": a.id, "rule": a.rule_id, "title": a.title, "severity": a.severity.as_str(),
        "device": a.device.as_ref().map(DeviceId::as_str), "status": a.status.as_str(),
        "techniques": a.techniques,
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct NoteRow {
    id: String,
    alert_id: String,
    at: i64,
    author: String,
    from_status: Option<String>,
    to_status: Option<String>,
    note: String,
}

pub(crate) fn note_from_row(row: NoteRow) -> StoreResult<AlertNote> {
    let status = |s: Option<String>| -> StoreResult<Option<AlertStatus>> {
        s.map(|s| {
            AlertStatus::parse(&s)
                .ok_or_else(|| StoreError::corrupt(format!("alert note {}", row.id), "status"))
        })
        .transpose()
    };
    Ok(AlertNote {
        from_status: status(row.from_status.clone())?,
        to_status: status(row.to_status.clone())?,
        id: row.id,
        alert_id: row.alert_id,
        at: row.at,
        author: row.author,
        note: row.note,
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct IntelSourceRow {
    tenant: String,
    name: String,
    format: String,
    indicators: i64,
    skipped: i64,
    content: String,
    imported_at: i64,
    imported_by: String,
}

pub(crate) fn intel_source_from_row(row: IntelSourceRow) -> StoreResult<IntelSource> {
    Ok(IntelSource {
        tenant: TenantId::new(row.tenant)?,
        name: row.name,
        format: row.format,
        indicators: row.indicators,
        skipped: row.skipped,
        content: row.content,
        imported_at: row.imported_at,
        imported_by: row.imported_by,
    })
}

pub(crate) fn intel_source_audit_json(s: &IntelSource) -> serde_json::Value {
    json!({
        "name": s.name, "format": s.format, "indicators": s.indicators, "skipped": s.skipped,
        "bytes": s.content.len(),
    })
}

pub(crate) const RESPONSE_COLUMNS: &str = "id, tenant, alert_id, playbook, action, device_id, \
     params, status, detail, created_at, updated_at, decided_by, expires_at, enforced_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ResponseRow {
    id: String,
    tenant: String,
    alert_id: String,
    playbook: String,
    action: String,
    device_id: Option<String>,
    params: String,
    status: String,
    detail: String,
    created_at: i64,
    updated_at: i64,
    decided_by: Option<String>,
    expires_at: Option<i64>,
    enforced_at: Option<i64>,
}

pub(crate) fn response_from_row(row: ResponseRow) -> StoreResult<ResponseAction> {
    let what = format!("response action {}", row.id);
    Ok(ResponseAction {
        tenant: TenantId::new(row.tenant)?,
        device: row.device_id.map(DeviceId::new).transpose()?,
        params: from_json(&what, &row.params)?,
        status: ResponseStatus::parse(&row.status)
            .ok_or_else(|| StoreError::corrupt(what.clone(), "unknown status"))?,
        id: row.id,
        alert_id: row.alert_id,
        playbook: row.playbook,
        action: row.action,
        detail: row.detail,
        created_at: row.created_at,
        updated_at: row.updated_at,
        decided_by: row.decided_by,
        expires_at: row.expires_at,
        enforced_at: row.enforced_at,
    })
}

pub(crate) fn response_audit_json(r: &ResponseAction) -> serde_json::Value {
    json!({
        "id": r.id, "alert": r.alert_id, "playbook": r.playbook, "action": r.action,
        "device": r.device.as_ref().map(DeviceId::as_str), "status": r.status.as_str(),
        "params": r.params, "detail": r.detail, "expires_at": r.expires_at,
        "enforced_at": r.enforced_at,
    })
}

/// Stamps the shared `MonitorStore` implementation onto a backend (after
/// [`impl_store!`](crate::sql::impl_store)).
macro_rules! impl_monitor_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn alert_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<$crate::monitor::Alert> {
                let row: Option<$crate::sql_monitor::AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM alerts WHERE tenant = $1 AND id = $2",
                    $crate::sql_monitor::ALERT_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                row.map($crate::sql_monitor::alert_from_row)
                    .transpose()?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("alert {id:?}") })
            }

            async fn response_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<$crate::monitor::ResponseAction> {
                let row: Option<$crate::sql_monitor::ResponseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM response_actions WHERE tenant = $1 AND id = $2",
                    $crate::sql_monitor::RESPONSE_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                row.map($crate::sql_monitor::response_from_row)
                    .transpose()?
                    .ok_or_else(|| $crate::StoreError::NotFound {
                        what: format!("response action {id:?}"),
                    })
            }
        }

        #[async_trait::async_trait]
        impl $crate::monitor::MonitorStore for $store {
            async fn alerts_raise(
                &self,
                alerts: &[$crate::monitor::NewAlert],
            ) -> $crate::StoreResult<Vec<$crate::monitor::RaisedAlert>> {
                if alerts.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin_write().await?;
                let mut out = Vec::with_capacity(alerts.len());
                let now = garrison_core::now_ms();
                for new in alerts {
                    let evidence = $crate::sql_inventory::to_json(&new.evidence)?;
                    let open: Option<(String, String)> = sqlx::query_as(
                        "SELECT id, severity FROM alerts \
                         WHERE tenant = $1 AND dedup_key = $2 AND is_open",
                    )
                    .bind(new.tenant.as_str())
                    .bind(&new.dedup_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let (id, opened) = match open {
                        Some((id, severity)) => {
                            let stored = severity.parse::<garrison_core::Severity>().map_err(|e| {
                                $crate::StoreError::corrupt(format!("alert {id}"), e)
                            })?;
                            sqlx::query(
                                "UPDATE alerts SET occurrences = occurrences + 1, \
                                 last_seen = CASE WHEN last_seen > $2 THEN last_seen ELSE $2 END, \
                                 severity = $3, evidence = $4, updated_at = $5 WHERE id = $1",
                            )
                            .bind(&id)
                            .bind(new.at)
                            .bind(stored.max(new.severity).as_str())
                            .bind(&evidence)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            (id, false)
                        }
                        None => {
                            let id = uuid::Uuid::now_v7().to_string();
                            sqlx::query(
                                "INSERT INTO alerts (id, tenant, dedup_key, rule_id, title, \
                                 severity, device_id, status, is_open, techniques, tags, \
                                 first_seen, last_seen, occurrences, evidence, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'new', TRUE, $8, $9, \
                                 $10, $10, 1, $11, $12)",
                            )
                            .bind(&id)
                            .bind(new.tenant.as_str())
                            .bind(&new.dedup_key)
                            .bind(&new.rule_id)
                            .bind(&new.title)
                            .bind(new.severity.as_str())
                            .bind(new.device.as_ref().map(|d| d.as_str()))
                            .bind($crate::sql_inventory::to_json(&new.techniques)?)
                            .bind($crate::sql_inventory::to_json(&new.tags)?)
                            .bind(new.at)
                            .bind(&evidence)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            (id, true)
                        }
                    };
                    let alert = Self::alert_in(&mut tx, &new.tenant, &id).await?;
                    if opened {
                        let record = garrison_core::audit::AuditRecord::new(
                            &new.tenant,
                            garrison_core::audit::Actor::system("monitor"),
                            "alert.open",
                            format!("alert:{id}"),
                        )
                        .after($crate::sql_monitor::alert_audit_json(&alert));
                        Self::append_audit(&mut tx, record).await?;
                    }
                    out.push($crate::monitor::RaisedAlert { alert, opened });
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn alert_get(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::monitor::Alert>> {
                let row: Option<$crate::sql_monitor::AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM alerts WHERE tenant = $1 AND id = $2",
                    $crate::sql_monitor::ALERT_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_monitor::alert_from_row).transpose()
            }

            async fn alerts_list(
                &self,
                tenant: &garrison_core::TenantId,
                filter: &$crate::monitor::AlertFilter,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::monitor::Alert>> {
                let rows: Vec<$crate::sql_monitor::AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM alerts WHERE tenant = $1 AND ($2 = '' OR id < $2) \
                     AND ($3 IS NULL OR status = $3) AND ($4 = FALSE OR is_open) \
                     AND ($5 IS NULL OR device_id = $5) AND ($6 IS NULL OR rule_id = $6) \
                     AND severity IN ({}) ORDER BY id DESC LIMIT $7",
                    $crate::sql_monitor::ALERT_COLUMNS,
                    $crate::sql_inventory::severities_at_least(filter.min_severity),
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.status.map($crate::monitor::AlertStatus::as_str))
                .bind(filter.open)
                .bind(filter.device.as_ref().map(|d| d.as_str()))
                .bind(filter.rule.as_deref())
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_monitor::alert_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |a| a.id.clone()))
            }

            async fn alert_update(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
                status: Option<$crate::monitor::AlertStatus>,
                note: &str,
                author: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::monitor::Alert> {
                let mut tx = self.begin_write().await?;
                let before = Self::alert_in(&mut tx, tenant, id).await?;
                let now = garrison_core::now_ms();
                let change = status.filter(|s| *s != before.status);
                if let Some(to) = change {
                    if to.is_open() && !before.status.is_open() {
                        let other: Option<String> = sqlx::query_scalar(
                            "SELECT id FROM alerts WHERE tenant = $1 AND dedup_key = $2 AND is_open",
                        )
                        .bind(tenant.as_str())
                        .bind(&before.dedup_key)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(other) = other {
                            return Err($crate::StoreError::Refused {
                                reason: format!(
                                    "alert {other} is already open for the same rule and device; \
                                     work on that one"
                                ),
                            });
                        }
                    }
                    sqlx::query(
                        "UPDATE alerts SET status = $3, is_open = $4, updated_at = $5 \
                         WHERE tenant = $1 AND id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(to.as_str())
                    .bind(to.is_open())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                } else if note.is_empty() {
                    return Err($crate::StoreError::Refused {
                        reason: "nothing to change: give a new status or a note".into(),
                    });
                }
                sqlx::query(
                    "INSERT INTO alert_notes (id, tenant, alert_id, at, author, from_status, \
                     to_status, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(tenant.as_str())
                .bind(id)
                .bind(now)
                .bind(author)
                .bind(change.map(|_| before.status.as_str()))
                .bind(change.map($crate::monitor::AlertStatus::as_str))
                .bind(note)
                .execute(&mut *tx)
                .await?;
                let after = Self::alert_in(&mut tx, tenant, id).await?;
                Self::append_audit(
                    &mut tx,
                    audit
                        .before($crate::sql_monitor::alert_audit_json(&before))
                        .after($crate::sql_monitor::alert_audit_json(&after)),
                )
                .await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn alert_notes(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<Vec<$crate::monitor::AlertNote>> {
                let rows: Vec<$crate::sql_monitor::NoteRow> = sqlx::query_as(
                    "SELECT id, alert_id, at, author, from_status, to_status, note \
                     FROM alert_notes WHERE tenant = $1 AND alert_id = $2 ORDER BY id",
                )
                .bind(tenant.as_str())
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::sql_monitor::note_from_row).collect()
            }

            async fn response_create(
                &self,
                response: &$crate::monitor::NewResponse,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<Option<$crate::monitor::ResponseAction>> {
                let mut tx = self.begin_write().await?;
                let id = uuid::Uuid::now_v7().to_string();
                let now = garrison_core::now_ms();
                let inserted = sqlx::query(
                    "INSERT INTO response_actions (id, tenant, alert_id, playbook, action, \
                     device_id, params, status, detail, created_at, updated_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) \
                     ON CONFLICT (tenant, alert_id, playbook, action) DO NOTHING",
                )
                .bind(&id)
                .bind(response.tenant.as_str())
                .bind(&response.alert_id)
                .bind(&response.playbook)
                .bind(&response.action)
                .bind(response.device.as_ref().map(|d| d.as_str()))
                .bind($crate::sql_inventory::to_json(&response.params)?)
                .bind(response.status.as_str())
                .bind(&response.detail)
                .bind(now)
                .bind(response.expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(None);
                }
                let created = Self::response_in(&mut tx, &response.tenant, &id).await?;
                Self::append_audit(
                    &mut tx,
                    audit.after($crate::sql_monitor::response_audit_json(&created)),
                )
                .await?;
                tx.commit().await?;
                Ok(Some(created))
            }

            async fn response_update(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
                change: &$crate::monitor::ResponseChange,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::monitor::ResponseAction> {
                let mut tx = self.begin_write().await?;
                let before = Self::response_in(&mut tx, tenant, id).await?;
                if let Some(expected) = change.expect
                    && before.status != expected
                {
                    return Err($crate::StoreError::Refused {
                        reason: format!(
                            "response action {id} is {}, not {}",
                            before.status.as_str(),
                            expected.as_str()
                        ),
                    });
                }
                sqlx::query(
                    "UPDATE response_actions SET status = $3, detail = $4, \
                     decided_by = COALESCE($5, decided_by), \
                     enforced_at = COALESCE(enforced_at, $6), updated_at = $7, \
                     expires_at = COALESCE($8, expires_at) WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id)
                .bind(change.status.unwrap_or(before.status).as_str())
                .bind(change.detail.as_deref().unwrap_or(&before.detail))
                .bind(change.decided_by.as_deref())
                .bind(change.enforced_at)
                .bind(garrison_core::now_ms())
                .bind(change.expires_at)
                .execute(&mut *tx)
                .await?;
                let after = Self::response_in(&mut tx, tenant, id).await?;
                Self::append_audit(
                    &mut tx,
                    audit
                        .before($crate::sql_monitor::response_audit_json(&before))
                        .after($crate::sql_monitor::response_audit_json(&after)),
                )
                .await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn response_get(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::monitor::ResponseAction>> {
                let row: Option<$crate::sql_monitor::ResponseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM response_actions WHERE tenant = $1 AND id = $2",
                    $crate::sql_monitor::RESPONSE_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_monitor::response_from_row).transpose()
            }

            async fn responses_list(
                &self,
                tenant: &garrison_core::TenantId,
                filter: &$crate::monitor::ResponseFilter,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::monitor::ResponseAction>> {
                let rows: Vec<$crate::sql_monitor::ResponseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM response_actions WHERE tenant = $1 AND ($2 = '' OR id < $2) \
                     AND ($3 IS NULL OR alert_id = $3) AND ($4 IS NULL OR status = $4) \
                     AND ($5 IS NULL OR device_id = $5) ORDER BY id DESC LIMIT $6",
                    $crate::sql_monitor::RESPONSE_COLUMNS,
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.alert.as_deref())
                .bind(filter.status.map($crate::monitor::ResponseStatus::as_str))
                .bind(filter.device.as_ref().map(|d| d.as_str()))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_monitor::response_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |r| r.id.clone()))
            }

            async fn responses_expired(
                &self,
                tenant: &garrison_core::TenantId,
                now: garrison_core::UnixMillis,
            ) -> $crate::StoreResult<Vec<$crate::monitor::ResponseAction>> {
                let rows: Vec<$crate::sql_monitor::ResponseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM response_actions WHERE tenant = $1 AND status = 'executed' \
                     AND expires_at IS NOT NULL AND expires_at <= $2 ORDER BY expires_at LIMIT 500",
                    $crate::sql_monitor::RESPONSE_COLUMNS,
                )))
                .bind(tenant.as_str())
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::sql_monitor::response_from_row).collect()
            }

            async fn intel_source_put(
                &self,
                source: &$crate::monitor::IntelSource,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let before: Option<$crate::sql_monitor::IntelSourceRow> = sqlx::query_as(
                    "SELECT tenant, name, format, indicators, skipped, '' AS content, imported_at, \
                     imported_by FROM intel_sources WHERE tenant = $1 AND name = $2",
                )
                .bind(source.tenant.as_str())
                .bind(&source.name)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO intel_sources (tenant, name, format, indicators, skipped, content, \
                     imported_at, imported_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (tenant, name) DO UPDATE SET format = excluded.format, \
                     indicators = excluded.indicators, skipped = excluded.skipped, \
                     content = excluded.content, imported_at = excluded.imported_at, \
                     imported_by = excluded.imported_by",
                )
                .bind(source.tenant.as_str())
                .bind(&source.name)
                .bind(&source.format)
                .bind(source.indicators)
                .bind(source.skipped)
                .bind(&source.content)
                .bind(source.imported_at)
                .bind(&source.imported_by)
                .execute(&mut *tx)
                .await?;
                let mut audit = audit.after($crate::sql_monitor::intel_source_audit_json(source));
                if let Some(before) = before {
                    audit = audit.before($crate::sql_monitor::intel_source_audit_json(
                        &$crate::sql_monitor::intel_source_from_row(before)?,
                    ));
                }
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn intel_sources(
                &self,
                tenant: &garrison_core::TenantId,
                content: bool,
            ) -> $crate::StoreResult<Vec<$crate::monitor::IntelSource>> {
                let rows: Vec<$crate::sql_monitor::IntelSourceRow> = sqlx::query_as(
                    "SELECT tenant, name, format, indicators, skipped, \
                     CASE WHEN $2 THEN content ELSE '' END AS content, imported_at, imported_by \
                     FROM intel_sources WHERE tenant = $1 ORDER BY name",
                )
                .bind(tenant.as_str())
                .bind(content)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::sql_monitor::intel_source_from_row).collect()
            }

            async fn monitor_state_put(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
                state: &[u8],
                saved_at: garrison_core::UnixMillis,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO monitor_state (tenant, name, state, saved_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, name) DO UPDATE SET state = excluded.state, \
                     saved_at = excluded.saved_at WHERE monitor_state.saved_at <= excluded.saved_at",
                )
                .bind(tenant.as_str())
                .bind(name)
                .bind(state)
                .bind(saved_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn monitor_state_get(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
            ) -> $crate::StoreResult<Option<(Vec<u8>, garrison_core::UnixMillis)>> {
                Ok(sqlx::query_as(
                    "SELECT state, saved_at FROM monitor_state WHERE tenant = $1 AND name = $2",
                )
                .bind(tenant.as_str())
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn intel_source_delete(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let before: Option<$crate::sql_monitor::IntelSourceRow> = sqlx::query_as(
                    "SELECT tenant, name, format, indicators, skipped, '' AS content, imported_at, \
                     imported_by FROM intel_sources WHERE tenant = $1 AND name = $2",
                )
                .bind(tenant.as_str())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(before) = before else {
                    return Ok(false);
                };
                sqlx::query("DELETE FROM intel_sources WHERE tenant = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit(
                    &mut tx,
                    audit.before($crate::sql_monitor::intel_source_audit_json(
                        &$crate::sql_monitor::intel_source_from_row(before)?,
                    )),
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_monitor_store;
