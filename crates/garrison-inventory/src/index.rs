//! The fleet index: every device's searchable state in memory, so a query over 100,000
//! devices is a scan of plain structs, not of SQL rows.
//!
//! The index is loaded from the store at start and kept current by the calls that change the
//! store in this process (reports, presence, tags, groups, findings, identity events). Another
//! replica's changes arrive by [`FleetIndex::reload`], which the server runs periodically; the
//! store stays the truth. Dynamic group memberships, the impact a device inherits from its
//! groups and its risk score are derived here whenever their inputs change.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use garrison_core::{DeviceId, Impact, Severity, TenantId, UnixMillis, device::EnrollmentMethod};
use garrison_query::{FieldId, FieldKind, FieldSpec, Query, QueryError, Schema, Subject, Value};
use garrison_store::{
    Store, StoreResult,
    identity::Device,
    inventory::{DeviceSummary, FleetEntry, Group, Presence, PresenceUpdate},
};

use crate::risk::{self, Risk};

/// What the index holds about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Id.
    pub id: DeviceId,
    /// Quarantine profile on.
    pub quarantined: bool,
    /// How it first enrolled.
    pub enrolled_via: EnrollmentMethod,
    /// Current certificate serial.
    pub current_serial: Option<String>,
    /// First enrollment.
    pub created_at: UnixMillis,
    /// Last inventory summary.
    pub summary: Option<DeviceSummary>,
    /// When the last inventory arrived.
    pub reported_at: Option<UnixMillis>,
    /// Presence.
    pub presence: Option<Presence>,
    /// Operator tags.
    pub tags: BTreeMap<String, String>,
    /// Static groups it belongs to.
    pub static_groups: Vec<String>,
    /// Dynamic groups whose query it matches.
    pub dynamic_groups: Vec<String>,
    /// Open posture findings: check and severity.
    pub findings: Vec<(String, Severity)>,
    /// Highest impact among its groups.
    pub impact: Option<Impact>,
    /// Risk score.
    pub risk: Risk,
}

impl DeviceRecord {
    fn new(device: &Device) -> DeviceRecord {
        DeviceRecord {
            id: device.id.clone(),
            quarantined: device.quarantined,
            enrolled_via: device.enrolled_via,
            current_serial: device.current_serial.clone(),
            created_at: device.created_at,
            summary: None,
            reported_at: None,
            presence: None,
            tags: BTreeMap::new(),
            static_groups: Vec::new(),
            dynamic_groups: Vec::new(),
            findings: Vec::new(),
            impact: None,
            risk: Risk::unknown(),
        }
    }

    /// Whether the device is connected (as of the last presence update).
    pub fn online(&self) -> bool {
        self.presence.as_ref().is_some_and(|p| p.online)
    }

    /// Every group it belongs to, static then dynamic.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.static_groups.iter().chain(&self.dynamic_groups)
    }

    /// Worst open finding.
    pub fn worst_finding(&self) -> Option<Severity> {
        self.findings.iter().map(|(_, s)| *s).max()
    }
}

/// Device query fields, in [`FieldId`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
enum Field {
    Id,
    Model,
    Manufacturer,
    Serial,
    Firmware,
    Os,
    OsVersion,
    Kernel,
    Hostname,
    Arch,
    Class,
    Online,
    Quarantined,
    EnrolledVia,
    Port,
    TcpPort,
    UdpPort,
    Service,
    SshPasswordAuth,
    Packages,
    Group,
    Tag,
    Risk,
    Findings,
    Finding,
    Severity,
    Agent,
    AgentVersion,
    Address,
    Reported,
}

