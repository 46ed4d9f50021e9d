//! Wire types of the inventory and posture routes: devices as the fleet index sees them, fact
//! history, drift, events, groups, findings, audit runs and unmanaged sightings.

use std::collections::BTreeMap;

use garrison_core::format_ms;
use garrison_inventory::{DeviceRecord, risk::Risk};
use garrison_store::inventory::{
    DeviceDestination, DriftEvent, FactChange, Finding, FirmwarePolicy, Group, PostureRun,
    StoredDeviceEvent, UnmanagedEntry,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A device in a list or search result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceListItem {
    /// Device id (certificate CN, MQTT client id).
    pub id: String,
    /// Whether the quarantine profile applies.
    pub quarantined: bool,
    /// `token`, `claim` or `approval`.
    pub enrolled_via: String,
    /// Serial of its current certificate.
    pub current_serial: Option<String>,
    /// First enrollment (RFC 3339).
    pub created_at: String,
    /// Connected to the broker now.
    pub online: bool,
    /// Last message or connection (RFC 3339).
    pub last_seen: Option<String>,
    /// Last inventory report (RFC 3339).
    pub reported_at: Option<String>,
    /// Hardware maker.
    pub manufacturer: Option<String>,
    /// Hardware model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// OS id.
    pub os: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Device class: `constrained`, `embedded`, `rich` or `gateway`.
    pub class: Option<String>,
    /// Network-reachable listening ports (TCP and UDP).
    pub ports: Vec<u16>,
    /// Risk score 0–100.
    pub risk: u32,
    /// `low`, `medium` or `high`.
    pub risk_level: String,
    /// Open posture findings.
    pub open_findings: usize,
    /// Worst open finding's severity.
    pub worst_severity: Option<String>,
    /// Groups (static and dynamic).
    pub groups: Vec<String>,
    /// Operator tags.
    pub tags: BTreeMap<String, String>,
}

impl From<&DeviceRecord> for DeviceListItem {
    fn from(r: &DeviceRecord) -> Self {
        let s = r.summary.as_ref();
        let text = |f: fn(&garrison_store::inventory::DeviceSummary) -> &Option<String>| {
            s.and_then(|s| f(s).clone())
        };
        let mut ports: Vec<u16> = s
            .map(|s| s.tcp_ports.iter().chain(&s.udp_ports).copied().collect())
            .unwrap_or_default();
        ports.sort_unstable();
        ports.dedup();
        DeviceListItem {
            id: r.id.to_string(),
            quarantined: r.quarantined,
            enrolled_via: r.enrolled_via.as_str().to_owned(),
            current_serial: r.current_serial.clone(),
            created_at: format_ms(r.created_at),
            online: r.online(),
            last_seen: r.presence.as_ref().map(|p| format_ms(p.last_seen)),
            reported_at: r.reported_at.map(format_ms),
            manufacturer: text(|s| &s.manufacturer),
            model: text(|s| &s.model),
            firmware: text(|s| &s.firmware),
            os: text(|s| &s.os),
            os_version: text(|s| &s.os_version),
            class: text(|s| &s.class),
            ports,
            risk: r.risk.score,
            risk_level: r.risk.level.to_owned(),
            open_findings: r.findings.len(),
            worst_severity: r.worst_finding().map(|s| s.as_str().to_owned()),
            groups: r.groups().cloned().collect(),
            tags: r.tags.clone(),
        }
    }
}

impl DeviceListItem {
    /// The CSV header matching [`DeviceListItem::csv_row`].
    pub const CSV_HEADER: &'static [&'static str] = &[
        "id",
        "model",
        "manufacturer",
        "firmware",
        "os",
        "os_version",
        "class",
        "online",
        "quarantined",
        "last_seen",
        "reported_at",
        "ports",
        "risk",
        "risk_level",
        "open_findings",
        "worst_severity",
        "groups",
        "tags",
        "current_serial",
        "enrolled_via",
        "created_at",
    ];

    /// One CSV row.
    pub fn csv_row(&self) -> Vec<String> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            self.id.clone(),
            opt(&self.model),
            opt(&self.manufacturer),
            opt(&self.firmware),
            opt(&self.os),
            opt(&self.os_version),
            opt(&self.class),
            self.online.to_string(),
            self.quarantined.to_string(),
            opt(&self.last_seen),
            opt(&self.reported_at),
            self.ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            self.risk.to_string(),
            self.risk_level.clone(),
            self.open_findings.to_string(),
            opt(&self.worst_severity),
            self.groups.join(" "),
            self.tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            opt(&self.current_serial),
            self.enrolled_via.clone(),
            self.created_at.clone(),
        ]
    }
}

