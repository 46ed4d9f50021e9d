//! `events`: security-relevant things the device saw happen.
//!
//! Each event has a `kind` and the fields of that kind; the monitoring capability normalises
//! them into its common event model. The agent produces logins (from the auth log), listening
//! ports opening and closing, and watched files changing; processes starting and outbound
//! connections come from agents that can see them (and from the simulator's scenarios).

use serde::{Deserialize, Serialize};

use crate::{
    ReportError,
    report::{Check, Validate},
};

/// `garrison/v1/d/<id>/events`: a batch of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Events {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The device id; must equal the publishing device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The events, oldest first.
    pub events: Vec<DeviceEvent>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// When it happened, Unix ms (device clock).
    pub at: i64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// The kinds of event, each with its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A failed login.
    LoginFailed {
        /// The account tried.
        user: String,
        /// The service (`sshd`, `telnetd`, `login`).
        service: String,
        /// Where it came from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// A successful login.
    LoginSucceeded {
        /// The account.
        user: String,
        /// The service.
        service: String,
        /// Where it came from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// How (`password`, `publickey`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
    },
    /// A socket started listening.
    ListeningPortOpened {
        /// Protocol.
        protocol: Protocol,
        /// Port.
        port: u16,
        /// Local address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// Owning process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
    },
    /// A socket stopped listening.
    ListeningPortClosed {
        /// Protocol.
        protocol: Protocol,
        /// Port.
        port: u16,
        /// Local address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// A watched file's content changed.
    FileChanged {
        /// Path.
        path: String,
        /// New SHA-256 (absent: the file is gone or unreadable).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// Previous SHA-256.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_sha256: Option<String>,
    },
    /// A process started.
    ProcessStarted {
        /// Process name.
        name: String,
        /// Executable path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Process id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// Account it runs as.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Command line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_line: Option<String>,
    },
    /// An outbound connection was opened.
    ConnectionOpened {
        /// Protocol.
        protocol: Protocol,
        /// Remote address.
        destination: String,
        /// Remote port.
        port: u16,
        /// Owning process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
    },
    /// The device's clock was changed.
    ClockChanged {
        /// How far it moved, ms (negative: backwards).
        offset_ms: i64,
    },
    /// Anything else, as a log line.
    Log {
        /// Where it came from (`kernel`, `app`).
        source: String,
        /// The line.
        message: String,
    },
}

impl EventKind {
    /// The stable name of the kind (`login_failed`).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::LoginFailed { .. } => "login_failed",
            EventKind::LoginSucceeded { .. } => "login_succeeded",
            EventKind::ListeningPortOpened { .. } => "listening_port_opened",
            EventKind::ListeningPortClosed { .. } => "listening_port_closed",
            EventKind::FileChanged { .. } => "file_changed",
            EventKind::ProcessStarted { .. } => "process_started",
            EventKind::ConnectionOpened { .. } => "connection_opened",
            EventKind::ClockChanged { .. } => "clock_changed",
            EventKind::Log { .. } => "log",
        }
    }

    /// Every string field with its name, for bound checks.
    fn texts(&self) -> Vec<(&'static str, &str)> {
        fn opt<'a>(
            out: &mut Vec<(&'static str, &'a str)>,
            name: &'static str,
            value: &'a Option<String>,
        ) {
            if let Some(v) = value {
                out.push((name, v.as_str()));
            }
        }
        let mut out = Vec::new();
        let mut push = |name, value| opt(&mut out, name, value);
        match self {
            EventKind::LoginFailed {
                user,
                service,
                source,
            } => {
                push("source", source);
                out.extend([("user", user.as_str()), ("service", service.as_str())]);
            }
            EventKind::LoginSucceeded {
                user,
                service,
                source,
                method,
            } => {
                push("source", source);
                push("method", method);
                out.extend([("user", user.as_str()), ("service", service.as_str())]);
            }
            EventKind::ListeningPortOpened {
                address, process, ..
            } => {
                push("address", address);
                push("process", process);
            }
            EventKind::ListeningPortClosed { address, .. } => push("address", address),
            EventKind::FileChanged {
                path,
                sha256,
                previous_sha256,
            } => {
                push("sha256", sha256);
                push("previous_sha256", previous_sha256);
                out.push(("path", path.as_str()));
            }
            EventKind::ProcessStarted {
                name,
                path,
                user,
                command_line,
                ..
            } => {
                push("path", path);
                push("user", user);
                push("command_line", command_line);
                out.push(("name", name.as_str()));
            }
            EventKind::ConnectionOpened {
                destination,
                process,
                ..
            } => {
                push("process", process);
                out.push(("destination", destination.as_str()));
            }
            EventKind::ClockChanged { .. } => {}
            EventKind::Log { source, message } => {
                out.extend([("source", source.as_str()), ("message", message.as_str())]);
            }
        }
        out
    }
}

impl Validate for Events {
    fn schema(&self) -> u32 {
        self.schema
    }
    fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }
    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError> {
        check.list("events", &self.events, check.limits.max_events)?;
        for (i, event) in self.events.iter().enumerate() {
            check.time(&format!("events[{i}].at"), event.at)?;
            for (name, value) in event.kind.texts() {
                check.text(&format!("events[{i}].{name}"), value)?;
            }
            if let EventKind::ConnectionOpened { destination, .. } = &event.kind
                && destination.parse::<std::net::IpAddr>().is_err()
            {
                return Err(Check::fail(
                    format!("events[{i}].destination"),
                    "is not an IP address",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use garrison_core::DeviceId;

    use crate::{Channel, Limits, Report, decode_report, encode};

    use super::*;

    #[test]
    fn events_round_trip_and_are_bounded() {
        let device = DeviceId::new("cam-1").unwrap();
        let events = Events {
            schema: 1,
            device_id: None,
            events: vec![
                DeviceEvent {
                    at: 1_764_633_600_000,
                    kind: EventKind::LoginFailed {
                        user: "root".into(),
                        service: "telnetd".into(),
                        source: Some("198.51.100.7".into()),
                    },
                },
                DeviceEvent {
                    at: 1_764_633_601_000,
                    kind: EventKind::FileChanged {
                        path: "/bin/busybox".into(),
                        sha256: None,
                        previous_sha256: None,
                    },
                },
            ],
        };
        let bytes = encode(&events);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""kind":"login_failed""#), "{text}");
        let limits = Limits::default();
        assert_eq!(
            decode_report(Channel::Events, &device, &bytes, &limits).unwrap(),
            Report::Events(events.clone())
        );
        let tight = Limits {
            max_events: 1,
            ..Limits::default()
        };
        assert!(decode_report(Channel::Events, &device, &bytes, &tight).is_err());
        let unknown_kind = br#"{"schema":1,"events":[{"at":1764633600000,"kind":"teleported"}]}"#;
        assert_eq!(
            decode_report(Channel::Events, &device, unknown_kind, &limits)
                .unwrap_err()
                .reason(),
            "malformed"
        );
    }
}