const FIELDS: &[(Field, &str, FieldKind, bool, &str)] = &[
    (
        Field::Id,
        "id",
        FieldKind::Text,
        false,
        "device id (certificate CN)",
    ),
    (
        Field::Model,
        "model",
        FieldKind::Text,
        false,
        "hardware model",
    ),
    (
        Field::Manufacturer,
        "manufacturer",
        FieldKind::Text,
        false,
        "hardware maker",
    ),
    (
        Field::Serial,
        "serial",
        FieldKind::Text,
        false,
        "hardware serial number",
    ),
    (
        Field::Firmware,
        "firmware",
        FieldKind::Version,
        false,
        "firmware version",
    ),
    (
        Field::Os,
        "os",
        FieldKind::Text,
        false,
        "OS id (debian, alpine, openwrt)",
    ),
    (
        Field::OsVersion,
        "os_version",
        FieldKind::Version,
        false,
        "OS version",
    ),
    (
        Field::Kernel,
        "kernel",
        FieldKind::Version,
        false,
        "kernel release",
    ),
    (
        Field::Hostname,
        "hostname",
        FieldKind::Text,
        false,
        "host name",
    ),
    (
        Field::Arch,
        "arch",
        FieldKind::Text,
        false,
        "CPU architecture",
    ),
    (
        Field::Class,
        "class",
        FieldKind::Text,
        false,
        "constrained, embedded, rich or gateway",
    ),
    (
        Field::Online,
        "online",
        FieldKind::Bool,
        false,
        "connected to the broker now",
    ),
    (
        Field::Quarantined,
        "quarantined",
        FieldKind::Bool,
        false,
        "quarantine profile on",
    ),
    (
        Field::EnrolledVia,
        "enrolled_via",
        FieldKind::Text,
        false,
        "token, claim or approval",
    ),
    (
        Field::Port,
        "port",
        FieldKind::Number,
        false,
        "network-reachable listening port (TCP or UDP)",
    ),
    (
        Field::TcpPort,
        "tcp_port",
        FieldKind::Number,
        false,
        "network-reachable listening TCP port",
    ),
    (
        Field::UdpPort,
        "udp_port",
        FieldKind::Number,
        false,
        "network-reachable listening UDP port",
    ),
    (
        Field::Service,
        "service",
        FieldKind::Text,
        false,
        "risky service found (telnet, ftp, upnp, adb, …)",
    ),
    (
        Field::SshPasswordAuth,
        "ssh_password_auth",
        FieldKind::Bool,
        false,
        "SSH accepts passwords",
    ),
    (
        Field::Packages,
        "packages",
        FieldKind::Number,
        false,
        "installed components in the SBOM",
    ),
    (
        Field::Group,
        "group",
        FieldKind::Text,
        false,
        "group membership (static or dynamic)",
    ),
    (
        Field::Tag,
        "tag",
        FieldKind::Text,
        true,
        "operator tag, tag:KEY",
    ),
    (
        Field::Risk,
        "risk",
        FieldKind::Number,
        false,
        "risk score 0–100",
    ),
    (
        Field::Findings,
        "findings",
        FieldKind::Number,
        false,
        "number of open findings",
    ),
    (
        Field::Finding,
        "finding",
        FieldKind::Text,
        false,
        "check id of an open finding",
    ),
    (
        Field::Severity,
        "severity",
        FieldKind::Text,
        false,
        "worst open finding's severity",
    ),
    (
        Field::Agent,
        "agent",
        FieldKind::Text,
        false,
        "reporting software",
    ),
    (
        Field::AgentVersion,
        "agent_version",
        FieldKind::Version,
        false,
        "its version",
    ),
    (
        Field::Address,
        "address",
        FieldKind::Text,
        false,
        "interface or connection address",
    ),
    (
        Field::Reported,
        "reported",
        FieldKind::Bool,
        false,
        "has sent an inventory",
    ),
];

/// The schema of device queries (shared by search, dynamic groups and rollouts).
pub fn device_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new(
            FIELDS
                .iter()
                .map(|&(_, name, kind, keyed, doc)| FieldSpec {
                    name,
                    kind,
                    keyed,
                    doc,
                })
                .collect(),
        )
    })
}