/// One contribution to a risk score.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RiskFactorView {
    /// `class`, `exposure`, `finding` or `impact`.
    pub kind: String,
    /// Points added (for `impact`: the multiplier × 100).
    pub points: u32,
    /// What it is.
    pub detail: String,
}

/// A risk score with its explanation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RiskView {
    /// 0–100.
    pub score: u32,
    /// `low`, `medium` or `high`.
    pub level: String,
    /// Every contribution.
    pub factors: Vec<RiskFactorView>,
}

impl From<&Risk> for RiskView {
    fn from(r: &Risk) -> Self {
        RiskView {
            score: r.score,
            level: r.level.to_owned(),
            factors: r
                .factors
                .iter()
                .map(|f| RiskFactorView {
                    kind: f.kind.to_owned(),
                    points: f.points,
                    detail: f.detail.clone(),
                })
                .collect(),
        }
    }
}

/// A device with everything known about it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetailView {
    /// The list fields.
    #[serde(flatten)]
    pub device: DeviceListItem,
    /// When a key rotation was requested and is still outstanding (RFC 3339).
    pub rotation_requested_at: Option<String>,
    /// Last change of its identity record (RFC 3339).
    pub updated_at: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// CPU architecture.
    pub architecture: Option<String>,
    /// Risky services found.
    pub risky_services: Vec<String>,
    /// SSH password authentication.
    pub ssh_password_auth: Option<bool>,
    /// Installed components in the SBOM.
    pub packages: Option<u32>,
    /// Interface addresses.
    pub addresses: Vec<String>,
    /// First seen (RFC 3339).
    pub first_seen: Option<String>,
    /// Last connection's source address.
    pub last_address: Option<String>,
    /// Reporting software.
    pub agent: Option<String>,
    /// Its version.
    pub agent_version: Option<String>,
    /// Latest telemetry as the device sent it (contract v1 `telemetry`).
    #[schema(value_type = Option<Object>)]
    pub telemetry: Option<serde_json::Value>,
    /// Highest impact of its groups.
    pub impact: Option<String>,
    /// The risk score with its explanation.
    pub risk_detail: RiskView,
    /// Open findings: check id and severity.
    pub findings: Vec<FindingRef>,
}

/// A finding named in a device view.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingRef {
    /// Check id.
    pub check: String,
    /// Severity.
    pub severity: String,
}

