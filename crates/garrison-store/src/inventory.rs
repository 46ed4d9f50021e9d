//! What the store keeps about what devices are and do: their last inventory report with a
//! searchable summary, the history of every fact, configuration drift, presence (first/last
//! seen, online), raw device events, tags, groups, posture findings and runs, firmware
//! policies, and sightings of unmanaged devices.
//!
//! Device-originated writes (reports, presence, events, sightings) come in batches and carry no
//! audit record: they are what devices said, kept in their own tables, and far too many for
//! the hash chain. Operator actions (tags, groups, suppressions, policies, on-demand runs) are
//! audited like everything else.

use std::collections::BTreeMap;

use async_trait::async_trait;
use garrison_contract::{Inventory, Telemetry};
use garrison_core::{DeviceId, Impact, Severity, TenantId, UnixMillis, audit::AuditRecord};
use serde::{Deserialize, Serialize};

use crate::{Page, PageRequest, StoreResult, identity::Device};

/// The searchable summary of a device's last inventory, kept beside it so the fleet index can
/// be loaded without parsing every full report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// Maker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model designation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// OS id (`debian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Kernel release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// CPU architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Device class (reported, or derived from capability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Non-loopback listening TCP ports, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_ports: Vec<u16>,
    /// Non-loopback listening UDP ports, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udp_ports: Vec<u16>,
    /// Risky services found (`telnet`, `ftp`, `upnp`, `adb`, …), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risky_services: Vec<String>,
    /// SSH password authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_password_auth: Option<bool>,
    /// Installed components in the SBOM (absent: no SBOM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<u32>,
    /// Digest of the SBOM's package list, so a report whose software did not change is
    /// diffed without reading the previous SBOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_digest: Option<String>,
    /// Interface addresses without prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// A device's last inventory report as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InventorySnapshot {
    /// Tenant.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// When the server received it.
    pub received_at: UnixMillis,
    /// The report (with its SBOM only when asked for).
    pub inventory: Inventory,
    /// Its summary.
    pub summary: DeviceSummary,
}

/// One fact's change, as recorded in the fact history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactChange {
    /// Fact name (`firmware.version`, `listening`, `services.telnet`).
    pub fact: String,
    /// When the server saw the change.
    pub at: UnixMillis,
    /// Previous value (absent: unknown or first report).
    pub before: Option<serde_json::Value>,
    /// New value (absent: now unknown).
    pub after: Option<serde_json::Value>,
}

/// A security-relevant configuration change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDrift {
    /// Kind (`new_listening_port`, `firmware_downgrade`, …).
    pub kind: String,
    /// The fact that changed.
    pub fact: String,
    /// How bad the change is.
    pub severity: Severity,
    /// What it was.
    pub before: Option<serde_json::Value>,
    /// What it is.
    pub after: Option<serde_json::Value>,
    /// One sentence for people.
    pub detail: String,
}

/// A recorded drift event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftEvent {
    /// Sequence number (increasing).
    pub id: i64,
    /// Tenant.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// When the server saw it.
    pub at: UnixMillis,
    /// The drift.
    pub drift: NewDrift,
}

/// An inventory report to record with its consequences, in one transaction.
#[derive(Debug, Clone)]
pub struct InventoryWrite {
    /// Tenant.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// When the server received it.
    pub received_at: UnixMillis,
    /// The report.
    pub inventory: Inventory,
    /// Its summary.
    pub summary: DeviceSummary,
    /// Facts that changed since the previous report.
    pub changes: Vec<FactChange>,
    /// Drift detected among those changes.
    pub drift: Vec<NewDrift>,
}

/// A presence observation: a device was seen (any message), connected or disconnected.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceUpdate {
    /// Tenant.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// When.
    pub at: UnixMillis,
    /// Connected (`Some(true)`), disconnected (`Some(false)`), or just seen (`None`).
    pub online: Option<bool>,
    /// Source address of the connection.
    pub address: Option<String>,
    /// The agent and its version, from a birth message.
    pub agent: Option<(String, String)>,
    /// The latest telemetry.
    pub telemetry: Option<Telemetry>,
    /// Remote addresses the device's telemetry reported since the last update, by address.
    pub destinations: BTreeMap<String, DestinationSeen>,
}

/// When and how often a device reported one remote address in its telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationSeen {
    /// First report that listed it.
    pub first_seen: UnixMillis,
    /// Last report that listed it.
    pub last_seen: UnixMillis,
    /// Reports that listed it.
    pub reports: u64,
}