fn field_of(id: FieldId) -> Option<Field> {
    FIELDS.get(usize::from(id.0)).map(|f| f.0)
}

impl Subject for DeviceRecord {
    fn any_value(
        &self,
        field: FieldId,
        key: Option<&str>,
        f: &mut dyn FnMut(Value<'_>) -> bool,
    ) -> bool {
        let Some(field) = field_of(field) else {
            return false;
        };
        let s = self.summary.as_ref();
        let text = |v: Option<&String>, f: &mut dyn FnMut(Value<'_>) -> bool| {
            v.is_some_and(|v| f(Value::Text(v)))
        };
        let ports = |list: &[u16], f: &mut dyn FnMut(Value<'_>) -> bool| {
            list.iter().any(|p| f(Value::Number(f64::from(*p))))
        };
        match field {
            Field::Id => f(Value::Text(self.id.as_str())),
            Field::Model => text(s.and_then(|s| s.model.as_ref()), f),
            Field::Manufacturer => text(s.and_then(|s| s.manufacturer.as_ref()), f),
            Field::Serial => text(s.and_then(|s| s.serial.as_ref()), f),
            Field::Firmware => text(s.and_then(|s| s.firmware.as_ref()), f),
            Field::Os => text(s.and_then(|s| s.os.as_ref()), f),
            Field::OsVersion => text(s.and_then(|s| s.os_version.as_ref()), f),
            Field::Kernel => text(s.and_then(|s| s.kernel.as_ref()), f),
            Field::Hostname => text(s.and_then(|s| s.hostname.as_ref()), f),
            Field::Arch => text(s.and_then(|s| s.architecture.as_ref()), f),
            Field::Class => text(s.and_then(|s| s.class.as_ref()), f),
            Field::Online => f(Value::Bool(self.online())),
            Field::Quarantined => f(Value::Bool(self.quarantined)),
            Field::EnrolledVia => f(Value::Text(self.enrolled_via.as_str())),
            Field::Port => s.is_some_and(|s| ports(&s.tcp_ports, f) || ports(&s.udp_ports, f)),
            Field::TcpPort => s.is_some_and(|s| ports(&s.tcp_ports, f)),
            Field::UdpPort => s.is_some_and(|s| ports(&s.udp_ports, f)),
            Field::Service => s.is_some_and(|s| s.risky_services.iter().any(|v| f(Value::Text(v)))),
            Field::SshPasswordAuth => s
                .and_then(|s| s.ssh_password_auth)
                .is_some_and(|b| f(Value::Bool(b))),
            Field::Packages => s
                .and_then(|s| s.packages)
                .is_some_and(|n| f(Value::Number(f64::from(n)))),
            Field::Group => self.groups().any(|g| f(Value::Text(g))),
            Field::Tag => key
                .and_then(|k| self.tags.get(k))
                .is_some_and(|v| f(Value::Text(v))),
            Field::Risk => f(Value::Number(f64::from(self.risk.score))),
            Field::Findings => f(Value::Number(self.findings.len() as f64)),
            Field::Finding => self.findings.iter().any(|(c, _)| f(Value::Text(c))),
            Field::Severity => self
                .worst_finding()
                .is_some_and(|s| f(Value::Text(s.as_str()))),
            Field::Agent => text(self.presence.as_ref().and_then(|p| p.agent.as_ref()), f),
            Field::AgentVersion => text(
                self.presence
                    .as_ref()
                    .and_then(|p| p.agent_version.as_ref()),
                f,
            ),
            Field::Address => {
                s.is_some_and(|s| s.addresses.iter().any(|a| f(Value::Text(a))))
                    || text(
                        self.presence.as_ref().and_then(|p| p.last_address.as_ref()),
                        f,
                    )
            }
            Field::Reported => f(Value::Bool(self.summary.is_some())),
        }
    }
}

/// Why a group definition is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupQueryError {
    /// The query does not parse.
    #[error("{0}")]
    Query(#[from] QueryError),
    /// Dynamic groups may not depend on what groups decide.
    #[error(
        "a dynamic group's query cannot use the `{0}` field: it depends on group membership (through impact levels and allow-lists); name the devices' facts or tags instead"
    )]
    UsesDerived(&'static str),
}