impl From<&DeviceRecord> for DeviceDetailView {
    fn from(r: &DeviceRecord) -> Self {
        let s = r.summary.clone().unwrap_or_default();
        let p = r.presence.as_ref();
        DeviceDetailView {
            device: r.into(),
            rotation_requested_at: None,
            updated_at: None,
            serial: s.serial,
            kernel: s.kernel,
            hostname: s.hostname,
            architecture: s.architecture,
            risky_services: s.risky_services,
            ssh_password_auth: s.ssh_password_auth,
            packages: s.packages,
            addresses: s.addresses,
            first_seen: p.map(|p| format_ms(p.first_seen)),
            last_address: p.and_then(|p| p.last_address.clone()),
            agent: p.and_then(|p| p.agent.clone()),
            agent_version: p.and_then(|p| p.agent_version.clone()),
            telemetry: p
                .and_then(|p| p.telemetry.as_ref())
                .and_then(|t| serde_json::to_value(t).ok()),
            impact: r.impact.map(|i| i.as_str().to_owned()),
            risk_detail: (&r.risk).into(),
            findings: r
                .findings
                .iter()
                .map(|(check, severity)| FindingRef {
                    check: check.clone(),
                    severity: severity.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

/// A device's last inventory report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InventoryView {
    /// When the server received it (RFC 3339).
    pub received_at: String,
    /// The report as the device sent it (contract v1 `inventory`, without the SBOM — see
    /// `/sbom`).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// One change in a device's fact history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FactChangeView {
    /// Fact name (`firmware.version`, `listening`, `package:openssl`).
    pub fact: String,
    /// When the server saw the change (RFC 3339).
    pub at: String,
    /// Previous value (absent: unknown, or the first report).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// New value (absent: now unknown).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<FactChange> for FactChangeView {
    fn from(c: FactChange) -> Self {
        FactChangeView {
            fact: c.fact,
            at: format_ms(c.at),
            before: c.before,
            after: c.after,
        }
    }
}

/// A configuration drift event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriftView {
    /// Sequence number.
    pub id: i64,
    /// Device.
    pub device: String,
    /// When (RFC 3339).
    pub at: String,
    /// Kind (`new_listening_port`, `firmware_downgrade`, …).
    pub kind: String,
    /// The fact that changed.
    pub fact: String,
    /// Severity.
    pub severity: String,
    /// One sentence.
    pub detail: String,
    /// Before.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// After.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<DriftEvent> for DriftView {
    fn from(d: DriftEvent) -> Self {
        DriftView {
            id: d.id,
            device: d.device.to_string(),
            at: format_ms(d.at),
            kind: d.drift.kind,
            fact: d.drift.fact,
            severity: d.drift.severity.as_str().to_owned(),
            detail: d.drift.detail,
            before: d.drift.before,
            after: d.drift.after,
        }
    }
}

/// A security event a device reported.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceEventView {
    /// Sequence number.
    pub id: i64,
    /// Device.
    pub device: String,
    /// When it happened, by the device's clock (RFC 3339).
    pub at: String,
    /// When the server received it (RFC 3339).
    pub received_at: String,
    /// Kind (`login_failed`, `file_changed`, …).
    pub kind: String,
    /// The event as sent (contract v1).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

impl From<StoredDeviceEvent> for DeviceEventView {
    fn from(e: StoredDeviceEvent) -> Self {
        DeviceEventView {
            id: e.id,
            device: e.event.device.to_string(),
            at: format_ms(e.event.at),
            received_at: format_ms(e.event.received_at),
            kind: e.event.kind,
            event: e.event.body,
        }
    }
}

/// A remote address a device reported in its telemetry.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationView {
    /// Device.
    pub device: String,
    /// The remote address.
    pub address: String,
    /// First report that listed it (RFC 3339).
    pub first_seen: String,
    /// Last report that listed it (RFC 3339).
    pub last_seen: String,
    /// Telemetry reports that listed it.
    pub reports: u64,
}

impl From<DeviceDestination> for DestinationView {
    fn from(d: DeviceDestination) -> Self {
        DestinationView {
            device: d.device.to_string(),
            address: d.address,
            first_seen: format_ms(d.seen.first_seen),
            last_seen: format_ms(d.seen.last_seen),
            reports: d.seen.reports,
        }
    }
}

/// Tag changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagUpdate {
    /// Tags to set (key → value).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Tag keys to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A device group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// `static` or `dynamic`.
    pub kind: String,
    /// The query of a dynamic group.
    pub query: Option<String>,
    /// `low`, `moderate`, `high` or `critical`.
    pub impact: Option<String>,
    /// Listening services members may have (`tcp/443`).
    pub allowed_services: Option<Vec<String>>,
    /// Current members.
    pub members: usize,
    /// Creator.
    pub created_by: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl GroupView {
    /// A view of a group with its member count.
    pub fn new(g: Group, members: usize) -> GroupView {
        GroupView {
            kind: if g.query.is_some() {
                "dynamic"
            } else {
                "static"
            }
            .to_owned(),
            name: g.name,
            description: g.description,
            query: g.query,
            impact: g.impact.map(|i| i.as_str().to_owned()),
            allowed_services: g.allowed_services,
            members,
            created_by: g.created_by,
            created_at: format_ms(g.created_at),
            updated_at: format_ms(g.updated_at),
        }
    }
}

/// A group to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// Name (creation only; 1–64 of `A-Z a-z 0-9 . _ -`).
    #[serde(default)]
    pub name: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// A device query makes the group dynamic (`model = cam-x and firmware < 2.1`).
    #[serde(default)]
    pub query: Option<String>,
    /// `low`, `moderate`, `high` or `critical`.
    #[serde(default)]
    pub impact: Option<String>,
    /// Listening services members may have (`tcp/443`, `udp/1900`).
    #[serde(default)]
    pub allowed_services: Option<Vec<String>>,
}

/// Static membership changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersBody {
    /// Devices to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Devices to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// What a membership change did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MembersChanged {
    /// Memberships added.
    pub added: u64,
    /// Memberships removed.
    pub removed: u64,
}

