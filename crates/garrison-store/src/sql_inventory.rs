//! The inventory SQL both backends share (see [`crate::inventory`] for what each method means).
//!
//! Device-originated batches open their transaction with `begin_device_write`: on SQLite that
//! is the same `BEGIN IMMEDIATE` as every write; on PostgreSQL it skips the audit chain's
//! advisory lock, since nothing is appended to the chain and row locks suffice.

use std::collections::BTreeMap;

use garrison_contract::{Inventory, Sbom, Telemetry};
use garrison_core::{DeviceId, Impact, Severity, TenantId};
use serde_json::json;

use crate::{
    StoreError, StoreResult,
    inventory::{
        DeviceSummary, DriftEvent, FactChange, Finding, FindingStatus, FirmwarePolicy, Group,
        InventorySnapshot, NewDeviceEvent, NewDrift, Observation, PostureRun, Presence,
        SightingKind, StoredDeviceEvent, Suppression, UnmanagedEntry,
    },
};

/// An inventory as stored in `facts`: everything but the SBOM, which has its own column.
pub(crate) fn facts_json(inventory: &Inventory) -> StoreResult<String> {
    let mut value = serde_json::to_value(inventory)
        .map_err(|e| StoreError::corrupt("inventory to store", e))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("software");
    }
    Ok(value.to_string())
}

/// Rows per multi-row INSERT: 6 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters per statement.
pub(crate) const ROWS_PER_INSERT: usize = 1000;

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt("value to store", e))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what.to_owned(), e))
}

fn opt_json(what: &str, text: Option<String>) -> StoreResult<Option<serde_json::Value>> {
    text.map(|t| from_json(what, &t)).transpose()
}

pub(crate) fn parse_cursor(cursor: Option<&str>, what: &str) -> StoreResult<i64> {
    match cursor {
        Some(c) => c.parse::<i64>().map_err(|_| StoreError::NotFound {
            what: format!("{what} cursor {c:?}"),
        }),
        None => Ok(i64::MAX),
    }
}

pub(crate) type InventoryRow = (String, String, i64, String, Option<String>, String);

/// `(tenant, device_id, received_at, facts, software, summary)` → snapshot.
pub(crate) fn snapshot_from_row(row: InventoryRow) -> StoreResult<InventorySnapshot> {
    let (tenant, device, received_at, facts, software, summary) = row;
    let what = format!("inventory of {device}");
    let mut inventory: Inventory = from_json(&what, &facts)?;
    inventory.software = software.map(|s| from_json::<Sbom>(&what, &s)).transpose()?;
    Ok(InventorySnapshot {
        tenant: TenantId::new(tenant)?,
        device: DeviceId::new(device)?,
        received_at,
        inventory,
        summary: from_json(&what, &summary)?,
    })
}

pub(crate) type FactRow = (i64, String, i64, Option<String>, Option<String>);

pub(crate) fn fact_from_row(row: FactRow) -> StoreResult<(i64, FactChange)> {
    let (id, fact, at, before, after) = row;
    let what = format!("fact history {id}");
    Ok((
        id,
        FactChange {
            fact,
            at,
            before: opt_json(&what, before)?,
            after: opt_json(&what, after)?,
        },
    ))
}

pub(crate) const DRIFT_COLUMNS: &str =
    "id, tenant, device_id, at, kind, fact, severity, before_value, after_value, detail";
pub(crate) type DriftRow = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

pub(crate) fn drift_from_row(row: DriftRow) -> StoreResult<DriftEvent> {
    let (id, tenant, device, at, kind, fact, severity, before, after, detail) = row;
    let what = format!("drift event {id}");
    Ok(DriftEvent {
        id,
        tenant: TenantId::new(tenant)?,
        device: DeviceId::new(device)?,
        at,
        drift: NewDrift {
            kind,
            fact,
            severity: severity
                .parse::<Severity>()
                .map_err(|e| StoreError::corrupt(what.clone(), e))?,
            before: opt_json(&what, before)?,
            after: opt_json(&what, after)?,
            detail,
        },
    })
}

pub(crate) type PresenceRow = (
    String,
    i64,
    i64,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) fn presence_from_row(row: PresenceRow) -> StoreResult<(String, Presence)> {
    let (device, first_seen, last_seen, online, last_address, agent, agent_version, telemetry) =
        row;
    let telemetry = telemetry
        .map(|t| from_json::<Telemetry>(&format!("telemetry of {device}"), &t))
        .transpose()?;
    Ok((
        device,
        Presence {
            first_seen,
            last_seen,
            online,
            last_address,
            agent,
            agent_version,
            telemetry,
        },
    ))
}

pub(crate) const EVENT_COLUMNS: &str = "id, tenant, device_id, received_at, at, kind, body";
pub(crate) type EventRow = (i64, String, String, i64, i64, String, String);

pub(crate) fn event_from_row(row: EventRow) -> StoreResult<StoredDeviceEvent> {
    let (id, tenant, device, received_at, at, kind, body) = row;
    Ok(StoredDeviceEvent {
        id,
        event: NewDeviceEvent {
            tenant: TenantId::new(tenant)?,
            device: DeviceId::new(device)?,
            received_at,
            at,
            kind,
            body: from_json(&format!("device event {id}"), &body)?,
        },
    })
}

pub(crate) const GROUP_COLUMNS: &str = "tenant, name, description, query, impact, \
     allowed_services, created_by, created_at, updated_at";
pub(crate) type GroupRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
);

pub(crate) fn group_from_row(row: GroupRow) -> StoreResult<Group> {
    let (tenant, name, description, query, impact, allowed, created_by, created_at, updated_at) =
        row;
    let what = format!("group {name}");
    Ok(Group {
        impact: impact
            .map(|i| i.parse::<Impact>())
            .transpose()
            .map_err(|e| StoreError::corrupt(what.clone(), e))?,
        allowed_services: allowed.map(|a| from_json(&what, &a)).transpose()?,
        tenant: TenantId::new(tenant)?,
        name,
        description,
        query,
        created_by,
        created_at,
        updated_at,
    })
}

pub(crate) fn group_audit_json(g: &Group) -> serde_json::Value {
    json!({
        "name": g.name, "description": g.description, "query": g.query,
        "impact": g.impact.map(Impact::as_str), "allowed_services": g.allowed_services,
    })
}