/// Fields whose values depend on group membership, which dynamic groups therefore cannot use.
const DERIVED_FIELDS: &[&str] = &["group", "risk", "findings", "finding", "severity"];

/// Compiles a dynamic group's query.
pub fn compile_group_query(text: &str) -> Result<Query, GroupQueryError> {
    let query = Query::parse(text, device_schema())?;
    for name in DERIVED_FIELDS {
        if device_schema()
            .field_id(name)
            .is_some_and(|id| query.uses_field(id))
        {
            return Err(GroupQueryError::UsesDerived(name));
        }
    }
    Ok(query)
}

struct GroupDef {
    group: Group,
    query: Option<Query>,
}

#[derive(Default)]
struct State {
    devices: BTreeMap<DeviceId, DeviceRecord>,
    groups: BTreeMap<String, GroupDef>,
    /// Address → device, for telling managed peers from unmanaged ones.
    addresses: HashMap<String, DeviceId>,
    /// Device → the addresses it put in `addresses`, so they can be taken out again.
    addresses_of: HashMap<DeviceId, Vec<String>>,
}

impl State {
    fn derive(&self, record: &mut DeviceRecord) {
        record.dynamic_groups = self
            .groups
            .values()
            .filter(|g| g.query.as_ref().is_some_and(|q| q.matches(&*record)))
            .map(|g| g.group.name.clone())
            .collect();
        record.impact = record
            .groups()
            .filter_map(|name| self.groups.get(name).and_then(|g| g.group.impact))
            .max();
        record.risk = risk::score(record.summary.as_ref(), &record.findings, record.impact);
    }

    /// Replaces the addresses indexed for `record` with its current ones (interface
    /// addresses are bounded per device; a device's old addresses go when it reports new ones).
    fn index_addresses(&mut self, record: &DeviceRecord) {
        if let Some(old) = self.addresses_of.remove(&record.id) {
            for a in old {
                if self.addresses.get(&a) == Some(&record.id) {
                    self.addresses.remove(&a);
                }
            }
        }
        let current: Vec<String> = record
            .summary
            .iter()
            .flat_map(|s| s.addresses.iter())
            .chain(record.presence.iter().flat_map(|p| p.last_address.iter()))
            .take(crate::facts::MAX_ADDRESSES + 1)
            .cloned()
            .collect();
        for a in &current {
            self.addresses.insert(a.clone(), record.id.clone());
        }
        self.addresses_of.insert(record.id.clone(), current);
    }

    /// Applies `change` to a device's record and derives memberships, impact and risk.
    fn update(&mut self, id: &DeviceId, change: impl FnOnce(&mut DeviceRecord)) -> bool {
        let Some(mut record) = self.devices.remove(id) else {
            return false;
        };
        change(&mut record);
        self.derive(&mut record);
        self.index_addresses(&record);
        self.devices.insert(id.clone(), record);
        true
    }

    fn rederive_all(&mut self) {
        let ids: Vec<DeviceId> = self.devices.keys().cloned().collect();
        for id in ids {
            self.update(&id, |_| {});
        }
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// Matching devices, ordered by id.
    pub items: Vec<DeviceRecord>,
    /// Id to continue after, if more may match.
    pub next: Option<String>,
}

/// The in-memory fleet. Cheap to share (`Arc`); reads take a read lock for the length of one
/// scan.
pub struct FleetIndex {
    tenant: TenantId,
    state: RwLock<State>,
}

impl FleetIndex {
    /// An empty index for `tenant`.
    pub fn new(tenant: TenantId) -> FleetIndex {
        FleetIndex {
            tenant,
            state: RwLock::new(State::default()),
        }
    }

