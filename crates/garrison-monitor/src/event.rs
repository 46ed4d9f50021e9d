//! The normalised security event (`docs/events.md`) and the conversion of what the intake
//! observed into it.
//!
//! The event is a typed struct so every field name is written once; detection sees it as JSON
//! (Sigma rules address fields by dotted paths such as `dst_endpoint.port`). Absent facts are
//! absent fields. Every event keeps what it was made from in `raw_data`.

use garrison_contract::{DeviceEvent, EventKind, Telemetry};
use garrison_core::{DeviceId, UnixMillis};
use garrison_inventory::{AccessKind, Observation};
use serde::Serialize;

/// One normalised event. Field meanings: `docs/events.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecurityEvent {
    /// When it happened, Unix ms.
    pub time: UnixMillis,
    /// When Garrison received it, Unix ms.
    pub received_time: UnixMillis,
    /// Sigma logsource product.
    pub product: &'static str,
    /// Sigma logsource category.
    pub category: &'static str,
    /// Sigma logsource service.
    pub service: &'static str,
    /// What happened, in Garrison's words.
    pub kind: &'static str,
    /// OCSF class id.
    pub class_uid: u32,
    /// OCSF class name.
    pub class_name: &'static str,
    /// OCSF activity.
    pub activity_name: &'static str,
    /// OCSF severity id (1 informational … 5 critical).
    pub severity_id: u8,
    /// `success` or `failure` for attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// The device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceRef>,
    /// The account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Named>,
    /// The service logged into (`sshd`, `telnetd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// How (`password`, `publickey`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_protocol: Option<String>,
    /// Source endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Endpoint>,
    /// Destination endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<Endpoint>,
    /// Transport.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo>,
    /// The process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// The file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    /// A clock change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// Traffic volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// Other telemetry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryFields>,
    /// What the broker saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerFields>,
    /// A configuration change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftFields>,
    /// A log line's source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogFields>,
    /// Threat-intelligence match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat: Option<Threat>,
    /// Syslog header fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogFields>,
    /// One line for people.
    pub message: String,
    /// What it was made from.
    pub raw_data: String,
}

/// The device an event is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceRef {
    /// Id.
    pub id: String,
    /// Model, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Device class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Something with a name (`user.name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    /// The name.
    pub name: String,
}

/// A network endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `true` when the address is in a network never seen for the device before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_network: Option<bool>,
}

/// Transport details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionInfo {
    /// `tcp` or `udp`.
    pub protocol_name: &'static str,
}

/// A process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Process {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Executable path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_line: Option<String>,
    /// Account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct File {
    /// Path.
    pub path: String,
    /// New SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_sha256: Option<String>,
    /// Previous SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_hash_sha256: Option<String>,
}

/// A clock change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clock {
    /// Signed offset, ms.
    pub offset_ms: i64,
    /// Its magnitude, ms.
    pub offset_abs_ms: u64,
}

/// Traffic in one telemetry interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Bytes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Bytes sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// Packets received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_in: Option<u64>,
    /// Packets sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_out: Option<u64>,
}

/// Telemetry besides traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TelemetryFields {
    /// The interval the deltas cover, ms.
    pub interval_ms: u64,
    /// Established connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_connections: Option<u32>,
    /// Distinct destinations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_destinations: Option<u32>,
    /// Listening TCP ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listening_tcp_ports: Option<u32>,
    /// Listening UDP ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listening_udp_ports: Option<u32>,
    /// Destination addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
}

/// What the broker saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BrokerFields {
    /// Why it refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The topic or filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The client id presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The certificate's CN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
}

/// A configuration change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftFields {
    /// Kind.
    pub kind: String,
    /// Fact.
    pub fact: String,
    /// Before, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// After, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Severity.
    pub severity: &'static str,
}

/// A log line's origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogFields {
    /// Source.
    pub source: String,
}

/// A syslog message's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyslogFields {
    /// `5424` or `3164`; absent when the line was not syslog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u16>,
    /// Whether it parsed as syslog.
    pub parsed: bool,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    /// Facility (`auth`, `daemon` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<&'static str>,
    /// Severity 0–7.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// HOSTNAME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// APP-NAME or TAG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appname: Option<String>,
    /// PROCID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub procid: Option<String>,
    /// MSGID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
}

/// A threat-intelligence match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Threat {
    /// The indicator.
    pub indicator: String,
    /// Where it came from.
    pub source: String,
    /// 0–100.
    pub confidence: u8,
    /// The event field that matched.
    pub field: &'static str,
    /// The indicator's id in its feed (a STIX indicator id, a MISP event/attribute uuid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