pub(crate) const FINDING_COLUMNS: &str = "id, tenant, check_id, subject, device_id, severity, \
     status, evidence, first_seen, last_seen, resolved_at, reopened, suppressed_reason, \
     suppressed_by, suppressed_at, suppressed_until";
pub(crate) type FindingRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn finding_from_row(row: FindingRow) -> StoreResult<Finding> {
    let (
        id,
        tenant,
        check,
        subject,
        device,
        severity,
        status,
        evidence,
        first_seen,
        last_seen,
        resolved_at,
        reopened,
        reason,
        by,
        at,
        until,
    ) = row;
    let what = format!("finding {id}");
    let suppression = match (reason, by, at) {
        (Some(reason), Some(by), Some(at)) => Some(Suppression {
            reason,
            by,
            at,
            until,
        }),
        _ => None,
    };
    Ok(Finding {
        tenant: TenantId::new(tenant)?,
        device: device.map(DeviceId::new).transpose()?,
        severity: severity
            .parse::<Severity>()
            .map_err(|e| StoreError::corrupt(what.clone(), e))?,
        status: FindingStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(what.clone(), "unknown status"))?,
        evidence: from_json(&what, &evidence)?,
        id,
        check,
        subject,
        first_seen,
        last_seen,
        resolved_at,
        reopened,
        suppression,
    })
}

pub(crate) fn finding_audit_json(f: &Finding) -> serde_json::Value {
    json!({
        "id": f.id, "check": f.check, "subject": f.subject, "status": f.status.as_str(),
        "severity": f.severity.as_str(),
        "suppression": f.suppression.as_ref().map(|s| json!({
            "reason": s.reason, "by": s.by, "until": s.until,
        })),
    })
}

/// What a findings sync does to one stored finding.
pub(crate) enum FindingChange {
    /// An observation no unresolved finding matches: reopen the resolved finding of the same
    /// check and subject if there is one, else insert a new one.
    OpenOrReopen(Observation),
    /// An unresolved finding seen again whose status, severity or evidence changed.
    Update {
        id: String,
        status: FindingStatus,
        observation: Observation,
    },
    /// Resolve it (its suppression goes with it: a finding that comes back is new risk).
    Resolve { id: String },
}

/// The plan of a sync: the changes, and the unresolved findings seen again (whose
/// `last_seen` moves).
pub(crate) struct SyncPlan {
    pub(crate) changes: Vec<FindingChange>,
    pub(crate) seen: Vec<String>,
}

/// Decides what a sync changes. `unresolved` are the stored open and suppressed findings in
/// the sync's scope. Observations of the same check and subject are merged (the worst
/// severity wins), so evaluating a device twice cannot open a finding twice.
pub(crate) fn plan_findings_sync(
    unresolved: Vec<Finding>,
    observations: Vec<Observation>,
    at: i64,
    delta: &mut crate::inventory::FindingsDelta,
) -> SyncPlan {
    let mut merged: BTreeMap<(String, String), Observation> = BTreeMap::new();
    for o in observations {
        let key = (o.check.clone(), o.subject.clone());
        match merged.get(&key) {
            Some(kept) if kept.severity >= o.severity => {}
            _ => {
                merged.insert(key, o);
            }
        }
    }
    let mut by_key: BTreeMap<(String, String), Finding> = unresolved
        .into_iter()
        .map(|f| ((f.check.clone(), f.subject.clone()), f))
        .collect();
    let mut changes = Vec::new();
    let mut seen = Vec::new();
    for (key, observation) in merged {
        match by_key.remove(&key) {
            None => changes.push(FindingChange::OpenOrReopen(observation)),
            Some(found) => {
                delta.still_open += 1;
                let suppression_holds = found
                    .suppression
                    .as_ref()
                    .is_some_and(|s| s.until.is_none_or(|u| u > at));
                let status = if found.status == FindingStatus::Suppressed && suppression_holds {
                    FindingStatus::Suppressed
                } else {
                    FindingStatus::Open
                };
                if found.status == FindingStatus::Suppressed && status == FindingStatus::Open {
                    delta.unsuppressed += 1;
                }
                if status != found.status
                    || observation.severity != found.severity
                    || observation.evidence != found.evidence
                {
                    changes.push(FindingChange::Update {
                        id: found.id.clone(),
                        status,
                        observation,
                    });
                }
                seen.push(found.id);
            }
        }
    }
    for (_, left) in by_key {
        delta.resolved += 1;
        changes.push(FindingChange::Resolve { id: left.id });
    }
    SyncPlan { changes, seen }
}

pub(crate) const RUN_COLUMNS: &str = "id, tenant, run_trigger, started_at, finished_at, devices, \
     checks, opened, resolved, open_count";
pub(crate) type RunRow = (String, String, String, i64, i64, i64, i64, i64, i64, i64);

pub(crate) fn run_from_row(row: RunRow) -> StoreResult<PostureRun> {
    let (id, tenant, trigger, started_at, finished_at, devices, checks, opened, resolved, open) =
        row;
    Ok(PostureRun {
        tenant: TenantId::new(tenant)?,
        id,
        trigger,
        started_at,
        finished_at,
        devices,
        checks,
        opened,
        resolved,
        open,
    })
}

pub(crate) type PolicyRow = (String, String, String, i64);

pub(crate) fn policy_from_row(row: PolicyRow) -> FirmwarePolicy {
    let (model, minimum_version, updated_by, updated_at) = row;
    FirmwarePolicy {
        model,
        minimum_version,
        updated_by,
        updated_at,
    }
}

pub(crate) type UnmanagedRow = (String, String, String, i64, i64, i64, String);

pub(crate) fn unmanaged_from_row(row: UnmanagedRow) -> StoreResult<UnmanagedEntry> {
    let (kind, identity, address, first_seen, last_seen, count, detail) = row;
    Ok(UnmanagedEntry {
        kind: SightingKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt("unmanaged sighting", "unknown kind"))?,
        identity,
        address,
        first_seen,
        last_seen,
        count,
        detail,
    })
}