impl DestinationSeen {
    /// One report at `at`.
    pub fn once(at: UnixMillis) -> DestinationSeen {
        DestinationSeen {
            first_seen: at,
            last_seen: at,
            reports: 1,
        }
    }

    /// Adds `other`'s reports to these.
    pub fn merge(&mut self, other: DestinationSeen) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.reports = self.reports.saturating_add(other.reports);
    }
}

/// A remote address a device reported in its telemetry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDestination {
    /// The device.
    pub device: DeviceId,
    /// The remote address, as the device reported it.
    pub address: String,
    /// When and how often.
    pub seen: DestinationSeen,
}

/// What is known of a device's presence.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    /// First message or connection.
    pub first_seen: UnixMillis,
    /// Last message or connection.
    pub last_seen: UnixMillis,
    /// Connected now (as of the last update).
    pub online: bool,
    /// Last source address.
    pub last_address: Option<String>,
    /// Agent name.
    pub agent: Option<String>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Latest telemetry.
    pub telemetry: Option<Telemetry>,
}

/// Everything the fleet index holds about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetEntry {
    /// The device's identity record.
    pub device: Device,
    /// Its last inventory summary and when it was received.
    pub summary: Option<(UnixMillis, DeviceSummary)>,
    /// Presence.
    pub presence: Option<Presence>,
    /// Operator tags.
    pub tags: BTreeMap<String, String>,
    /// Static groups it is a member of.
    pub groups: Vec<String>,
}

/// A raw device event to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeviceEvent {
    /// Tenant.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// When the server received it.
    pub received_at: UnixMillis,
    /// When it happened (device clock).
    pub at: UnixMillis,
    /// Kind (`login_failed`).
    pub kind: String,
    /// The event as the device sent it.
    pub body: serde_json::Value,
}

/// A kept device event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDeviceEvent {
    /// Sequence number (increasing).
    pub id: i64,
    /// The event.
    pub event: NewDeviceEvent,
}

/// A group of devices: static (explicit members) or dynamic (a query over the inventory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Tenant.
    pub tenant: TenantId,
    /// Name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The query of a dynamic group (absent: static).
    pub query: Option<String>,
    /// Impact of a compromise of its members.
    pub impact: Option<Impact>,
    /// Listening services its members may have (`tcp/443`); absent: no allow-list.
    pub allowed_services: Option<Vec<String>>,
    /// Creator.
    pub created_by: String,
    /// Created.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingStatus {
    /// The check fails now.
    Open,
    /// Failing, but an operator accepted it (with a reason, until a time).
    Suppressed,
    /// The check passed again.
    Resolved,
}

impl FindingStatus {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Suppressed => "suppressed",
            FindingStatus::Resolved => "resolved",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<FindingStatus> {
        [
            FindingStatus::Open,
            FindingStatus::Suppressed,
            FindingStatus::Resolved,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// An operator's acceptance of a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// When.
    pub at: UnixMillis,
    /// Until when (absent: until lifted).
    pub until: Option<UnixMillis>,
}

/// A posture finding: one check failing for one subject (a device, or a fleet-wide thing
/// such as a shared credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Id (UUIDv7).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Check id (`ssh-password-auth`).
    pub check: String,
    /// What it is about: a device id, or a fleet key (`credential:ab12…`).
    pub subject: String,
    /// The device, for device findings.
    pub device: Option<DeviceId>,
    /// Severity.
    pub severity: Severity,
    /// Status.
    pub status: FindingStatus,
    /// What the check saw.
    pub evidence: serde_json::Value,
    /// First seen failing.
    pub first_seen: UnixMillis,
    /// Last seen failing.
    pub last_seen: UnixMillis,
    /// When it was resolved.
    pub resolved_at: Option<UnixMillis>,
    /// Times it came back after being resolved.
    pub reopened: i64,
    /// The operator's acceptance, if suppressed (kept after it lapses, for the record).
    pub suppression: Option<Suppression>,
}

/// A check failing for a subject, as an audit run saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Check id.
    pub check: String,
    /// Subject.
    pub subject: String,
    /// Device, for device findings.
    pub device: Option<DeviceId>,
    /// Severity.
    pub severity: Severity,
    /// Evidence.
    pub evidence: serde_json::Value,
}