const PRODUCT: &str = "garrison";

impl SecurityEvent {
    fn new(
        time: UnixMillis,
        received_time: UnixMillis,
        category: &'static str,
        service: &'static str,
        kind: &'static str,
        (class_uid, class_name): (u32, &'static str),
        activity_name: &'static str,
    ) -> SecurityEvent {
        SecurityEvent {
            time,
            received_time,
            product: PRODUCT,
            category,
            service,
            kind,
            class_uid,
            class_name,
            activity_name,
            severity_id: 1,
            ..SecurityEvent::default()
        }
    }

    fn on(mut self, device: &DeviceId) -> SecurityEvent {
        self.device = Some(DeviceRef {
            id: device.to_string(),
            ..DeviceRef::default()
        });
        self
    }

    /// The device id, when the event is about one.
    pub fn device_id(&self) -> Option<&str> {
        self.device.as_ref().map(|d| d.id.as_str())
    }

    /// The event as detection sees it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

const AUTHENTICATION: (u32, &str) = (3002, "Authentication");
const AUTHORIZE: (u32, &str) = (3003, "Authorize Session");
const NETWORK: (u32, &str) = (4001, "Network Activity");
const PROCESS: (u32, &str) = (1007, "Process Activity");
const FILE_SYSTEM: (u32, &str) = (1001, "File System Activity");
const CONFIG_STATE: (u32, &str) = (5019, "Device Config State Change");
const EVENT_LOG: (u32, &str) = (1008, "Event Log Activity");

/// Converts one observation into normalised events (a batch of device events gives one each).
pub fn normalise(observation: &Observation) -> Vec<SecurityEvent> {
    match observation {
        Observation::Events {
            device,
            received_at,
            events,
        } => events
            .iter()
            .map(|e| device_event(device, *received_at, e))
            .collect(),
        Observation::Telemetry {
            device,
            received_at,
            telemetry,
        } => vec![telemetry_event(device, *received_at, telemetry)],
        Observation::Connected {
            device,
            address,
            at,
        } => {
            let mut e = SecurityEvent::new(
                *at,
                *at,
                "session",
                "broker",
                "connected",
                AUTHENTICATION,
                "Logon",
            )
            .on(device);
            e.status = Some("success");
            e.src_endpoint = Some(Endpoint {
                ip: address.clone(),
                ..Endpoint::default()
            });
            e.message = format!(
                "{device} connected from {}",
                address.as_deref().unwrap_or("an unknown address")
            );
            e.raw_data = format!("connect {device} {}", address.as_deref().unwrap_or("-"));
            vec![e]
        }
        Observation::Disconnected { device, at } => {
            let mut e = SecurityEvent::new(
                *at,
                *at,
                "session",
                "broker",
                "disconnected",
                AUTHENTICATION,
                "Logoff",
            )
            .on(device);
            e.message = format!("{device} disconnected");
            e.raw_data = format!("disconnect {device}");
            vec![e]
        }
        Observation::ConnectRefused {
            client_id,
            common_name,
            address,
            reason,
            at,
        } => {
            let mut e = SecurityEvent::new(
                *at,
                *at,
                "authentication",
                "broker",
                "connect_refused",
                AUTHENTICATION,
                "Logon",
            );
            if let Some(device) = common_name.as_deref().and_then(|cn| DeviceId::new(cn).ok()) {
                e = e.on(&device);
            }
            e.status = Some("failure");
            e.severity_id = 3;
            e.src_endpoint = Some(Endpoint {
                ip: address.clone(),
                ..Endpoint::default()
            });
            e.broker = Some(BrokerFields {
                reason: Some(reason.clone()),
                client_id: Some(client_id.clone()),
                common_name: common_name.clone(),
                topic: None,
            });
            e.message = format!("Broker refused client {client_id:?}: {reason}");
            e.raw_data = format!(
                "connect-refused client_id={client_id} cn={} address={} reason={reason}",
                common_name.as_deref().unwrap_or("-"),
                address.as_deref().unwrap_or("-")
            );
            vec![e]
        }
        Observation::AccessRefused {
            device,
            kind,
            topic,
            reason,
            at,
        } => {
            let (name, verb) = match kind {
                AccessKind::Publish => ("publish_refused", "publish to"),
                AccessKind::Subscribe => ("subscribe_refused", "subscription to"),
            };
            let mut e = SecurityEvent::new(
                *at,
                *at,
                "authorization",
                "broker",
                name,
                AUTHORIZE,
                "Refuse",
            )
            .on(device);
            e.status = Some("failure");
            e.severity_id = 3;
            e.broker = Some(BrokerFields {
                reason: Some(reason.clone()),
                topic: Some(topic.clone()),
                ..BrokerFields::default()
            });
            e.message = format!("Broker refused {device}'s {verb} {topic:?}: {reason}");
            e.raw_data = format!("{name} device={device} topic={topic} reason={reason}");
            vec![e]
        }
        // Traffic figures are judged over windows by the baselines, not event by event.
        Observation::Traffic { .. } => Vec::new(),
        Observation::Drift { device, at, drift } => {
            let mut e = SecurityEvent::new(
                *at,
                *at,
                "config_drift",
                "inventory",
                "drift",
                CONFIG_STATE,
                "Update",
            )
            .on(device);
            e.severity_id = severity_id(drift.severity);
            let text = |v: &Option<serde_json::Value>| v.as_ref().map(ToString::to_string);
            e.drift = Some(DriftFields {
                kind: drift.kind.clone(),
                fact: drift.fact.clone(),
                before: text(&drift.before),
                after: text(&drift.after),
                severity: drift.severity.as_str(),
            });
            e.message = drift.detail.clone();
            e.raw_data = serde_json::json!({
                "kind": drift.kind, "fact": drift.fact, "before": drift.before,
                "after": drift.after, "detail": drift.detail,
            })
            .to_string();
            vec![e]
        }
    }
}

fn severity_id(severity: garrison_core::Severity) -> u8 {
    use garrison_core::Severity as S;
    match severity {
        S::Info => 1,
        S::Low => 2,
        S::Medium => 3,
        S::High => 4,
        S::Critical => 5,
    }
}

fn device_event(device: &DeviceId, received_at: UnixMillis, event: &DeviceEvent) -> SecurityEvent {
    let base = |category, kind, class, activity| {
        SecurityEvent::new(
            event.at,
            received_at,
            category,
            "device",
            kind,
            class,
            activity,
        )
        .on(device)
    };
    let mut e = match &event.kind {
        EventKind::LoginFailed {
            user,
            service,
            source,
        } => {
            let mut e = base("authentication", "login_failed", AUTHENTICATION, "Logon");
            e.status = Some("failure");
            e.severity_id = 2;
            e.user = Some(Named { name: user.clone() });
            e.service_name = Some(service.clone());
            e.src_endpoint = source.clone().map(|ip| Endpoint {
                ip: Some(ip),
                ..Endpoint::default()
            });
            e.message = format!(
                "Failed {service} login as {user} from {}",
                source.as_deref().unwrap_or("an unknown address")
            );
            e
        }
        EventKind::LoginSucceeded {
            user,
            service,
            source,
            method,
        } => {
            let mut e = base("authentication", "login_succeeded", AUTHENTICATION, "Logon");
            e.status = Some("success");
            e.user = Some(Named { name: user.clone() });
            e.service_name = Some(service.clone());
            e.auth_protocol = method.clone();
            e.src_endpoint = source.clone().map(|ip| Endpoint {
                ip: Some(ip),
                ..Endpoint::default()
            });
            e.message = format!(
                "{service} login as {user} from {}",
                source.as_deref().unwrap_or("an unknown address")
            );
            e
        }
        EventKind::ListeningPortOpened {
            protocol,
            port,
            address,
            process,
        } => {
            let mut e = base("network_listen", "listening_port_opened", NETWORK, "Listen");
            e.connection_info = Some(ConnectionInfo {
                protocol_name: protocol.as_str(),
            });
            e.src_endpoint = Some(Endpoint {
                ip: address.clone(),
                port: Some(*port),
                new_network: None,
            });
            e.process = process.clone().map(|name| Process {
                name: Some(name),
                ..Process::default()
            });
            e.message = format!("Now listening on {}/{port}", protocol.as_str());
            e
        }
        EventKind::ListeningPortClosed {
            protocol,
            port,
            address,
        } => {
            let mut e = base("network_listen", "listening_port_closed", NETWORK, "Close");
            e.connection_info = Some(ConnectionInfo {
                protocol_name: protocol.as_str(),
            });
            e.src_endpoint = Some(Endpoint {
                ip: address.clone(),
                port: Some(*port),
                new_network: None,
            });
            e.message = format!("No longer listening on {}/{port}", protocol.as_str());
            e
        }
        EventKind::FileChanged {
            path,
            sha256,
            previous_sha256,
        } => {
            let mut e = base("file_change", "file_changed", FILE_SYSTEM, "Update");
            e.severity_id = 3;
            e.file = Some(File {
                path: path.clone(),
                hash_sha256: sha256.clone(),
                previous_hash_sha256: previous_sha256.clone(),
            });
            e.message = format!("Watched file {path} changed");
            e
        }
        EventKind::ProcessStarted {
            name,
            path,
            pid,
            user,
            command_line,
        } => {
            let mut e = base("process_creation", "process_started", PROCESS, "Launch");
            e.process = Some(Process {
                name: Some(name.clone()),
                path: path.clone(),
                pid: *pid,
                cmd_line: command_line.clone(),
                user: user.clone(),
            });
            e.message = format!("Process {name} started");
            e
        }
        EventKind::ConnectionOpened {
            protocol,
            destination,
            port,
            process,
        } => {
            let mut e = base("network_connection", "connection_opened", NETWORK, "Open");
            e.connection_info = Some(ConnectionInfo {
                protocol_name: protocol.as_str(),
            });
            e.dst_endpoint = Some(Endpoint {
                ip: Some(destination.clone()),
                port: Some(*port),
                new_network: None,
            });
            e.process = process.clone().map(|name| Process {
                name: Some(name),
                ..Process::default()
            });
            e.message = format!(
                "Outbound {} connection to {destination}:{port}",
                protocol.as_str()
            );
            e
        }
        EventKind::ClockChanged { offset_ms } => {
            let mut e = base("clock_change", "clock_changed", CONFIG_STATE, "Update");
            e.clock = Some(Clock {
                offset_ms: *offset_ms,
                offset_abs_ms: offset_ms.unsigned_abs(),
            });
            e.message = format!("Clock moved by {offset_ms} ms");
            e
        }
        EventKind::Log { source, message } => {
            let mut e = base("log", "log", EVENT_LOG, "Log");
            e.log = Some(LogFields {
                source: source.clone(),
            });
            e.message = message.clone();
            e
        }
    };
    e.raw_data = serde_json::to_string(event).unwrap_or_default();
    e
}

fn telemetry_event(device: &DeviceId, received_at: UnixMillis, t: &Telemetry) -> SecurityEvent {
    let mut e = SecurityEvent::new(
        t.at,
        received_at,
        "telemetry",
        "device",
        "telemetry",
        NETWORK,
        "Traffic",
    )
    .on(device);
    e.traffic = Some(Traffic {
        bytes_in: t.bytes_in,
        bytes_out: t.bytes_out,
        packets_in: t.packets_in,
        packets_out: t.packets_out,
    });
    e.telemetry = Some(TelemetryFields {
        interval_ms: t.interval_ms,
        established_connections: t.established_connections,
        distinct_destinations: t.distinct_destinations,
        listening_tcp_ports: t.listening_tcp_ports,
        listening_udp_ports: t.listening_udp_ports,
        destinations: t.destinations.clone(),
    });
    e.message = format!(
        "Telemetry: {} bytes out, {} destinations over {} ms",
        t.bytes_out.map_or("?".into(), |b| b.to_string()),
        t.distinct_destinations
            .map_or("?".into(), |b| b.to_string()),
        t.interval_ms
    );
    e.raw_data = serde_json::to_string(t).unwrap_or_default();
    e
}

/// Converts a syslog message. Its logsource is `product: linux` with `service` from the
/// program (`sshd`), else `auth` for the auth facilities, else `syslog` — the names SigmaHQ's
/// Linux rules use — so those rules apply to devices that forward their logs.
pub fn syslog_event(record: &garrison_syslog::SyslogRecord) -> SecurityEvent {
    let service = match (record.appname.as_deref(), record.facility) {
        (Some("sshd"), _) => "sshd",
        (Some("sudo"), _) => "sudo",
        (Some("cron" | "CRON" | "crond"), _) => "cron",
        (_, Some("auth" | "authpriv")) => "auth",
        _ => "syslog",
    };
    let mut e = SecurityEvent::new(
        record.timestamp.unwrap_or(record.received_at),
        record.received_at,
        "syslog",
        service,
        "syslog",
        EVENT_LOG,
        "Log",
    );
    e.product = "linux";
    // Syslog severities 0 (emergency) … 7 (debug) onto OCSF's 1 … 5.
    e.severity_id = match record.severity {
        Some(0..=2) => 5,
        Some(3) => 4,
        Some(4) => 3,
        Some(5) => 2,
        _ => 1,
    };
    e.src_endpoint = Some(Endpoint {
        ip: Some(record.peer.to_string()),
        ..Endpoint::default()
    });
    e.syslog = Some(SyslogFields {
        protocol: record.protocol,
        parsed: record.parsed,
        transport: record.transport.as_str(),
        facility: record.facility,
        severity: record.severity,
        hostname: record.hostname.clone(),
        appname: record.appname.clone(),
        procid: record.procid.clone(),
        msgid: record.msgid.clone(),
    });
    e.message = record.message.clone();
    e.raw_data = record.raw.clone();
    e
}