/// A posture finding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    /// Id.
    pub id: String,
    /// Check id.
    pub check: String,
    /// The check's title.
    pub title: String,
    /// Subject (a device id).
    pub subject: String,
    /// Device.
    pub device: Option<String>,
    /// Severity.
    pub severity: String,
    /// `open`, `suppressed` or `resolved`.
    pub status: String,
    /// What the check saw.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// First seen failing (RFC 3339).
    pub first_seen: String,
    /// Last seen failing (RFC 3339).
    pub last_seen: String,
    /// Resolved (RFC 3339).
    pub resolved_at: Option<String>,
    /// Times it came back after being resolved.
    pub reopened: i64,
    /// Why it is suppressed.
    pub suppressed_reason: Option<String>,
    /// Who suppressed it.
    pub suppressed_by: Option<String>,
    /// Until when (RFC 3339; absent: until lifted).
    pub suppressed_until: Option<String>,
    /// ETSI EN 303 645 provisions.
    pub etsi: Vec<String>,
    /// OWASP IoT Top 10 categories.
    pub owasp: Vec<String>,
    /// What to do.
    pub remediation: String,
}

impl From<Finding> for FindingView {
    fn from(f: Finding) -> Self {
        let check = garrison_posture::checks::check(&f.check);
        let suppression = f.suppression;
        FindingView {
            title: check.map(|c| c.title.to_owned()).unwrap_or_default(),
            etsi: check
                .map(|c| c.etsi.iter().map(|s| (*s).to_owned()).collect())
                .unwrap_or_default(),
            owasp: check
                .map(|c| c.owasp.iter().map(|s| (*s).to_owned()).collect())
                .unwrap_or_default(),
            remediation: check.map(|c| c.remediation.to_owned()).unwrap_or_default(),
            id: f.id,
            check: f.check,
            subject: f.subject,
            device: f.device.map(String::from),
            severity: f.severity.as_str().to_owned(),
            status: f.status.as_str().to_owned(),
            evidence: f.evidence,
            first_seen: format_ms(f.first_seen),
            last_seen: format_ms(f.last_seen),
            resolved_at: f.resolved_at.map(format_ms),
            reopened: f.reopened,
            suppressed_reason: suppression.as_ref().map(|s| s.reason.clone()),
            suppressed_by: suppression.as_ref().map(|s| s.by.clone()),
            suppressed_until: suppression.and_then(|s| s.until).map(format_ms),
        }
    }
}

impl FindingView {
    /// The CSV header matching [`FindingView::csv_row`].
    pub const CSV_HEADER: &'static [&'static str] = &[
        "id",
        "check",
        "severity",
        "status",
        "device",
        "first_seen",
        "last_seen",
        "resolved_at",
        "etsi",
        "owasp",
        "title",
        "evidence",
    ];

    /// One CSV row.
    pub fn csv_row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.check.clone(),
            self.severity.clone(),
            self.status.clone(),
            self.device.clone().unwrap_or_default(),
            self.first_seen.clone(),
            self.last_seen.clone(),
            self.resolved_at.clone().unwrap_or_default(),
            self.etsi.join(" "),
            self.owasp.join(" "),
            self.title.clone(),
            self.evidence.to_string(),
        ]
    }
}