    /// The tenant it indexes.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the index with the store's current state.
    pub async fn reload(&self, store: &dyn Store) -> StoreResult<usize> {
        let entries = store.fleet_entries(&self.tenant).await?;
        let groups = store.groups_list(&self.tenant).await?;
        let findings = store.findings_open_by_device(&self.tenant).await?;
        let mut state = State::default();
        for group in groups {
            // A stored query that no longer compiles (a field was renamed) matches nothing
            // rather than stopping the server; the API shows the group with its query.
            let query = group.query.as_deref().and_then(|q| match compile_group_query(q) {
                Ok(q) => Some(q),
                Err(e) => {
                    tracing::warn!(group = %group.name, error = %e, "A dynamic group's query no longer compiles");
                    None
                }
            });
            state
                .groups
                .insert(group.name.clone(), GroupDef { group, query });
        }
        let mut findings: HashMap<DeviceId, Vec<(String, Severity)>> =
            findings.into_iter().collect();
        for FleetEntry {
            device,
            summary,
            presence,
            tags,
            groups,
        } in entries
        {
            let mut record = DeviceRecord::new(&device);
            if let Some((at, summary)) = summary {
                record.reported_at = Some(at);
                record.summary = Some(summary);
            }
            record.presence = presence;
            record.tags = tags;
            record.static_groups = groups;
            record.findings = findings.remove(&device.id).unwrap_or_default();
            state.devices.insert(device.id.clone(), record);
        }
        // What this process learnt while the store was being read (reports, presence not yet
        // flushed) is newer than what the store returned: keep it.
        let mut current = self.write();
        let ids: Vec<DeviceId> = state.devices.keys().cloned().collect();
        for id in ids {
            let Some(mut record) = state.devices.remove(&id) else {
                continue;
            };
            if let Some(old) = current.devices.get(&id) {
                if old.reported_at > record.reported_at {
                    record.reported_at = old.reported_at;
                    record.summary = old.summary.clone();
                }
                let seen = |r: &DeviceRecord| r.presence.as_ref().map(|p| p.last_seen);
                if seen(old) > seen(&record) {
                    record.presence = old.presence.clone();
                }
            }
            state.derive(&mut record);
            state.index_addresses(&record);
            state.devices.insert(id, record);
        }
        let n = state.devices.len();
        *current = state;
        Ok(n)
    }

    /// Adds or refreshes a device's identity facts (new enrollment, quarantine, rotation).
    pub fn upsert_device(&self, device: &Device) {
        let mut state = self.write();
        if !state.devices.contains_key(&device.id) {
            let mut record = DeviceRecord::new(device);
            state.derive(&mut record);
            state.devices.insert(device.id.clone(), record);
            return;
        }
        state.update(&device.id, |r| {
            r.quarantined = device.quarantined;
            r.current_serial = device.current_serial.clone();
        });
    }

    /// Whether the index knows the device.
    pub fn contains(&self, device: &DeviceId) -> bool {
        self.read().devices.contains_key(device)
    }

    /// Whether a known device is quarantined (`None`: the index does not know it). Cheaper
    /// than [`FleetIndex::get`], which copies the whole record.
    pub fn quarantined(&self, device: &DeviceId) -> Option<bool> {
        self.read().devices.get(device).map(|r| r.quarantined)
    }

    /// A device's record.
    pub fn get(&self, device: &DeviceId) -> Option<DeviceRecord> {
        self.read().devices.get(device).cloned()
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.read().devices.len()
    }

    /// Whether there are no devices.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a new inventory summary.
    pub fn apply_inventory(&self, device: &DeviceId, summary: DeviceSummary, at: UnixMillis) {
        self.write().update(device, |r| {
            r.summary = Some(summary);
            r.reported_at = Some(at);
        });
    }

