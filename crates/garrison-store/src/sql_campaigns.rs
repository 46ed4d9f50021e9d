//! The SQL behind [`CampaignStore`](crate::campaigns::CampaignStore), written once for both
//! backends (see [`sql`](crate::sql) for why it is a macro).

use garrison_core::{DeviceId, TenantId};
use serde_json::json;

use crate::{
    StoreResult,
    campaigns::{CampaignDevice, CampaignRecord, MaintenanceWindowRecord},
    sql_inventory::from_json,
};

pub(crate) const CAMPAIGN_COLUMNS: &str = "id, tenant, number, name, release_id, target, spec, state, \
     phase, reason, devices, created_at, created_by, updated_at";

pub(crate) const CAMPAIGN_DEVICE_COLUMNS: &str =
    "device_id, phase, stage, attempts, next_attempt_at, updated_at, reason";

/// A campaign's devices are read only through a campaign of the caller's tenant.
pub(crate) const OF_TENANT: &str =
    "campaign_id IN (SELECT id FROM campaigns WHERE id = $1 AND tenant = $2)";

#[derive(sqlx::FromRow)]
pub(crate) struct CampaignRow {
    id: String,
    tenant: String,
    number: i64,
    name: String,
    release_id: String,
    target: String,
    spec: String,
    state: String,
    phase: i64,
    reason: Option<String>,
    devices: i64,
    created_at: i64,
    created_by: String,
    updated_at: i64,
}

pub(crate) fn campaign_from_row(row: CampaignRow) -> StoreResult<CampaignRecord> {
    let what = format!("campaign {}", row.id);
    Ok(CampaignRecord {
        tenant: TenantId::new(row.tenant)?,
        target: from_json(&what, &row.target)?,
        spec: from_json(&what, &row.spec)?,
        id: row.id,
        number: row.number,
        name: row.name,
        release_id: row.release_id,
        state: row.state,
        phase: row.phase,
        reason: row.reason,
        devices: row.devices,
        created_at: row.created_at,
        created_by: row.created_by,
        updated_at: row.updated_at,
    })
}

pub(crate) fn campaign_audit_json(c: &CampaignRecord) -> serde_json::Value {
    json!({
        "id": c.id, "number": c.number, "name": c.name, "release": c.release_id, "target": c.target,
        "spec": c.spec, "state": c.state, "devices": c.devices,
    })
}

pub(crate) type CampaignDeviceRow = (String, i64, String, i64, Option<i64>, i64, Option<String>);

pub(crate) fn campaign_device_from_row(row: CampaignDeviceRow) -> StoreResult<CampaignDevice> {
    let (device, phase, stage, attempts, next_attempt_at, updated_at, reason) = row;
    Ok(CampaignDevice {
        device: DeviceId::new(device)?,
        phase,
        stage,
        attempts,
        next_attempt_at,
        updated_at,
        reason,
    })
}

pub(crate) type WindowRow = (String, String, String, i64, String);

pub(crate) fn window_from_row(row: WindowRow) -> StoreResult<MaintenanceWindowRecord> {
    let (tenant, group, window, updated_at, updated_by) = row;
    Ok(MaintenanceWindowRecord {
        tenant: TenantId::new(tenant)?,
        window: from_json(&format!("maintenance window of {group}"), &window)?,
        group,
        updated_at,
        updated_by,
    })
}