/// A suppression.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressBody {
    /// Why the finding is accepted (required, for the record).
    pub reason: String,
    /// For how long (`30d`, `12h`); absent: until lifted.
    #[serde(default)]
    pub for_duration: Option<String>,
}

/// A built-in posture check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckView {
    /// Id.
    pub id: String,
    /// One line.
    pub title: String,
    /// Severity of its findings.
    pub severity: String,
    /// `device` or `fleet`.
    pub scope: String,
    /// Why it matters.
    pub rationale: String,
    /// What to do.
    pub remediation: String,
    /// ETSI EN 303 645 provisions.
    pub etsi: Vec<String>,
    /// OWASP IoT Top 10 categories.
    pub owasp: Vec<String>,
}

impl From<&garrison_posture::checks::Check> for CheckView {
    fn from(c: &garrison_posture::checks::Check) -> Self {
        CheckView {
            id: c.id.to_owned(),
            title: c.title.to_owned(),
            severity: c.severity.as_str().to_owned(),
            scope: match c.scope {
                garrison_posture::checks::Scope::Device => "device",
                garrison_posture::checks::Scope::Fleet => "fleet",
            }
            .to_owned(),
            rationale: c.rationale.to_owned(),
            remediation: c.remediation.to_owned(),
            etsi: c.etsi.iter().map(|s| (*s).to_owned()).collect(),
            owasp: c.owasp.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A posture audit run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// Id.
    pub id: String,
    /// `schedule` or `operator:<name>`.
    pub trigger: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: String,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Devices evaluated.
    pub devices: i64,
    /// Checks evaluated.
    pub checks: i64,
    /// Findings opened (or reopened).
    pub opened: i64,
    /// Findings resolved.
    pub resolved: i64,
    /// Open findings after the run.
    pub open: i64,
}

impl From<PostureRun> for RunView {
    fn from(r: PostureRun) -> Self {
        RunView {
            id: r.id,
            trigger: r.trigger,
            started_at: format_ms(r.started_at),
            finished_at: format_ms(r.finished_at),
            duration_ms: r.finished_at - r.started_at,
            devices: r.devices,
            checks: r.checks,
            opened: r.opened,
            resolved: r.resolved,
            open: r.open,
        }
    }
}

/// A model's minimum firmware version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FirmwarePolicyView {
    /// Model.
    pub model: String,
    /// Minimum version.
    pub minimum_version: String,
    /// Who set it.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
}

impl From<FirmwarePolicy> for FirmwarePolicyView {
    fn from(p: FirmwarePolicy) -> Self {
        FirmwarePolicyView {
            model: p.model,
            minimum_version: p.minimum_version,
            updated_by: p.updated_by,
            updated_at: format_ms(p.updated_at),
        }
    }
}

/// A minimum firmware version to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwarePolicyBody {
    /// Devices of the model must run at least this version.
    pub minimum_version: String,
}

/// Something unmanaged that showed itself.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnmanagedView {
    /// `broker_connect`, `peer_address` or `login_source`.
    pub kind: String,
    /// The identity it presented (client id, certificate CN).
    pub identity: String,
    /// Its address.
    pub address: String,
    /// First sighting (RFC 3339).
    pub first_seen: String,
    /// Last sighting (RFC 3339).
    pub last_seen: String,
    /// Sightings.
    pub count: i64,
    /// Why it was refused, or which device saw it.
    pub detail: String,
}

impl From<UnmanagedEntry> for UnmanagedView {
    fn from(u: UnmanagedEntry) -> Self {
        UnmanagedView {
            kind: u.kind.as_str().to_owned(),
            identity: u.identity,
            address: u.address,
            first_seen: format_ms(u.first_seen),
            last_seen: format_ms(u.last_seen),
            count: u.count,
            detail: u.detail,
        }
    }
}

/// A field of the device query language.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueryFieldView {
    /// Name as queries write it.
    pub name: String,
    /// `text`, `version`, `number` or `bool`.
    pub kind: String,
    /// Written `name:KEY`.
    pub keyed: bool,
    /// What it holds.
    pub doc: String,
}