    /// Moves a device's last-seen time forward, when its presence is known (a message from a
    /// device already marked online).
    pub fn touch(&self, device: &DeviceId, at: UnixMillis) {
        if let Some(p) = self
            .write()
            .devices
            .get_mut(device)
            .and_then(|r| r.presence.as_mut())
        {
            p.last_seen = p.last_seen.max(at);
        }
    }

    /// Records presence. Only a change of online state, agent or address re-derives group
    /// memberships; a plain "seen" (every message) just moves `last_seen`.
    pub fn apply_presence(&self, update: &PresenceUpdate) {
        let mut state = self.write();
        let changes_online = update.online.is_some_and(|online| {
            state
                .devices
                .get(&update.device)
                .is_none_or(|r| r.online() != online)
        });
        let rederive = changes_online || update.agent.is_some() || update.address.is_some();
        if !rederive {
            let Some(r) = state.devices.get_mut(&update.device) else {
                return;
            };
            if let Some(p) = r.presence.as_mut() {
                p.last_seen = p.last_seen.max(update.at);
                if let Some(t) = &update.telemetry {
                    p.telemetry = Some(t.clone());
                }
                return;
            }
        }
        state.update(&update.device, |r| {
            let p = r.presence.get_or_insert(Presence {
                first_seen: update.at,
                last_seen: update.at,
                online: false,
                last_address: None,
                agent: None,
                agent_version: None,
                telemetry: None,
            });
            p.last_seen = p.last_seen.max(update.at);
            if let Some(online) = update.online {
                p.online = online;
            }
            if let Some(a) = &update.address {
                p.last_address = Some(a.clone());
            }
            if let Some((agent, version)) = &update.agent {
                p.agent = Some(agent.clone());
                p.agent_version = Some(version.clone());
            }
            if let Some(t) = &update.telemetry {
                p.telemetry = Some(t.clone());
            }
        });
    }

    /// Replaces a device's tags.
    pub fn set_tags(&self, device: &DeviceId, tags: BTreeMap<String, String>) {
        self.write().update(device, |r| r.tags = tags);
    }

    /// Replaces the open findings of several devices (devices absent from `findings` but in
    /// `devices` have none).
    pub fn set_findings(
        &self,
        devices: &[DeviceId],
        mut findings: HashMap<DeviceId, Vec<(String, Severity)>>,
    ) {
        let mut state = self.write();
        for id in devices {
            let list = findings.remove(id).unwrap_or_default();
            // Findings feed only the risk score (dynamic groups cannot query them), so the
            // memberships need not be derived again.
            if let Some(r) = state.devices.get_mut(id) {
                r.findings = list;
                r.risk = risk::score(r.summary.as_ref(), &r.findings, r.impact);
            }
        }
    }

    /// Adds or replaces a group (its query compiled by the caller), re-deriving memberships.
    pub fn put_group(&self, group: Group, query: Option<Query>) {
        let mut state = self.write();
        state
            .groups
            .insert(group.name.clone(), GroupDef { group, query });
        state.rederive_all();
    }

    /// Removes a group.
    pub fn remove_group(&self, name: &str) {
        let mut state = self.write();
        state.groups.remove(name);
        let ids: Vec<DeviceId> = state.devices.keys().cloned().collect();
        for id in ids {
            state.update(&id, |r| r.static_groups.retain(|g| g != name));
        }
    }

    /// Changes static memberships.
    pub fn change_members(&self, name: &str, devices: &[DeviceId], add: bool) {
        let mut state = self.write();
        for id in devices {
            state.update(id, |r| {
                r.static_groups.retain(|g| g != name);
                if add {
                    r.static_groups.push(name.to_owned());
                    r.static_groups.sort();
                }
            });
        }
    }