/// The `IN (…)` list of severities at or above `min` (fixed names, safe to format into SQL).
pub(crate) fn severities_at_least(min: Option<Severity>) -> String {
    Severity::ALL
        .into_iter()
        .filter(|s| min.is_none_or(|m| *s >= m))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored summary, a parse failure aside.
pub(crate) fn summary_from_json(device: &str, text: &str) -> StoreResult<DeviceSummary> {
    from_json(&format!("inventory summary of {device}"), text)
}

/// Stamps the shared `InventoryStore` implementation onto a backend (after
/// [`impl_store!`](crate::sql::impl_store)). The backend provides `begin_device_write()`.
macro_rules! impl_inventory_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn finding_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<$crate::inventory::Finding> {
                let row: Option<$crate::sql_inventory::FindingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM findings WHERE tenant = $1 AND id = $2",
                    $crate::sql_inventory::FINDING_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                row.map($crate::sql_inventory::finding_from_row)
                    .transpose()?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("finding {id:?}") })
            }

            async fn group_in<'e, E: sqlx::Executor<'e, Database = $db>>(
                executor: E,
                tenant: &garrison_core::TenantId,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::inventory::Group>> {
                let row: Option<$crate::sql_inventory::GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM device_groups WHERE tenant = $1 AND name = $2",
                    $crate::sql_inventory::GROUP_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(name)
                .fetch_optional(executor)
                .await?;
                row.map($crate::sql_inventory::group_from_row).transpose()
            }

            async fn tags_in<'e, E: sqlx::Executor<'e, Database = $db>>(
                executor: E,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
            ) -> $crate::StoreResult<std::collections::BTreeMap<String, String>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT key, value FROM device_tags WHERE tenant = $1 AND device_id = $2",
                )
                .bind(tenant.as_str())
                .bind(device.as_str())
                .fetch_all(executor)
                .await?;
                Ok(rows.into_iter().collect())
            }
        }

        #[async_trait::async_trait]
        impl $crate::inventory::InventoryStore for $store {
            async fn inventory_get(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                with_software: bool,
            ) -> $crate::StoreResult<Option<$crate::inventory::InventorySnapshot>> {
                let software = if with_software { "software" } else { "NULL" };
                let row: Option<$crate::sql_inventory::InventoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT tenant, device_id, received_at, facts, {software}, summary \
                     FROM device_inventory WHERE tenant = $1 AND device_id = $2"
                )))
                .bind(tenant.as_str())
                .bind(device.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_inventory::snapshot_from_row).transpose()
            }

            async fn inventories_page(
                &self,
                tenant: &garrison_core::TenantId,
                after: Option<&garrison_core::DeviceId>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::inventory::InventorySnapshot>> {
                let rows: Vec<$crate::sql_inventory::InventoryRow> = sqlx::query_as(
                    "SELECT tenant, device_id, received_at, facts, NULL, summary \
                     FROM device_inventory WHERE tenant = $1 AND device_id > $2 \
                     ORDER BY device_id LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(after.map_or("", |d| d.as_str()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::sql_inventory::snapshot_from_row).collect()
            }

            async fn inventory_record_batch(
                &self,
                batch: &[$crate::inventory::InventoryWrite],
            ) -> $crate::StoreResult<()> {
                if batch.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_device_write().await?;
                for write in batch {
                    let facts = &write.inventory;
                    let facts_json = $crate::sql_inventory::facts_json(facts)?;
                    let software_json = facts
                        .software
                        .as_ref()
                        .map($crate::sql_inventory::to_json)
                        .transpose()?;
                    let summary_json = $crate::sql_inventory::to_json(&write.summary)?;
                    sqlx::query(
                        "INSERT INTO device_inventory (tenant, device_id, received_at, \
                         collected_at, facts, software, summary) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (tenant, device_id) DO UPDATE SET \
                         received_at = excluded.received_at, collected_at = excluded.collected_at, \
                         facts = excluded.facts, software = excluded.software, \
                         summary = excluded.summary",
                    )
                    .bind(write.tenant.as_str())
                    .bind(write.device.as_str())
                    .bind(write.received_at)
                    .bind(facts.collected_at)
                    .bind(&facts_json)
                    .bind(&software_json)
                    .bind(&summary_json)
                    .execute(&mut *tx)
                    .await?;
                    // One multi-row INSERT per device (a first report has a change per
                    // fact): on PostgreSQL each statement is a round trip.
                    for chunk in write.changes.chunks($crate::sql_inventory::ROWS_PER_INSERT) {
                        let mut values = Vec::with_capacity(chunk.len());
                        for change in chunk {
                            values.push((
                                change,
                                change.before.as_ref().map($crate::sql_inventory::to_json).transpose()?,
                                change.after.as_ref().map($crate::sql_inventory::to_json).transpose()?,
                            ));
                        }
                        let mut insert = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO fact_history (tenant, device_id, at, fact, before_value, after_value) ",
                        );
                        insert.push_values(values, |mut row, (change, before, after)| {
                            row.push_bind(write.tenant.as_str())
                                .push_bind(write.device.as_str())
                                .push_bind(change.at)
                                .push_bind(change.fact.as_str())
                                .push_bind(before)
                                .push_bind(after);
                        });
                        // Row counts vary: keep these out of the prepared-statement cache.
                        insert.build().persistent(false).execute(&mut *tx).await?;
                    }
                    for drift in &write.drift {
                        let before = drift.before.as_ref().map($crate::sql_inventory::to_json).transpose()?;
                        let after = drift.after.as_ref().map($crate::sql_inventory::to_json).transpose()?;
                        sqlx::query(
                            "INSERT INTO drift_events (tenant, device_id, at, kind, fact, severity, \
                             before_value, after_value, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(write.tenant.as_str())
                        .bind(write.device.as_str())
                        .bind(write.received_at)
                        .bind(&drift.kind)
                        .bind(&drift.fact)
                        .bind(drift.severity.as_str())
                        .bind(before)
                        .bind(after)
                        .bind(&drift.detail)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn fact_history(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                fact: Option<&str>,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::FactChange>> {
                let before = $crate::sql_inventory::parse_cursor(page.after.as_deref(), "history")?;
                let rows: Vec<$crate::sql_inventory::FactRow> = sqlx::query_as(
                    "SELECT id, fact, at, before_value, after_value FROM fact_history \
                     WHERE tenant = $1 AND device_id = $2 AND id < $3 \
                     AND ($4 IS NULL OR fact = $4) ORDER BY id DESC LIMIT $5",
                )
                .bind(tenant.as_str())
                .bind(device.as_str())
                .bind(before)
                .bind(fact)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_inventory::fact_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                let page = $crate::sql::paginate(items, page.limit, |(id, _)| id.to_string());
                Ok($crate::Page {
                    items: page.items.into_iter().map(|(_, c)| c).collect(),
                    next: page.next,
                })
            }

            async fn drift_list(
                &self,
                tenant: &garrison_core::TenantId,
                device: Option<&garrison_core::DeviceId>,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::DriftEvent>> {
                let before = $crate::sql_inventory::parse_cursor(page.after.as_deref(), "drift")?;
                let rows: Vec<$crate::sql_inventory::DriftRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM drift_events WHERE tenant = $1 AND id < $2 \
                     AND ($3 IS NULL OR device_id = $3) ORDER BY id DESC LIMIT $4",
                    $crate::sql_inventory::DRIFT_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(before)
                .bind(device.map(|d| d.as_str()))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_inventory::drift_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |d| d.id.to_string()))
            }

            async fn presence_record_batch(
                &self,
                updates: &[$crate::inventory::PresenceUpdate],
            ) -> $crate::StoreResult<()> {
                if updates.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_device_write().await?;
                for u in updates {
                    let telemetry = u.telemetry.as_ref().map($crate::sql_inventory::to_json).transpose()?;
                    let (agent, agent_version) = match &u.agent {
                        Some((a, v)) => (Some(a.as_str()), Some(v.as_str())),
                        None => (None, None),
                    };
                    sqlx::query(
                        "INSERT INTO device_presence (tenant, device_id, first_seen, last_seen, \
                         online, last_address, agent, agent_version, telemetry) \
                         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (tenant, device_id) DO UPDATE SET \
                         last_seen = CASE WHEN excluded.last_seen > device_presence.last_seen \
                           THEN excluded.last_seen ELSE device_presence.last_seen END, \
                         online = CASE WHEN $9 THEN excluded.online ELSE device_presence.online END, \
                         last_address = COALESCE(excluded.last_address, device_presence.last_address), \
                         agent = COALESCE(excluded.agent, device_presence.agent), \
                         agent_version = COALESCE(excluded.agent_version, device_presence.agent_version), \
                         telemetry = COALESCE(excluded.telemetry, device_presence.telemetry)",
                    )
                    .bind(u.tenant.as_str())
                    .bind(u.device.as_str())
                    .bind(u.at)
                    .bind(u.online.unwrap_or(false))
                    .bind(u.address.as_deref())
                    .bind(agent)
                    .bind(agent_version)
                    .bind(telemetry)
                    .bind(u.online.is_some())
                    .execute(&mut *tx)
                    .await?;
                    for (address, seen) in &u.destinations {
                        sqlx::query(
                            "INSERT INTO device_destinations (tenant, device_id, address, \
                             first_seen, last_seen, reports) VALUES ($1, $2, $3, $4, $5, $6) \
                             ON CONFLICT (tenant, device_id, address) DO UPDATE SET \
                             first_seen = CASE WHEN excluded.first_seen < device_destinations.first_seen \
                               THEN excluded.first_seen ELSE device_destinations.first_seen END, \
                             last_seen = CASE WHEN excluded.last_seen > device_destinations.last_seen \
                               THEN excluded.last_seen ELSE device_destinations.last_seen END, \
                             reports = device_destinations.reports + excluded.reports",
                        )
                        .bind(u.tenant.as_str())
                        .bind(u.device.as_str())
                        .bind(address)
                        .bind(seen.first_seen)
                        .bind(seen.last_seen)
                        .bind(i64::try_from(seen.reports).unwrap_or(i64::MAX))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn device_destinations_list(
                &self,
                tenant: &garrison_core::TenantId,
                device: Option<&garrison_core::DeviceId>,
                since: garrison_core::UnixMillis,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::DeviceDestination>> {
                // Keyset over the primary key: rows updated while a reader pages stay in place.
                let (after_device, after_address) = match page.after.as_deref() {
                    Some(cursor) => cursor.split_once(' ').ok_or_else(|| $crate::StoreError::NotFound {
                        what: format!("destination cursor {cursor:?}"),
                    })?,
                    None => ("", ""),
                };
                let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT device_id, address, first_seen, last_seen, reports \
                     FROM device_destinations WHERE tenant = $1 AND last_seen >= $2 \
                     AND (device_id > $3 OR (device_id = $3 AND address > $4)) \
                     AND ($6 IS NULL OR device_id = $6) \
                     ORDER BY device_id, address LIMIT $5",
                )
                .bind(tenant.as_str())
                .bind(since)
                .bind(after_device)
                .bind(after_address)
                .bind(i64::from(page.limit) + 1)
                .bind(device.map(|d| d.as_str()))
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map(|(device, address, first_seen, last_seen, reports)| {
                        Ok($crate::inventory::DeviceDestination {
                            device: garrison_core::DeviceId::new(device)?,
                            address,
                            seen: $crate::inventory::DestinationSeen {
                                first_seen,
                                last_seen,
                                reports: u64::try_from(reports).unwrap_or_default(),
                            },
                        })
                    })
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |d| {
                    format!("{} {}", d.device, d.address)
                }))
            }

            async fn fleet_entries(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Vec<$crate::inventory::FleetEntry>> {
                use std::collections::{BTreeMap, HashMap};
                let devices: Vec<$crate::sql_identity::DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE tenant = $1 ORDER BY id",
                    $crate::sql_identity::DEVICE_COLUMNS
                )))
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                let summaries: Vec<(String, i64, String)> = sqlx::query_as(
                    "SELECT device_id, received_at, summary FROM device_inventory WHERE tenant = $1",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut summaries: HashMap<String, (i64, $crate::inventory::DeviceSummary)> = summaries
                    .into_iter()
                    .map(|(d, at, s)| {
                        let summary = $crate::sql_inventory::summary_from_json(&d, &s)?;
                        Ok((d, (at, summary)))
                    })
                    .collect::<$crate::StoreResult<_>>()?;
                let presence: Vec<$crate::sql_inventory::PresenceRow> = sqlx::query_as(
                    "SELECT device_id, first_seen, last_seen, online, last_address, agent, \
                     agent_version, telemetry FROM device_presence WHERE tenant = $1",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut presence: HashMap<String, $crate::inventory::Presence> = presence
                    .into_iter()
                    .map($crate::sql_inventory::presence_from_row)
                    .collect::<$crate::StoreResult<_>>()?;
                let tag_rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT device_id, key, value FROM device_tags WHERE tenant = $1",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut tags: HashMap<String, BTreeMap<String, String>> = HashMap::new();
                for (d, k, v) in tag_rows {
                    tags.entry(d).or_default().insert(k, v);
                }
                let member_rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT device_id, group_name FROM group_members WHERE tenant = $1 \
                     ORDER BY group_name",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut groups: HashMap<String, Vec<String>> = HashMap::new();
                for (d, g) in member_rows {
                    groups.entry(d).or_default().push(g);
                }
                devices
                    .into_iter()
                    .map(|row| {
                        let device = $crate::sql_identity::device_from_row(row)?;
                        let id = device.id.as_str();
                        Ok($crate::inventory::FleetEntry {
                            summary: summaries.remove(id),
                            presence: presence.remove(id),
                            tags: tags.remove(id).unwrap_or_default(),
                            groups: groups.remove(id).unwrap_or_default(),
                            device,
                        })
                    })
                    .collect()
            }

            async fn device_events_append(
                &self,
                events: &[$crate::inventory::NewDeviceEvent],
            ) -> $crate::StoreResult<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let bodies = events
                    .iter()
                    .map(|e| $crate::sql_inventory::to_json(&e.body))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                let mut tx = self.begin_device_write().await?;
                // Many rows per statement: a statement per event cost a round trip to the
                // connection (SQLite's worker thread, PostgreSQL's socket) per event.
                let rows: Vec<_> = events.iter().zip(bodies).collect();
                for chunk in rows.chunks($crate::sql_inventory::ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO device_events (tenant, device_id, received_at, at, kind, body) ",
                    );
                    insert.push_values(chunk, |mut row, (e, body)| {
                        row.push_bind(e.tenant.as_str())
                            .push_bind(e.device.as_str())
                            .push_bind(e.received_at)
                            .push_bind(e.at)
                            .push_bind(e.kind.as_str())
                            .push_bind(body.as_str());
                    });
                    // Full chunks share one statement text, worth preparing once; the last
                    // chunk's row count varies.
                    let full = chunk.len() == $crate::sql_inventory::ROWS_PER_INSERT;
                    insert.build().persistent(full).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn device_events_list(
                &self,
                tenant: &garrison_core::TenantId,
                device: Option<&garrison_core::DeviceId>,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::StoredDeviceEvent>> {
                let before = $crate::sql_inventory::parse_cursor(page.after.as_deref(), "event")?;
                let rows: Vec<$crate::sql_inventory::EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM device_events WHERE tenant = $1 AND id < $2 \
                     AND ($3 IS NULL OR device_id = $3) ORDER BY id DESC LIMIT $4",
                    $crate::sql_inventory::EVENT_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(before)
                .bind(device.map(|d| d.as_str()))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_inventory::event_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |e| e.id.to_string()))
            }

            async fn device_tags_update(
                &self,
                tenant: &garrison_core::TenantId,
                device: &garrison_core::DeviceId,
                set: std::collections::BTreeMap<String, String>,
                remove: Vec<String>,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<std::collections::BTreeMap<String, String>> {
                let mut tx = self.begin_write().await?;
                if Self::device_in(&mut tx, tenant, device).await?.is_none() {
                    return Err($crate::StoreError::NotFound { what: format!("device {device}") });
                }
                let before = Self::tags_in(&mut *tx, tenant, device).await?;
                for key in &remove {
                    sqlx::query("DELETE FROM device_tags WHERE tenant = $1 AND device_id = $2 AND key = $3")
                        .bind(tenant.as_str())
                        .bind(device.as_str())
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                for (key, value) in &set {
                    sqlx::query(
                        "INSERT INTO device_tags (tenant, device_id, key, value) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant, device_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(tenant.as_str())
                    .bind(device.as_str())
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                let after = Self::tags_in(&mut *tx, tenant, device).await?;
                Self::append_audit(
                    &mut tx,
                    audit.before(serde_json::json!(before)).after(serde_json::json!(after)),
                )
                .await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn group_create(
                &self,
                group: $crate::inventory::Group,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::inventory::Group> {
                let mut tx = self.begin_write().await?;
                let allowed = group.allowed_services.as_ref().map($crate::sql_inventory::to_json).transpose()?;
                sqlx::query(
                    "INSERT INTO device_groups (tenant, name, description, query, impact, \
                     allowed_services, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(group.tenant.as_str())
                .bind(&group.name)
                .bind(&group.description)
                .bind(&group.query)
                .bind(group.impact.map(garrison_core::Impact::as_str))
                .bind(allowed)
                .bind(&group.created_by)
                .bind(group.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::error::conflict_or(e, || format!("group {:?}", group.name)))?;
                let stored = Self::group_in(&mut *tx, &group.tenant, &group.name)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("group {:?}", group.name) })?;
                Self::append_audit(&mut tx, audit.after($crate::sql_inventory::group_audit_json(&stored))).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn group_update(
                &self,
                group: $crate::inventory::Group,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::inventory::Group> {
                let mut tx = self.begin_write().await?;
                let before = Self::group_in(&mut *tx, &group.tenant, &group.name)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("group {:?}", group.name) })?;
                if before.query.is_none() != group.query.is_none() {
                    return Err($crate::StoreError::Refused {
                        reason: "a group stays static or dynamic; delete and recreate it to change that".into(),
                    });
                }
                let allowed = group.allowed_services.as_ref().map($crate::sql_inventory::to_json).transpose()?;
                sqlx::query(
                    "UPDATE device_groups SET description = $3, query = $4, impact = $5, \
                     allowed_services = $6, updated_at = $7 WHERE tenant = $1 AND name = $2",
                )
                .bind(group.tenant.as_str())
                .bind(&group.name)
                .bind(&group.description)
                .bind(&group.query)
                .bind(group.impact.map(garrison_core::Impact::as_str))
                .bind(allowed)
                .bind(group.updated_at)
                .execute(&mut *tx)
                .await?;
                let after = Self::group_in(&mut *tx, &group.tenant, &group.name)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("group {:?}", group.name) })?;
                Self::append_audit(
                    &mut tx,
                    audit
                        .before($crate::sql_inventory::group_audit_json(&before))
                        .after($crate::sql_inventory::group_audit_json(&after)),
                )
                .await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn group_get(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::inventory::Group>> {
                Self::group_in(&self.pool, tenant, name).await
            }

            async fn groups_list(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Vec<$crate::inventory::Group>> {
                let rows: Vec<$crate::sql_inventory::GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM device_groups WHERE tenant = $1 ORDER BY name",
                    $crate::sql_inventory::GROUP_COLUMNS
                )))
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::sql_inventory::group_from_row).collect()
            }

            async fn group_delete(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::inventory::Group> {
                let mut tx = self.begin_write().await?;
                let before = Self::group_in(&mut *tx, tenant, name)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("group {name:?}") })?;
                sqlx::query("DELETE FROM group_members WHERE tenant = $1 AND group_name = $2")
                    .bind(tenant.as_str())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM device_groups WHERE tenant = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit(&mut tx, audit.before($crate::sql_inventory::group_audit_json(&before))).await?;
                tx.commit().await?;
                Ok(before)
            }

            async fn group_members_change(
                &self,
                tenant: &garrison_core::TenantId,
                name: &str,
                devices: Vec<garrison_core::DeviceId>,
                add: bool,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let group = Self::group_in(&mut *tx, tenant, name)
                    .await?
                    .ok_or_else(|| $crate::StoreError::NotFound { what: format!("group {name:?}") })?;
                if group.query.is_some() {
                    return Err($crate::StoreError::Refused {
                        reason: format!("group {name:?} is dynamic: its members are the devices its query matches"),
                    });
                }
                let mut changed = 0u64;
                for device in &devices {
                    if add && Self::device_in(&mut tx, tenant, device).await?.is_none() {
                        return Err($crate::StoreError::NotFound { what: format!("device {device}") });
                    }
                    let sql = if add {
                        "INSERT INTO group_members (tenant, group_name, device_id) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING"
                    } else {
                        "DELETE FROM group_members WHERE tenant = $1 AND group_name = $2 AND device_id = $3"
                    };
                    changed += sqlx::query(sql)
                        .bind(tenant.as_str())
                        .bind(name)
                        .bind(device.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                let listed: Vec<&str> = devices.iter().take(100).map(|d| d.as_str()).collect();
                Self::append_audit(
                    &mut tx,
                    audit.after(serde_json::json!({
                        "group": name, if add { "added" } else { "removed" }: changed,
                        "devices": listed, "devices_total": devices.len(),
                    })),
                )
                .await?;
                tx.commit().await?;
                Ok(changed)
            }

            async fn findings_sync(
                &self,
                sync: $crate::inventory::FindingsSync,
            ) -> $crate::StoreResult<$crate::inventory::FindingsDelta> {
                use $crate::sql_inventory::FindingChange;
                // Serialised with suppressions and other replicas' runs (on PostgreSQL the
                // audit chain's lock), so a decision read here cannot be undone by a write that
                // committed meanwhile.
                let mut tx = self.begin_write().await?;
                let mut rows: Vec<$crate::sql_inventory::FindingRow> = Vec::new();
                match &sync.devices {
                    None => {
                        rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT {} FROM findings WHERE tenant = $1 AND status != 'resolved'",
                            $crate::sql_inventory::FINDING_COLUMNS
                        )))
                        .bind(sync.tenant.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                    }
                    Some(devices) => {
                        for device in devices {
                            let found: Vec<$crate::sql_inventory::FindingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                                "SELECT {} FROM findings WHERE tenant = $1 AND device_id = $2 \
                                 AND status != 'resolved'",
                                $crate::sql_inventory::FINDING_COLUMNS
                            )))
                            .bind(sync.tenant.as_str())
                            .bind(device.as_str())
                            .fetch_all(&mut *tx)
                            .await?;
                            rows.extend(found);
                        }
                    }
                }
                let checks: std::collections::HashSet<&str> = sync.checks.iter().map(String::as_str).collect();
                let unresolved = rows
                    .into_iter()
                    .map($crate::sql_inventory::finding_from_row)
                    .filter(|f| f.as_ref().map_or(true, |f| checks.contains(f.check.as_str())))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                let mut delta = $crate::inventory::FindingsDelta::default();
                let at = sync.at;
                let plan = $crate::sql_inventory::plan_findings_sync(unresolved, sync.observations, at, &mut delta);
                let mut opens = Vec::new();
                for change in plan.changes {
                    match change {
                        FindingChange::OpenOrReopen(o) => opens.push(o),
                        FindingChange::Update { id, status, observation: o } => {
                            sqlx::query(
                                "UPDATE findings SET severity = $3, status = $4, evidence = $5 \
                                 WHERE tenant = $1 AND id = $2",
                            )
                            .bind(sync.tenant.as_str())
                            .bind(&id)
                            .bind(o.severity.as_str())
                            .bind(status.as_str())
                            .bind($crate::sql_inventory::to_json(&o.evidence)?)
                            .execute(&mut *tx)
                            .await?;
                        }
                        FindingChange::Resolve { id } => {
                            sqlx::query(
                                "UPDATE findings SET status = 'resolved', resolved_at = $3, \
                                 suppressed_reason = NULL, suppressed_by = NULL, suppressed_at = NULL, \
                                 suppressed_until = NULL WHERE tenant = $1 AND id = $2",
                            )
                            .bind(sync.tenant.as_str())
                            .bind(&id)
                            .bind(at)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                // New and returning findings in multi-row upserts: a first audit of a large
                // fleet opens one per failing check, and one round trip each is what made the
                // first PostgreSQL audit of 100,000 devices take minutes.
                for chunk in opens.chunks($crate::sql_inventory::ROWS_PER_INSERT) {
                    let mut values = Vec::with_capacity(chunk.len());
                    for o in chunk {
                        values.push((o, $crate::sql_inventory::to_json(&o.evidence)?));
                    }
                    let mut upsert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO findings (id, tenant, check_id, subject, device_id, severity, \
                         status, evidence, first_seen, last_seen, reopened) ",
                    );
                    upsert.push_values(values, |mut row, (o, evidence)| {
                        row.push_bind(uuid::Uuid::now_v7().to_string())
                            .push_bind(sync.tenant.as_str())
                            .push_bind(o.check.as_str())
                            .push_bind(o.subject.as_str())
                            .push_bind(o.device.as_ref().map(|d| d.as_str()))
                            .push_bind(o.severity.as_str())
                            .push("'open'")
                            .push_bind(evidence)
                            .push_bind(at)
                            .push_bind(at)
                            .push("0");
                    });
                    // A resolved finding of the same check and subject comes back (reopened),
                    // keeping its id, first sighting and history.
                    upsert.push(
                        " ON CONFLICT (tenant, check_id, subject) DO UPDATE SET status = 'open', \
                         severity = excluded.severity, evidence = excluded.evidence, \
                         last_seen = excluded.last_seen, resolved_at = NULL, \
                         reopened = findings.reopened + 1 RETURNING reopened",
                    );
                    let counts: Vec<(i64,)> = upsert.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
                    for (reopened,) in counts {
                        if reopened > 0 {
                            delta.reopened += 1;
                        } else {
                            delta.opened += 1;
                        }
                    }
                }
                // Findings still failing: one statement per few hundred, not one each.
                for ids in plan.seen.chunks(500) {
                    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
                    let sql = format!(
                        "UPDATE findings SET last_seen = $2 WHERE tenant = $1 AND id IN ({})",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sync.tenant.as_str()).bind(at);
                    for id in ids {
                        query = query.bind(id);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(delta)
            }

            async fn finding_get(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::inventory::Finding>> {
                let row: Option<$crate::sql_inventory::FindingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM findings WHERE tenant = $1 AND id = $2",
                    $crate::sql_inventory::FINDING_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_inventory::finding_from_row).transpose()
            }

            async fn findings_list(
                &self,
                tenant: &garrison_core::TenantId,
                filter: &$crate::inventory::FindingFilter,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::Finding>> {
                let rows: Vec<$crate::sql_inventory::FindingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM findings WHERE tenant = $1 AND id > $2 \
                     AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR check_id = $4) \
                     AND ($5 IS NULL OR device_id = $5) AND severity IN ({}) \
                     ORDER BY id LIMIT $6",
                    $crate::sql_inventory::FINDING_COLUMNS,
                    $crate::sql_inventory::severities_at_least(filter.min_severity),
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.status.map($crate::inventory::FindingStatus::as_str))
                .bind(filter.check.as_deref())
                .bind(filter.device.as_ref().map(|d| d.as_str()))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_inventory::finding_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |f| f.id.clone()))
            }

            async fn findings_open_by_device(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Vec<(garrison_core::DeviceId, Vec<(String, garrison_core::Severity)>)>> {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT device_id, check_id, severity FROM findings WHERE tenant = $1 \
                     AND status = 'open' AND device_id IS NOT NULL ORDER BY device_id",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(garrison_core::DeviceId, Vec<(String, garrison_core::Severity)>)> = Vec::new();
                for (device, check, severity) in rows {
                    let severity = severity
                        .parse::<garrison_core::Severity>()
                        .map_err(|e| $crate::StoreError::corrupt(format!("finding of {device}"), e))?;
                    match out.last_mut() {
                        Some((d, list)) if d.as_str() == device => list.push((check, severity)),
                        _ => out.push((garrison_core::DeviceId::new(device)?, vec![(check, severity)])),
                    }
                }
                Ok(out)
            }

            async fn finding_suppress(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
                suppression: Option<$crate::inventory::Suppression>,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::inventory::Finding> {
                use $crate::inventory::FindingStatus;
                let mut tx = self.begin_write().await?;
                let before = Self::finding_in(&mut tx, tenant, id).await?;
                match &suppression {
                    Some(s) => {
                        if before.status == FindingStatus::Resolved {
                            return Err($crate::StoreError::Refused {
                                reason: format!("finding {id} is resolved; there is nothing to suppress"),
                            });
                        }
                        sqlx::query(
                            "UPDATE findings SET status = 'suppressed', suppressed_reason = $2, \
                             suppressed_by = $3, suppressed_at = $4, suppressed_until = $5 \
                             WHERE id = $1 AND tenant = $6",
                        )
                        .bind(id)
                        .bind(&s.reason)
                        .bind(&s.by)
                        .bind(s.at)
                        .bind(s.until)
                        .bind(tenant.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        if before.status != FindingStatus::Suppressed {
                            return Err($crate::StoreError::Refused {
                                reason: format!("finding {id} is not suppressed"),
                            });
                        }
                        sqlx::query(
                            "UPDATE findings SET status = 'open', suppressed_reason = NULL, \
                             suppressed_by = NULL, suppressed_at = NULL, suppressed_until = NULL \
                             WHERE id = $1 AND tenant = $2",
                        )
                        .bind(id)
                        .bind(tenant.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let after = Self::finding_in(&mut tx, tenant, id).await?;
                Self::append_audit(
                    &mut tx,
                    audit
                        .before($crate::sql_inventory::finding_audit_json(&before))
                        .after($crate::sql_inventory::finding_audit_json(&after)),
                )
                .await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn posture_run_record(
                &self,
                run: $crate::inventory::PostureRun,
                audit: Option<garrison_core::audit::AuditRecord>,
            ) -> $crate::StoreResult<()> {
                let mut tx = if audit.is_some() {
                    self.begin_write().await?
                } else {
                    self.begin_device_write().await?
                };
                sqlx::query(
                    "INSERT INTO posture_runs (id, tenant, run_trigger, started_at, finished_at, \
                     devices, checks, opened, resolved, open_count) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&run.id)
                .bind(run.tenant.as_str())
                .bind(&run.trigger)
                .bind(run.started_at)
                .bind(run.finished_at)
                .bind(run.devices)
                .bind(run.checks)
                .bind(run.opened)
                .bind(run.resolved)
                .bind(run.open)
                .execute(&mut *tx)
                .await?;
                if let Some(audit) = audit {
                    Self::append_audit(
                        &mut tx,
                        audit.after(serde_json::json!({
                            "run": run.id, "devices": run.devices, "checks": run.checks,
                            "opened": run.opened, "resolved": run.resolved, "open": run.open,
                        })),
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn posture_runs_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::PostureRun>> {
                let rows: Vec<$crate::sql_inventory::RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM posture_runs WHERE tenant = $1 AND ($2 IS NULL OR id < $2) \
                     ORDER BY id DESC LIMIT $3",
                    $crate::sql_inventory::RUN_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref())
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_inventory::run_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |r| r.id.clone()))
            }

            async fn firmware_policy_set(
                &self,
                tenant: &garrison_core::TenantId,
                model: &str,
                minimum: Option<&str>,
                by: &str,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<Option<$crate::inventory::FirmwarePolicy>> {
                let mut tx = self.begin_write().await?;
                let select = "SELECT model, minimum_version, updated_by, updated_at \
                              FROM firmware_policies WHERE tenant = $1 AND model = $2";
                let before: Option<$crate::sql_inventory::PolicyRow> = sqlx::query_as(select)
                    .bind(tenant.as_str())
                    .bind(model)
                    .fetch_optional(&mut *tx)
                    .await?;
                match minimum {
                    Some(minimum) => {
                        sqlx::query(
                            "INSERT INTO firmware_policies (tenant, model, minimum_version, updated_by, \
                             updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, model) DO UPDATE \
                             SET minimum_version = excluded.minimum_version, \
                             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                        )
                        .bind(tenant.as_str())
                        .bind(model)
                        .bind(minimum)
                        .bind(by)
                        .bind(garrison_core::now_ms())
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        if before.is_none() {
                            return Err($crate::StoreError::NotFound {
                                what: format!("firmware policy for model {model:?}"),
                            });
                        }
                        sqlx::query("DELETE FROM firmware_policies WHERE tenant = $1 AND model = $2")
                            .bind(tenant.as_str())
                            .bind(model)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let after: Option<$crate::sql_inventory::PolicyRow> = sqlx::query_as(select)
                    .bind(tenant.as_str())
                    .bind(model)
                    .fetch_optional(&mut *tx)
                    .await?;
                let show = |p: &Option<$crate::sql_inventory::PolicyRow>| {
                    serde_json::json!({ "model": model, "minimum_version": p.as_ref().map(|p| p.1.clone()) })
                };
                Self::append_audit(&mut tx, audit.before(show(&before)).after(show(&after))).await?;
                tx.commit().await?;
                Ok(after.map($crate::sql_inventory::policy_from_row))
            }

            async fn firmware_policies(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Vec<$crate::inventory::FirmwarePolicy>> {
                let rows: Vec<$crate::sql_inventory::PolicyRow> = sqlx::query_as(
                    "SELECT model, minimum_version, updated_by, updated_at FROM firmware_policies \
                     WHERE tenant = $1 ORDER BY model",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map($crate::sql_inventory::policy_from_row).collect())
            }

            async fn unmanaged_record_batch(
                &self,
                sightings: &[$crate::inventory::Sighting],
            ) -> $crate::StoreResult<()> {
                if sightings.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_device_write().await?;
                for s in sightings {
                    sqlx::query(
                        "INSERT INTO unmanaged_sightings (tenant, kind, identity, address, first_seen, \
                         last_seen, count, detail) VALUES ($1, $2, $3, $4, $5, $5, 1, $6) \
                         ON CONFLICT (tenant, kind, identity, address) DO UPDATE SET \
                         count = unmanaged_sightings.count + 1, detail = excluded.detail, \
                         last_seen = CASE WHEN excluded.last_seen > unmanaged_sightings.last_seen \
                           THEN excluded.last_seen ELSE unmanaged_sightings.last_seen END",
                    )
                    .bind(s.tenant.as_str())
                    .bind(s.kind.as_str())
                    .bind(&s.identity)
                    .bind(&s.address)
                    .bind(s.at)
                    .bind(&s.detail)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn inventory_prune(
                &self,
                tenant: &garrison_core::TenantId,
                before: garrison_core::UnixMillis,
            ) -> $crate::StoreResult<u64> {
                let mut deleted = 0;
                for sql in [
                    "DELETE FROM fact_history WHERE tenant = $1 AND at < $2",
                    "DELETE FROM drift_events WHERE tenant = $1 AND at < $2",
                    "DELETE FROM device_events WHERE tenant = $1 AND received_at < $2",
                    "DELETE FROM unmanaged_sightings WHERE tenant = $1 AND last_seen < $2",
                    "DELETE FROM device_destinations WHERE tenant = $1 AND last_seen < $2",
                ] {
                    // One table per transaction: pruning never holds the write lock for long.
                    let mut tx = self.begin_device_write().await?;
                    deleted += sqlx::query(sql)
                        .bind(tenant.as_str())
                        .bind(before)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                }
                Ok(deleted)
            }

            async fn unmanaged_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::inventory::UnmanagedEntry>> {
                let offset = match page.after.as_deref() {
                    Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        $crate::StoreError::NotFound { what: format!("unmanaged cursor {c:?}") }
                    })?,
                    None => 0,
                };
                let rows: Vec<$crate::sql_inventory::UnmanagedRow> = sqlx::query_as(
                    "SELECT kind, identity, address, first_seen, last_seen, count, detail \
                     FROM unmanaged_sightings WHERE tenant = $1 \
                     ORDER BY last_seen DESC, kind, identity, address LIMIT $2 OFFSET $3",
                )
                .bind(tenant.as_str())
                .bind(i64::from(page.limit) + 1)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_inventory::unmanaged_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                let next_offset = offset + i64::from(page.limit);
                Ok($crate::sql::paginate(items, page.limit, |_| next_offset.to_string()))
            }
        }
    };
}

pub(crate) use impl_inventory_store;
