//! What the store keeps for monitoring and response: alerts (deduplicated while open, with
//! their lifecycle and notes) and the response actions playbooks took or proposed.
//!
//! Opening an alert and every response action are audited in the same transaction, so the
//! audit chain shows, in order, the alert, the action it caused, and (when the monitor sees it)
//! its enforcement. Further occurrences of an open alert only move its counters: they are what
//! devices did, not decisions.

use async_trait::async_trait;
use garrison_core::{DeviceId, Severity, TenantId, UnixMillis, audit::AuditRecord};
use serde::{Deserialize, Serialize};

use crate::{Page, PageRequest, StoreResult};

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised; nobody has looked yet.
    New,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
    /// Not a real threat.
    FalsePositive,
}

impl AlertStatus {
    /// Every status.
    pub const ALL: [AlertStatus; 4] = [
        AlertStatus::New,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
        AlertStatus::FalsePositive,
    ];

    /// The stable name (`false_positive`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::New => "new",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::FalsePositive => "false_positive",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<AlertStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether new occurrences still join the alert.
    pub fn is_open(self) -> bool {
        matches!(self, AlertStatus::New | AlertStatus::Acknowledged)
    }
}

/// A detection to record as an alert (or as one more occurrence of an open one).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    /// Tenant.
    pub tenant: TenantId,
    /// Occurrences with the same key join one open alert (rule and device, usually).
    pub dedup_key: String,
    /// The rule that fired (its id, or its title when it has none).
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// The device it is about.
    pub device: Option<DeviceId>,
    /// MITRE ATT&CK technique ids (`T1110.001`, `T0812`).
    pub techniques: Vec<String>,
    /// The rule's other tags (tactics, CVEs …).
    pub tags: Vec<String>,
    /// When it happened.
    pub at: UnixMillis,
    /// What matched (the event, or the correlation's group and value).
    pub evidence: serde_json::Value,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Id (UUIDv7).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// The deduplication key.
    pub dedup_key: String,
    /// The rule.
    pub rule_id: String,
    /// Its title.
    pub title: String,
    /// How bad (the highest of its occurrences).
    pub severity: Severity,
    /// The device.
    pub device: Option<DeviceId>,
    /// Lifecycle.
    pub status: AlertStatus,
    /// ATT&CK techniques.
    pub techniques: Vec<String>,
    /// Other tags.
    pub tags: Vec<String>,
    /// First occurrence.
    pub first_seen: UnixMillis,
    /// Latest occurrence.
    pub last_seen: UnixMillis,
    /// How many occurrences joined it.
    pub occurrences: i64,
    /// The latest occurrence's evidence.
    pub evidence: serde_json::Value,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// An alert after [`MonitorStore::alerts_raise`], and whether that call opened it.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    /// The alert now.
    pub alert: Alert,
    /// `true` when this call opened it; `false` when the occurrence joined an open alert.
    pub opened: bool,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only this status.
    pub status: Option<AlertStatus>,
    /// Only open ones (new or acknowledged).
    pub open: bool,
    /// Only this device's.
    pub device: Option<DeviceId>,
    /// Only this rule's.
    pub rule: Option<String>,
    /// At least this severe.
    pub min_severity: Option<Severity>,
}

/// A note or status change on an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertNote {
    /// Id.
    pub id: String,
    /// The alert.
    pub alert_id: String,
    /// When.
    pub at: UnixMillis,
    /// Who.
    pub author: String,
    /// Status before, when the status changed.
    pub from_status: Option<AlertStatus>,
    /// Status after, when the status changed.
    pub to_status: Option<AlertStatus>,
    /// The note (may be empty for a bare status change).
    pub note: String,
}

/// Where a response action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Being carried out now (recorded before the action, so the audit shows cause first).
    Started,
    /// Waiting for an operator to approve it.
    PendingApproval,
    /// Done.
    Executed,
    /// Only recorded: the playbook runs in dry-run mode.
    DryRun,
    /// Tried and failed (see the detail).
    Failed,
    /// An operator declined it.
    Rejected,
    /// Undone by an operator.
    Undone,
    /// Undone when its time ran out.
    Expired,
}

impl ResponseStatus {
    /// Every status.
    pub const ALL: [ResponseStatus; 8] = [
        ResponseStatus::Started,
        ResponseStatus::PendingApproval,
        ResponseStatus::Executed,
        ResponseStatus::DryRun,
        ResponseStatus::Failed,
        ResponseStatus::Rejected,
        ResponseStatus::Undone,
        ResponseStatus::Expired,
    ];