/// The result of an evaluation to reconcile with the stored findings: within `checks` (and,
/// when `devices` is given, only for those devices' subjects), every observation opens or
/// refreshes a finding, and every unresolved finding not observed is resolved.
#[derive(Debug, Clone)]
pub struct FindingsSync {
    /// Tenant.
    pub tenant: TenantId,
    /// The checks that were evaluated.
    pub checks: Vec<String>,
    /// Only these devices were evaluated (absent: the whole fleet).
    pub devices: Option<Vec<DeviceId>>,
    /// What failed.
    pub observations: Vec<Observation>,
    /// When.
    pub at: UnixMillis,
}

/// What a [`FindingsSync`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindingsDelta {
    /// New findings.
    pub opened: u64,
    /// Resolved findings that failed again.
    pub reopened: u64,
    /// Findings still failing.
    pub still_open: u64,
    /// Findings that passed.
    pub resolved: u64,
    /// Suppressions that lapsed.
    pub unsuppressed: u64,
}

/// Which findings to list.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    /// Only this status.
    pub status: Option<FindingStatus>,
    /// Only this check.
    pub check: Option<String>,
    /// Only this device.
    pub device: Option<DeviceId>,
    /// Only this severity or worse.
    pub min_severity: Option<Severity>,
}

/// A posture audit run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostureRun {
    /// Id (UUIDv7).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// `schedule` or `operator:<name>`.
    pub trigger: String,
    /// Start.
    pub started_at: UnixMillis,
    /// End.
    pub finished_at: UnixMillis,
    /// Devices evaluated.
    pub devices: i64,
    /// Checks evaluated.
    pub checks: i64,
    /// What changed.
    pub opened: i64,
    /// Resolved.
    pub resolved: i64,
    /// Open (not suppressed) findings after the run.
    pub open: i64,
}

/// A minimum firmware version for a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwarePolicy {
    /// Model designation.
    pub model: String,
    /// Devices of this model must run at least this version.
    pub minimum_version: String,
    /// Who set it.
    pub updated_by: String,
    /// When.
    pub updated_at: UnixMillis,
}

/// How an unmanaged device showed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SightingKind {
    /// It tried to connect to the broker and was refused.
    BrokerConnect,
    /// A managed device reported talking to an address no managed device has.
    PeerAddress,
    /// A login to a managed device came from an address no managed device has.
    LoginSource,
}

impl SightingKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            SightingKind::BrokerConnect => "broker_connect",
            SightingKind::PeerAddress => "peer_address",
            SightingKind::LoginSource => "login_source",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<SightingKind> {
        [
            SightingKind::BrokerConnect,
            SightingKind::PeerAddress,
            SightingKind::LoginSource,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One sighting of something unmanaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// Tenant.
    pub tenant: TenantId,
    /// How it showed itself.
    pub kind: SightingKind,
    /// The identity it presented (client id, certificate CN), or empty.
    pub identity: String,
    /// Its address, or empty.
    pub address: String,
    /// When.
    pub at: UnixMillis,
    /// Why it was refused, or which device saw it.
    pub detail: String,
}

/// Sightings of one unmanaged identity/address, folded together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmanagedEntry {
    /// How it showed itself.
    pub kind: SightingKind,
    /// Identity presented.
    pub identity: String,
    /// Address.
    pub address: String,
    /// First sighting.
    pub first_seen: UnixMillis,
    /// Last sighting.
    pub last_seen: UnixMillis,
    /// Number of sightings.
    pub count: i64,
    /// Detail of the last one.
    pub detail: String,
}

