//! Wire types of alerts, response actions and playbooks.

use garrison_core::format_ms;
use garrison_monitor::playbook::Playbook;
use garrison_store::monitor::{Alert, AlertNote, ResponseAction};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An alert: one rule firing on one device, with every later occurrence folded in while open.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// Id.
    pub id: String,
    /// The rule (id, or title when it has none).
    pub rule: String,
    /// The rule's title.
    pub title: String,
    /// `info` … `critical` (the highest occurrence).
    pub severity: String,
    /// The device.
    pub device: Option<String>,
    /// `new`, `acknowledged`, `resolved` or `false_positive`.
    pub status: String,
    /// MITRE ATT&CK technique ids (Enterprise `T1110.001`, ICS `T0812`).
    pub techniques: Vec<String>,
    /// The rule's other tags.
    pub tags: Vec<String>,
    /// First occurrence (RFC 3339).
    pub first_seen: String,
    /// Latest occurrence (RFC 3339).
    pub last_seen: String,
    /// Occurrences folded into it.
    pub occurrences: i64,
    /// The latest occurrence: the event (normalised, `docs/events.md`) and what matched.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> Self {
        AlertView {
            id: a.id,
            rule: a.rule_id,
            title: a.title,
            severity: a.severity.as_str().to_owned(),
            device: a.device.map(|d| d.to_string()),
            status: a.status.as_str().to_owned(),
            techniques: a.techniques,
            tags: a.tags,
            first_seen: format_ms(a.first_seen),
            last_seen: format_ms(a.last_seen),
            occurrences: a.occurrences,
            evidence: a.evidence,
            updated_at: format_ms(a.updated_at),
        }
    }
}

/// A change to an alert: a new status, a note, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertUpdateBody {
    /// `new`, `acknowledged`, `resolved` or `false_positive`.
    pub status: Option<String>,
    /// A note for the record (up to 4000 characters).
    #[serde(default)]
    pub note: String,
}

/// A note or status change on an alert.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertNoteView {
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub author: String,
    /// Status before, when it changed.
    pub from_status: Option<String>,
    /// Status after, when it changed.
    pub to_status: Option<String>,
    /// The note.
    pub note: String,
}

impl From<AlertNote> for AlertNoteView {
    fn from(n: AlertNote) -> Self {
        AlertNoteView {
            at: format_ms(n.at),
            author: n.author,
            from_status: n.from_status.map(|s| s.as_str().to_owned()),
            to_status: n.to_status.map(|s| s.as_str().to_owned()),
            note: n.note,
        }
    }
}

/// An alert with its notes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertDetailView {
    /// The alert.
    #[serde(flatten)]
    pub alert: AlertView,
    /// Its notes and status changes, oldest first.
    pub notes: Vec<AlertNoteView>,
    /// The response actions it caused.
    pub responses: Vec<ResponseView>,
}

/// A response action a playbook took or proposed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResponseView {
    /// Id.
    pub id: String,
    /// The alert that caused it.
    pub alert: String,
    /// The playbook.
    pub playbook: String,
    /// `quarantine`, `disconnect`, `revoke`, `rotate`, `move_group` or `webhook`.
    pub action: String,
    /// The device.
    pub device: Option<String>,
    /// The action's parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `started`, `pending_approval`, `executed`, `dry_run`, `failed`, `rejected`, `undone` or
    /// `expired`.
    pub status: String,
    /// What happened.
    pub detail: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Who approved, rejected or undid it.
    pub decided_by: Option<String>,
    /// When it is undone by itself (RFC 3339).
    pub expires_at: Option<String>,
    /// When its enforcement was first observed (RFC 3339).
    pub enforced_at: Option<String>,
}

impl From<ResponseAction> for ResponseView {
    fn from(r: ResponseAction) -> Self {
        ResponseView {
            id: r.id,
            alert: r.alert_id,
            playbook: r.playbook,
            action: r.action,
            device: r.device.map(|d| d.to_string()),
            params: r.params,
            status: r.status.as_str().to_owned(),
            detail: r.detail,
            created_at: format_ms(r.created_at),
            updated_at: format_ms(r.updated_at),
            decided_by: r.decided_by,
            expires_at: r.expires_at.map(format_ms),
            enforced_at: r.enforced_at.map(format_ms),
        }
    }
}

/// A playbook in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookView {
    /// Name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether it only records what it would do.
    pub dry_run: bool,
    /// At least this severe.
    pub min_severity: Option<String>,
    /// Rules it applies to (any; empty: all).
    pub rules: Vec<String>,
    /// Tags it applies to (any; empty: all).
    pub tags: Vec<String>,
    /// Its actions, in order: `name`, whether it needs approval, expiry in seconds.
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<serde_json::Value>,
}

impl From<&Playbook> for PlaybookView {
    fn from(p: &Playbook) -> Self {
        PlaybookView {
            name: p.name.clone(),
            description: p.description.clone(),
            dry_run: p.dry_run,
            min_severity: p.when.min_severity.map(|s| s.as_str().to_owned()),
            rules: p.when.rules.clone(),
            tags: p.when.tags.clone(),
            actions: p
                .actions
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "action": a.kind.name(), "approval": a.approval,
                        "expires_secs": a.expires.map(|e| e.as_secs()), "params": a.kind.params(),
                    })
                })
                .collect(),
        }
    }
}

/// Open alerts about one device (or, naming no device, of one rule).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    /// The device.
    pub device: Option<String>,
    /// The rule, for alerts that name no device.
    pub rule: Option<String>,
    /// The worst alert's severity.
    pub severity: String,
    /// How many open alerts.
    pub alerts: usize,
    /// Their occurrences, summed.
    pub occurrences: i64,
    /// Every ATT&CK technique they carry.
    pub techniques: Vec<String>,
    /// Their titles.
    pub titles: Vec<String>,
    /// The earliest first occurrence (RFC 3339).
    pub first_seen: String,
    /// The latest occurrence (RFC 3339).
    pub last_seen: String,
    /// The alerts, most recent first (`GET /api/v1/alerts/{id}`).
    pub alert_ids: Vec<String>,
}

impl From<garrison_monitor::incident::Incident> for IncidentView {
    fn from(i: garrison_monitor::incident::Incident) -> Self {
        IncidentView {
            device: i.device.map(|d| d.to_string()),
            rule: i.rule,
            severity: i.severity.as_str().to_owned(),
            alerts: i.alerts,
            occurrences: i.occurrences,
            techniques: i.techniques,
            titles: i.titles,
            first_seen: format_ms(i.first_seen),
            last_seen: format_ms(i.last_seen),
            alert_ids: i.alert_ids,
        }
    }
}