/// Stamps `CampaignStore` onto a backend.
macro_rules! impl_campaign_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::campaigns::CampaignStore for $store {
            async fn campaign_create(
                &self,
                campaign: &$crate::campaigns::CampaignRecord,
                devices: &[$crate::campaigns::CampaignDevice],
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<i64> {
                let mut tx = self.begin_write().await?;
                // Writes are serialised (BEGIN IMMEDIATE, or the advisory lock), so the next
                // number cannot be taken twice.
                let (number,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM campaigns WHERE tenant = $1",
                )
                .bind(campaign.tenant.as_str())
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO campaigns (id, tenant, number, name, release_id, target, spec, \
                     state, phase, reason, devices, created_at, created_by, updated_at) \
                     VALUES ($1, $2, $14, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&campaign.id)
                .bind(campaign.tenant.as_str())
                .bind(&campaign.name)
                .bind(&campaign.release_id)
                .bind($crate::sql_inventory::to_json(&campaign.target)?)
                .bind($crate::sql_inventory::to_json(&campaign.spec)?)
                .bind(&campaign.state)
                .bind(campaign.phase)
                .bind(&campaign.reason)
                .bind(campaign.devices)
                .bind(campaign.created_at)
                .bind(&campaign.created_by)
                .bind(campaign.updated_at)
                .bind(number)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::error::conflict_or(e, || format!("campaign {}", campaign.id)))?;
                for chunk in devices.chunks($crate::sql_inventory::ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO campaign_devices (campaign_id, device_id, phase, stage, \
                         attempts, next_attempt_at, updated_at, reason) ",
                    );
                    insert.push_values(chunk, |mut row, d| {
                        row.push_bind(&campaign.id)
                            .push_bind(d.device.as_str())
                            .push_bind(d.phase)
                            .push_bind(&d.stage)
                            .push_bind(d.attempts)
                            .push_bind(d.next_attempt_at)
                            .push_bind(d.updated_at)
                            .push_bind(&d.reason);
                    });
                    // Row counts vary: keep these out of the prepared-statement cache.
                    insert.build().persistent(false).execute(&mut *tx).await?;
                }
                let mut stored = campaign.clone();
                stored.number = number;
                Self::append_audit(
                    &mut tx,
                    audit.after($crate::sql_campaigns::campaign_audit_json(&stored)),
                )
                .await?;
                tx.commit().await?;
                Ok(number)
            }

            async fn campaign_set_state(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
                change: &$crate::campaigns::CampaignStateChange<'_>,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let $crate::campaigns::CampaignStateChange { state, phase, reason, at } = *change;
                let mut tx = self.begin_write().await?;
                let before: Option<(String, i64)> = sqlx::query_as(
                    "SELECT state, phase FROM campaigns WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((before_state, before_phase)) = before else {
                    return Err($crate::StoreError::NotFound {
                        what: format!("campaign {id}"),
                    });
                };
                sqlx::query(
                    "UPDATE campaigns SET state = $3, phase = $4, reason = $5, updated_at = $6 \
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id)
                .bind(state)
                .bind(phase)
                .bind(reason)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                Self::append_audit(
                    &mut tx,
                    audit
                        .before(serde_json::json!({ "state": before_state, "phase": before_phase }))
                        .after(serde_json::json!({ "state": state, "phase": phase, "reason": reason })),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn campaign_get(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::campaigns::CampaignRecord>> {
                let row: Option<$crate::sql_campaigns::CampaignRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM campaigns WHERE tenant = $1 AND id = $2",
                    $crate::sql_campaigns::CAMPAIGN_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_campaigns::campaign_from_row).transpose()
            }

            async fn campaigns_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::campaigns::CampaignRecord>> {
                let rows: Vec<$crate::sql_campaigns::CampaignRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM campaigns WHERE tenant = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3",
                    $crate::sql_campaigns::CAMPAIGN_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or("\u{10ffff}"))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_campaigns::campaign_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |c| c.id.clone()))
            }

            async fn campaigns_in_states(
                &self,
                tenant: &garrison_core::TenantId,
                states: &[&str],
            ) -> $crate::StoreResult<Vec<$crate::campaigns::CampaignRecord>> {
                let mut out = Vec::new();
                for state in states {
                    let rows: Vec<$crate::sql_campaigns::CampaignRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {} FROM campaigns WHERE tenant = $1 AND state = $2 ORDER BY id",
                        $crate::sql_campaigns::CAMPAIGN_COLUMNS
                    )))
                    .bind(tenant.as_str())
                    .bind(*state)
                    .fetch_all(&self.pool)
                    .await?;
                    for row in rows {
                        out.push($crate::sql_campaigns::campaign_from_row(row)?);
                    }
                }
                out.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(out)
            }

            async fn campaign_devices(
                &self,
                tenant: &garrison_core::TenantId,
                campaign: &str,
            ) -> $crate::StoreResult<Vec<$crate::campaigns::CampaignDevice>> {
                let rows: Vec<$crate::sql_campaigns::CampaignDeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM campaign_devices WHERE {} ORDER BY device_id",
                    $crate::sql_campaigns::CAMPAIGN_DEVICE_COLUMNS,
                    $crate::sql_campaigns::OF_TENANT
                )))
                .bind(campaign)
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map($crate::sql_campaigns::campaign_device_from_row)
                    .collect()
            }

            async fn campaign_devices_page(
                &self,
                tenant: &garrison_core::TenantId,
                campaign: &str,
                stage: Option<&str>,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::campaigns::CampaignDevice>> {
                let rows: Vec<$crate::sql_campaigns::CampaignDeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM campaign_devices WHERE {} AND device_id > $3 \
                     AND ($4 IS NULL OR stage = $4) ORDER BY device_id LIMIT $5",
                    $crate::sql_campaigns::CAMPAIGN_DEVICE_COLUMNS,
                    $crate::sql_campaigns::OF_TENANT
                )))
                .bind(campaign)
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(stage)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_campaigns::campaign_device_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |d| d.device.to_string()))
            }

            async fn campaign_devices_record(
                &self,
                tenant: &garrison_core::TenantId,
                changes: &[$crate::campaigns::CampaignDeviceChange],
            ) -> $crate::StoreResult<()> {
                if changes.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_device_write().await?;
                for change in changes {
                    let d = &change.device;
                    let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE campaign_devices SET stage = $3, attempts = $4, \
                         next_attempt_at = $5, updated_at = $6, reason = $7 \
                         WHERE {} AND device_id = $8",
                        $crate::sql_campaigns::OF_TENANT
                    )))
                    .bind(&change.campaign)
                    .bind(tenant.as_str())
                    .bind(&d.stage)
                    .bind(d.attempts)
                    .bind(d.next_attempt_at)
                    .bind(d.updated_at)
                    .bind(&d.reason)
                    .bind(d.device.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if updated.rows_affected() != 1 {
                        return Err($crate::StoreError::NotFound {
                            what: format!("device {} in campaign {}", d.device, change.campaign),
                        });
                    }
                }
                for chunk in changes.chunks($crate::sql_inventory::ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO campaign_device_history (campaign_id, device_id, at, stage, \
                         reported, attempt, reason) ",
                    );
                    insert.push_values(chunk, |mut row, c| {
                        row.push_bind(&c.campaign)
                            .push_bind(c.device.device.as_str())
                            .push_bind(c.device.updated_at)
                            .push_bind(&c.device.stage)
                            .push_bind(&c.reported)
                            .push_bind(c.device.attempts)
                            .push_bind(&c.device.reason);
                    });
                    insert.build().persistent(false).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn campaign_device_history(
                &self,
                tenant: &garrison_core::TenantId,
                campaign: &str,
                device: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<Vec<$crate::campaigns::CampaignHistoryEntry>> {
                let rows: Vec<(i64, String, Option<String>, i64, Option<String>)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT at, stage, reported, attempt, reason FROM campaign_device_history \
                         WHERE {} AND device_id = $3 ORDER BY id",
                        $crate::sql_campaigns::OF_TENANT
                    )))
                    .bind(campaign)
                    .bind(tenant.as_str())
                    .bind(device.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(at, stage, reported, attempt, reason)| {
                        $crate::campaigns::CampaignHistoryEntry {
                            at,
                            stage,
                            reported,
                            attempt,
                            reason,
                        }
                    })
                    .collect())
            }

            async fn maintenance_window_put(
                &self,
                window: &$crate::campaigns::MaintenanceWindowRecord,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO maintenance_windows (tenant, group_name, window_spec, updated_at, \
                     updated_by) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant, group_name) DO UPDATE SET window_spec = excluded.window_spec, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .bind(window.tenant.as_str())
                .bind(&window.group)
                .bind($crate::sql_inventory::to_json(&window.window)?)
                .bind(window.updated_at)
                .bind(&window.updated_by)
                .execute(&mut *tx)
                .await?;
                Self::append_audit(
                    &mut tx,
                    audit.after(serde_json::json!({ "group": window.group, "window": window.window })),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn maintenance_window_delete(
                &self,
                tenant: &garrison_core::TenantId,
                group: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<bool> {
                self.delete_keyed(
                    "DELETE FROM maintenance_windows WHERE tenant = $1 AND group_name = $2",
                    tenant,
                    group,
                    audit.before(serde_json::json!({ "group": group })),
                )
                .await
            }

            async fn ddi_token_set(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                token_sha256: &str,
                at: garrison_core::UnixMillis,
                by: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO ddi_tokens (tenant, device_id, token_sha256, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, device_id) DO UPDATE SET \
                     token_sha256 = excluded.token_sha256, created_at = excluded.created_at, \
                     created_by = excluded.created_by",
                )
                .bind(tenant.as_str())
                .bind(device.as_str())
                .bind(token_sha256)
                .bind(at)
                .bind(by)
                .execute(&mut *tx)
                .await?;
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn ddi_token_device(
                &self,
                tenant: &garrison_core::TenantId,
                token_sha256: &str,
            ) -> $crate::StoreResult<Option<garrison_core::DeviceId>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT device_id FROM ddi_tokens WHERE tenant = $1 AND token_sha256 = $2",
                )
                .bind(tenant.as_str())
                .bind(token_sha256)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(d,)| garrison_core::DeviceId::new(d).map_err(Into::into))
                    .transpose()
            }

            async fn ddi_token_delete(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<bool> {
                self.delete_keyed(
                    "DELETE FROM ddi_tokens WHERE tenant = $1 AND device_id = $2",
                    tenant,
                    device.as_str(),
                    audit,
                )
                .await
            }

            async fn unpatchable_put(
                &self,
                entry: &$crate::campaigns::UnpatchableDevice,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO unpatchable_devices (tenant, device_id, reason, control, note, \
                     marked_at, marked_by) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (tenant, device_id) DO UPDATE SET reason = excluded.reason, \
                     control = excluded.control, note = excluded.note, \
                     marked_at = excluded.marked_at, marked_by = excluded.marked_by",
                )
                .bind(entry.tenant.as_str())
                .bind(entry.device.as_str())
                .bind(&entry.reason)
                .bind(&entry.control)
                .bind(&entry.note)
                .bind(entry.marked_at)
                .bind(&entry.marked_by)
                .execute(&mut *tx)
                .await?;
                Self::append_audit(
                    &mut tx,
                    audit.after(serde_json::json!({
                        "reason": entry.reason, "control": entry.control, "note": entry.note,
                    })),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn unpatchable_delete(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<bool> {
                self.delete_keyed(
                    "DELETE FROM unpatchable_devices WHERE tenant = $1 AND device_id = $2",
                    tenant,
                    device.as_str(),
                    audit,
                )
                .await
            }

            async fn unpatchable_list(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Vec<$crate::campaigns::UnpatchableDevice>> {
                let rows: Vec<(String, String, String, Option<String>, i64, String)> = sqlx::query_as(
                    "SELECT device_id, reason, control, note, marked_at, marked_by \
                     FROM unpatchable_devices WHERE tenant = $1 ORDER BY device_id",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(device, reason, control, note, marked_at, marked_by)| {
                        Ok($crate::campaigns::UnpatchableDevice {
                            tenant: tenant.clone(),
                            device: garrison_core::DeviceId::new(device)?,
                            reason,
                            control,
                            note,
                            marked_at,
                            marked_by,
                        })
                    })
                    .collect()
            }

            async fn maintenance_windows(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Vec<$crate::campaigns::MaintenanceWindowRecord>> {
                let rows: Vec<$crate::sql_campaigns::WindowRow> = sqlx::query_as(
                    "SELECT tenant, group_name, window_spec, updated_at, updated_by \
                     FROM maintenance_windows WHERE tenant = $1 ORDER BY group_name",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map($crate::sql_campaigns::window_from_row)
                    .collect()
            }
        }

        impl $store {
            /// Deletes the one row `sql` names by tenant and key, appending `audit` in the same
            /// transaction; whether there was one (nothing is audited when there was not).
            async fn delete_keyed(
                &self,
                sql: &'static str,
                tenant: &garrison_core::TenantId,
                key: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let deleted = sqlx::query(sql)
                    .bind(tenant.as_str())
                    .bind(key)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(false);
                }
                Self::append_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_campaign_store;