/// Inventory storage; every [`Store`](crate::Store) implements it.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// A device's last inventory (with its SBOM when `with_software`).
    async fn inventory_get(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        with_software: bool,
    ) -> StoreResult<Option<InventorySnapshot>>;

    /// Last inventories ordered by device id, without SBOMs (the audit reads the fleet in
    /// pages).
    async fn inventories_page(
        &self,
        tenant: &TenantId,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> StoreResult<Vec<InventorySnapshot>>;

    /// Records inventory reports with their fact changes and drift, in one transaction.
    async fn inventory_record_batch(&self, batch: &[InventoryWrite]) -> StoreResult<()>;

    /// A device's fact history, newest first, optionally of one fact; the cursor is the
    /// history entry's sequence number.
    async fn fact_history(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        fact: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<FactChange>>;

    /// Drift events, newest first, optionally of one device.
    async fn drift_list(
        &self,
        tenant: &TenantId,
        device: Option<&DeviceId>,
        page: &PageRequest,
    ) -> StoreResult<Page<DriftEvent>>;

    /// Records presence observations (first/last seen, online, address, agent, telemetry).
    async fn presence_record_batch(&self, updates: &[PresenceUpdate]) -> StoreResult<()>;

    /// Everything the fleet index needs, for every device of the tenant.
    async fn fleet_entries(&self, tenant: &TenantId) -> StoreResult<Vec<FleetEntry>>;

    /// Remote addresses devices (or one device) reported in telemetry last seen at or after
    /// `since`, ordered by device and address; the cursor is the last row's `device address`.
    async fn device_destinations_list(
        &self,
        tenant: &TenantId,
        device: Option<&DeviceId>,
        since: UnixMillis,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceDestination>>;

    /// Keeps raw device events.
    async fn device_events_append(&self, events: &[NewDeviceEvent]) -> StoreResult<()>;

    /// Device events, newest first, optionally of one device.
    async fn device_events_list(
        &self,
        tenant: &TenantId,
        device: Option<&DeviceId>,
        page: &PageRequest,
    ) -> StoreResult<Page<StoredDeviceEvent>>;

    /// Sets and removes a device's tags; returns the tags now.
    async fn device_tags_update(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        audit: AuditRecord,
    ) -> StoreResult<BTreeMap<String, String>>;

    /// Creates a group; [`StoreError::Conflict`](crate::StoreError::Conflict) if the name is
    /// taken.
    async fn group_create(&self, group: Group, audit: AuditRecord) -> StoreResult<Group>;

    /// Replaces a group's description, query, impact and allow-list.
    async fn group_update(&self, group: Group, audit: AuditRecord) -> StoreResult<Group>;

    /// A group.
    async fn group_get(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<Group>>;

    /// Groups ordered by name.
    async fn groups_list(&self, tenant: &TenantId) -> StoreResult<Vec<Group>>;

    /// Deletes a group and its memberships.
    async fn group_delete(
        &self,
        tenant: &TenantId,
        name: &str,
        audit: AuditRecord,
    ) -> StoreResult<Group>;

    /// Adds devices to (or, with `add = false`, removes them from) a static group; returns the
    /// number of memberships changed.
    async fn group_members_change(
        &self,
        tenant: &TenantId,
        name: &str,
        devices: Vec<DeviceId>,
        add: bool,
        audit: AuditRecord,
    ) -> StoreResult<u64>;

    /// Reconciles findings with an evaluation (see [`FindingsSync`]).
    async fn findings_sync(&self, sync: FindingsSync) -> StoreResult<FindingsDelta>;

    /// A finding.
    async fn finding_get(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Finding>>;

    /// Findings ordered by id (oldest first).
    async fn findings_list(
        &self,
        tenant: &TenantId,
        filter: &FindingFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Finding>>;

    /// Counts of unresolved findings per device: (open, worst open severity).
    async fn findings_open_by_device(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<(DeviceId, Vec<(String, Severity)>)>>;

    /// Suppresses a finding (or, with `suppression = None`, lifts a suppression).
    async fn finding_suppress(
        &self,
        tenant: &TenantId,
        id: &str,
        suppression: Option<Suppression>,
        audit: AuditRecord,
    ) -> StoreResult<Finding>;

    /// Records a finished audit run (audited when an operator asked for it).
    async fn posture_run_record(
        &self,
        run: PostureRun,
        audit: Option<AuditRecord>,
    ) -> StoreResult<()>;

    /// Runs, newest first.
    async fn posture_runs_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<PostureRun>>;

    /// Sets (or, with `minimum = None`, removes) the minimum firmware version of a model.
    async fn firmware_policy_set(
        &self,
        tenant: &TenantId,
        model: &str,
        minimum: Option<&str>,
        by: &str,
        audit: AuditRecord,
    ) -> StoreResult<Option<FirmwarePolicy>>;

    /// Firmware policies ordered by model.
    async fn firmware_policies(&self, tenant: &TenantId) -> StoreResult<Vec<FirmwarePolicy>>;

    /// Records sightings of unmanaged devices.
    async fn unmanaged_record_batch(&self, sightings: &[Sighting]) -> StoreResult<()>;

    /// Deletes fact history, drift and device events recorded before `before`, and unmanaged
    /// sightings and telemetry destinations last seen before it; returns the rows deleted.
    async fn inventory_prune(&self, tenant: &TenantId, before: UnixMillis) -> StoreResult<u64>;

    /// Unmanaged sightings, most recent first.
    async fn unmanaged_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<UnmanagedEntry>>;
}