    /// The stable name (`pending_approval`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Started => "started",
            ResponseStatus::PendingApproval => "pending_approval",
            ResponseStatus::Executed => "executed",
            ResponseStatus::DryRun => "dry_run",
            ResponseStatus::Failed => "failed",
            ResponseStatus::Rejected => "rejected",
            ResponseStatus::Undone => "undone",
            ResponseStatus::Expired => "expired",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<ResponseStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A response action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResponse {
    /// Tenant.
    pub tenant: TenantId,
    /// The alert that caused it.
    pub alert_id: String,
    /// The playbook.
    pub playbook: String,
    /// The action (`quarantine`, `disconnect`, `revoke`, …).
    pub action: String,
    /// The device it acts on.
    pub device: Option<DeviceId>,
    /// The action's parameters as the playbook gave them.
    pub params: serde_json::Value,
    /// Its first status.
    pub status: ResponseStatus,
    /// What happened, for people.
    pub detail: String,
    /// When it is undone by itself, if ever.
    pub expires_at: Option<UnixMillis>,
}

/// A response action as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseAction {
    /// Id (UUIDv7).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// The alert that caused it.
    pub alert_id: String,
    /// The playbook.
    pub playbook: String,
    /// The action.
    pub action: String,
    /// The device.
    pub device: Option<DeviceId>,
    /// Parameters.
    pub params: serde_json::Value,
    /// Status.
    pub status: ResponseStatus,
    /// What happened.
    pub detail: String,
    /// Created.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// Who approved, rejected or undid it.
    pub decided_by: Option<String>,
    /// When it expires.
    pub expires_at: Option<UnixMillis>,
    /// When its enforcement was first observed (a quarantined device refused).
    pub enforced_at: Option<UnixMillis>,
}

/// A change to a response action.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseChange {
    /// The new status (`None`: unchanged).
    pub status: Option<ResponseStatus>,
    /// The new detail (`None`: unchanged).
    pub detail: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Enforcement observed at.
    pub enforced_at: Option<UnixMillis>,
    /// A new expiry (`None`: unchanged).
    pub expires_at: Option<UnixMillis>,
    /// The status it must have now (refused otherwise), so two deciders cannot both win.
    pub expect: Option<ResponseStatus>,
}

/// Which response actions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFilter {
    /// Only this alert's.
    pub alert: Option<String>,
    /// Only this status.
    pub status: Option<ResponseStatus>,
    /// Only this device's.
    pub device: Option<DeviceId>,
}

/// A threat-intelligence source imported through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelSource {
    /// Tenant.
    pub tenant: TenantId,
    /// Its name, also the indicators' `source`.
    pub name: String,
    /// `list`, `csv`, `stix` or `misp`.
    pub format: String,
    /// Indicators it gave when imported.
    pub indicators: i64,
    /// Entries skipped when imported.
    pub skipped: i64,
    /// The file as imported.
    pub content: String,
    /// When.
    pub imported_at: UnixMillis,
    /// By whom.
    pub imported_by: String,
}

/// Alerts and response actions.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    /// Records detections: each joins the open alert with its key (occurrences, last seen,
    /// the higher severity, latest evidence) or opens a new one, audited as `alert.open`. One
    /// transaction for the batch.
    async fn alerts_raise(&self, alerts: &[NewAlert]) -> StoreResult<Vec<RaisedAlert>>;

    /// One alert.
    async fn alert_get(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Alert>>;

    /// Alerts matching `filter`, newest first.
    async fn alerts_list(
        &self,
        tenant: &TenantId,
        filter: &AlertFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Alert>>;

    /// Changes an alert's status and/or adds a note, audited. Reopening a closed alert is
    /// refused when another open alert has its key.
    async fn alert_update(
        &self,
        tenant: &TenantId,
        id: &str,
        status: Option<AlertStatus>,
        note: &str,
        author: &str,
        audit: AuditRecord,
    ) -> StoreResult<Alert>;

    /// An alert's notes and status changes, oldest first.
    async fn alert_notes(&self, tenant: &TenantId, id: &str) -> StoreResult<Vec<AlertNote>>;

    /// Records a response action, audited. `None` when this alert already had this action from
    /// this playbook (an alert seen again does not act twice).
    async fn response_create(
        &self,
        response: &NewResponse,
        audit: AuditRecord,
    ) -> StoreResult<Option<ResponseAction>>;

    /// Changes a response action, audited.
    async fn response_update(
        &self,
        tenant: &TenantId,
        id: &str,
        change: &ResponseChange,
        audit: AuditRecord,
    ) -> StoreResult<ResponseAction>;

    /// One response action.
    async fn response_get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<ResponseAction>>;

    /// Response actions matching `filter`, newest first.
    async fn responses_list(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ResponseAction>>;

    /// Executed actions whose expiry has passed, oldest first.
    async fn responses_expired(
        &self,
        tenant: &TenantId,
        now: UnixMillis,
    ) -> StoreResult<Vec<ResponseAction>>;

    /// Adds or replaces a threat-intelligence source, audited (without its content).
    async fn intel_source_put(&self, source: &IntelSource, audit: AuditRecord) -> StoreResult<()>;

    /// Every imported source, by name (with content when `content`).
    async fn intel_sources(
        &self,
        tenant: &TenantId,
        content: bool,
    ) -> StoreResult<Vec<IntelSource>>;

    /// Removes a source, audited; `false` when there was none.
    async fn intel_source_delete(
        &self,
        tenant: &TenantId,
        name: &str,
        audit: AuditRecord,
    ) -> StoreResult<bool>;

    /// Saves learnt monitoring state under `name` (behaviour baselines), replacing the
    /// previous save unless that one is newer (`saved_at`), so a slow background save cannot
    /// undo a later one. Not audited: it is the monitor's memory, not an operator's action.
    async fn monitor_state_put(
        &self,
        tenant: &TenantId,
        name: &str,
        state: &[u8],
        saved_at: UnixMillis,
    ) -> StoreResult<()>;

    /// The state last saved under `name`, and when.
    async fn monitor_state_get(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Option<(Vec<u8>, UnixMillis)>>;
}