    /// Devices matching `query` (all without one), ordered by id, after `after`.
    pub fn search(&self, query: Option<&Query>, after: Option<&str>, limit: usize) -> SearchPage {
        let state = self.read();
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut next = None;
        for (id, record) in state.devices.range::<str, _>((start, Bound::Unbounded)) {
            if query.is_some_and(|q| !q.matches(record)) {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|r: &DeviceRecord| r.id.to_string());
                break;
            }
            let _ = id;
            items.push(record.clone());
        }
        SearchPage { items, next }
    }

    /// How many devices match `query`.
    pub fn count(&self, query: Option<&Query>) -> usize {
        let state = self.read();
        match query {
            None => state.devices.len(),
            Some(q) => state.devices.values().filter(|r| q.matches(*r)).count(),
        }
    }

    /// Ids of the devices in a group.
    pub fn members(&self, group: &str) -> Vec<DeviceId> {
        self.read()
            .devices
            .values()
            .filter(|r| r.groups().any(|g| g == group))
            .map(|r| r.id.clone())
            .collect()
    }

    /// Calls `f` with every record, in id order, under one read lock.
    pub fn for_each(&self, mut f: impl FnMut(&DeviceRecord)) {
        for record in self.read().devices.values() {
            f(record);
        }
    }

    /// The managed device an address belongs to.
    pub fn device_at(&self, address: &str) -> Option<DeviceId> {
        self.read().addresses.get(address).cloned()
    }

    /// The groups with their compiled queries' texts and member counts.
    pub fn group_sizes(&self) -> BTreeMap<String, usize> {
        let state = self.read();
        let mut sizes: BTreeMap<String, usize> =
            state.groups.keys().map(|g| (g.clone(), 0)).collect();
        for record in state.devices.values() {
            for g in record.groups() {
                if let Some(n) = sizes.get_mut(g) {
                    *n += 1;
                }
            }
        }
        sizes
    }

    /// Listening services allowed for a device by its groups' allow-lists (`None`: no group
    /// has one).
    pub fn allowed_services(&self, record: &DeviceRecord) -> Option<Vec<String>> {
        let state = self.read();
        let mut allowed: Option<Vec<String>> = None;
        for g in record.groups() {
            if let Some(list) = state
                .groups
                .get(g)
                .and_then(|d| d.group.allowed_services.as_ref())
            {
                allowed
                    .get_or_insert_with(Vec::new)
                    .extend(list.iter().cloned());
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use garrison_core::device::EnrollmentMethod;

    use super::*;

    fn device(id: &str) -> Device {
        Device {
            tenant: TenantId::default(),
            id: DeviceId::new(id).unwrap(),
            quarantined: false,
            enrolled_via: EnrollmentMethod::Token,
            current_serial: None,
            created_at: 0,
            updated_at: 0,
            rotation_requested_at: None,
        }
    }

    #[test]
    fn old_addresses_leave_the_index() {
        let index = FleetIndex::new(TenantId::default());
        index.upsert_device(&device("a"));
        let with = |addresses: &[&str]| DeviceSummary {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            ..DeviceSummary::default()
        };
        let id = DeviceId::new("a").unwrap();
        index.apply_inventory(&id, with(&["10.0.0.1", "10.0.0.2"]), 1);
        assert_eq!(index.device_at("10.0.0.1"), Some(id.clone()));
        index.apply_inventory(&id, with(&["10.0.0.3"]), 2);
        assert_eq!(
            index.device_at("10.0.0.1"),
            None,
            "a device's old address is forgotten"
        );
        assert_eq!(index.device_at("10.0.0.3"), Some(id));
    }

    #[test]
    fn dynamic_groups_cannot_depend_on_groups() {
        for q in [
            "group = x",
            "risk > 50",
            "finding = telnet",
            "findings > 0",
            "severity = high",
            "model = x or (risk > 1)",
        ] {
            assert!(
                matches!(compile_group_query(q), Err(GroupQueryError::UsesDerived(_))),
                "{q}"
            );
        }
        assert!(compile_group_query("model = x and tag:site = berlin").is_ok());
    }
}
