//! `birth` and `inventory`: who the device is and what it is made of, runs and exposes.

use serde::{Deserialize, Serialize};

use crate::{
    ReportError, Sbom,
    events::Protocol,
    report::{Check, Validate},
};

/// `garrison/v1/d/<id>/birth`: sent after every connect, before anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birth {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The device id; must equal the publishing device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The software speaking the contract (`garrison-agent`, `garrison-sim`, a vendor's).
    pub agent: String,
    /// Its version.
    pub agent_version: String,
    /// When the device last booted, Unix ms (unknown: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booted_at: Option<i64>,
    /// A value that changes at every boot (Linux: `/proc/sys/kernel/random/boot_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl Validate for Birth {
    fn schema(&self) -> u32 {
        self.schema
    }
    fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }
    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError> {
        check.text("agent", &self.agent)?;
        check.text("agent_version", &self.agent_version)?;
        check.opt_text("boot_id", self.boot_id.as_deref())?;
        if let Some(t) = self.booted_at {
            check.time("booted_at", t)?;
        }
        Ok(())
    }
}

/// `garrison/v1/d/<id>/inventory`: the device's facts as it last read them. Every part is
/// optional: a part that is absent or `null` is unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The device id; must equal the publishing device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// When the facts were read, Unix ms.
    pub collected_at: i64,
    /// What the device says it is, if it knows (the server otherwise derives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_class: Option<DeviceClass>,
    /// The hardware.
    #[serde(default)]
    pub hardware: Hardware,
    /// The firmware image.
    #[serde(default)]
    pub firmware: Firmware,
    /// The operating system.
    #[serde(default)]
    pub os: Os,
    /// Installed software as a CycloneDX SBOM (unknown: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<Sbom>,
    /// Network interfaces (unknown: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<NetworkInterface>>,
    /// Listening TCP and UDP sockets (unknown: absent; none: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening: Option<Vec<ListeningSocket>>,
    /// Remote-access and other risky services.
    #[serde(default)]
    pub services: Services,
    /// Local accounts that can log in (unknown: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<Account>>,
    /// Protective configuration.
    #[serde(default)]
    pub security: SecurityState,
    /// Files the agent watches for change, with their current hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched_files: Vec<WatchedFile>,
}

/// A device class by capability, from constrained sensors to rich gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceClass {
    /// RFC 7228 classes 0–2: microcontrollers, no general-purpose OS.
    Constrained,
    /// An embedded Linux (or RTOS) appliance: fixed function, small memory, no package manager
    /// in the field.
    Embedded,
    /// A general-purpose computer with a package manager (industrial PC, controller).
    Rich,
    /// A rich device that connects or forwards for other devices.
    Gateway,
}

impl DeviceClass {
    /// Every class, least capable first.
    pub const ALL: [DeviceClass; 4] = [
        DeviceClass::Constrained,
        DeviceClass::Embedded,
        DeviceClass::Rich,
        DeviceClass::Gateway,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Constrained => "constrained",
            DeviceClass::Embedded => "embedded",
            DeviceClass::Rich => "rich",
            DeviceClass::Gateway => "gateway",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<DeviceClass> {
        DeviceClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Hardware facts (DMI on PCs, device tree on boards).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    /// Maker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model designation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// CPU architecture (`x86_64`, `aarch64`, `armv7l`, `mips`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// CPU model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Logical CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<u32>,
    /// Memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// The firmware image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    /// Version string, compared version-wise (`2.10` > `2.9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Build date or identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// The operating system (`/etc/os-release`, `uname`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Os {
    /// `ID` (`debian`, `alpine`, `openwrt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `NAME` or `PRETTY_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `VERSION_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kernel release (`6.1.0-18-amd64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Name (`eth0`).
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Addresses with prefix length (`192.0.2.10/24`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListeningSocket {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Local address (`0.0.0.0`, `::`, `127.0.0.1`).
    pub address: String,
    /// Local port.
    pub port: u16,
    /// Owning process name, if it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Owning process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl ListeningSocket {
    /// Whether the socket is reachable only from the device itself.
    pub fn is_loopback(&self) -> bool {
        self.address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
    }
}

/// Remote-access and risky services.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    /// The SSH server's effective configuration (absent: no SSH server found or unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshConfig>,
    /// A telnet server is enabled or listening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telnet: Option<bool>,
    /// An FTP server is enabled or listening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftp: Option<bool>,
    /// A UPnP/SSDP responder is enabled or listening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upnp: Option<bool>,
    /// Debug interfaces found enabled (`adb`, `gdbserver`, `serial-console`, `jtag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<Vec<String>>,
}

/// The SSH server's effective settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshConfig {
    /// `PasswordAuthentication` (unknown: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_authentication: Option<bool>,
    /// `PermitRootLogin` as written (`yes`, `no`, `prohibit-password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_root_login: Option<String>,
    /// The port it listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A local account with a login shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Login shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// What kind of password it has.
    #[serde(default)]
    pub password: PasswordState,
    /// Whether its password is a known vendor default (checked on the device against a list;
    /// unknown: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_password: Option<bool>,
    /// SHA-256 of the stored password hash, truncated: equal on two devices only when they
    /// share the same salted hash (a cloned image). It reveals nothing about the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_fingerprint: Option<String>,
}

/// What kind of password an account has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordState {
    /// A password hash is set.
    Set,
    /// No password at all: anyone may log in.
    Empty,
    /// Locked (`!` or `*`): password login impossible.
    Locked,
    /// Could not be read.
    #[default]
    Unknown,
}

/// Protective configuration; each `None` means "could not tell".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityState {
    /// A packet filter with rules is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<bool>,
    /// The clock is synchronised (NTP, timesyncd, chrony).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_sync: Option<bool>,
    /// UEFI Secure Boot (or the platform's verified boot) is enforcing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<bool>,
    /// The root filesystem is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_encryption: Option<bool>,
    /// A system logger is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// A watched file and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedFile {
    /// Absolute path.
    pub path: String,
    /// SHA-256, lowercase hex (absent: unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Validate for Inventory {
    fn schema(&self) -> u32 {
        self.schema
    }
    fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }
    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError> {
        check.time("collected_at", self.collected_at)?;
        let h = &self.hardware;
        for (field, value) in [
            ("hardware.manufacturer", &h.manufacturer),
            ("hardware.model", &h.model),
            ("hardware.serial", &h.serial),
            ("hardware.architecture", &h.architecture),
            ("hardware.cpu_model", &h.cpu_model),
            ("firmware.version", &self.firmware.version),
            ("firmware.build", &self.firmware.build),
            ("os.id", &self.os.id),
            ("os.name", &self.os.name),
            ("os.version", &self.os.version),
            ("os.kernel", &self.os.kernel),
            ("os.hostname", &self.os.hostname),
        ] {
            check.opt_text(field, value.as_deref())?;
        }
        if let Some(software) = &self.software {
            software.validate(check)?;
        }
        let max = check.limits.max_list;
        if let Some(interfaces) = &self.interfaces {
            check.list("interfaces", interfaces, max)?;
            for (i, nic) in interfaces.iter().enumerate() {
                check.text(&format!("interfaces[{i}].name"), &nic.name)?;
                check.opt_text(&format!("interfaces[{i}].mac"), nic.mac.as_deref())?;
                check.list(&format!("interfaces[{i}].addresses"), &nic.addresses, 64)?;
                for (j, a) in nic.addresses.iter().enumerate() {
                    let field = format!("interfaces[{i}].addresses[{j}]");
                    check.text(&field, a)?;
                    let (ip, prefix) = a
                        .split_once('/')
                        .map_or((a.as_str(), None), |(ip, p)| (ip, Some(p)));
                    let max_prefix = match ip.parse::<std::net::IpAddr>() {
                        Ok(std::net::IpAddr::V4(_)) => 32,
                        Ok(std::net::IpAddr::V6(_)) => 128,
                        Err(_) => {
                            return Err(Check::fail(
                                field,
                                "is not an IP address (with optional /prefix)",
                            ));
                        }
                    };
                    if prefix.is_some_and(|p| p.parse::<u8>().map_or(true, |p| p > max_prefix)) {
                        return Err(Check::fail(field, "has an invalid prefix length"));
                    }
                }
            }
        }
        if let Some(listening) = &self.listening {
            check.list("listening", listening, max)?;
            for (i, s) in listening.iter().enumerate() {
                let field = format!("listening[{i}].address");
                check.text(&field, &s.address)?;
                if s.address.parse::<std::net::IpAddr>().is_err() {
                    return Err(Check::fail(field, "is not an IP address"));
                }
                check.opt_text(&format!("listening[{i}].process"), s.process.as_deref())?;
            }
        }
        if let Some(ssh) = &self.services.ssh {
            check.opt_text(
                "services.ssh.permit_root_login",
                ssh.permit_root_login.as_deref(),
            )?;
        }
        if let Some(debug) = &self.services.debug {
            check.list("services.debug", debug, 64)?;
            for (i, d) in debug.iter().enumerate() {
                check.text(&format!("services.debug[{i}]"), d)?;
            }
        }
        if let Some(accounts) = &self.accounts {
            check.list("accounts", accounts, max)?;
            for (i, a) in accounts.iter().enumerate() {
                check.text(&format!("accounts[{i}].name"), &a.name)?;
                check.opt_text(&format!("accounts[{i}].shell"), a.shell.as_deref())?;
                check.opt_text(
                    &format!("accounts[{i}].credential_fingerprint"),
                    a.credential_fingerprint.as_deref(),
                )?;
            }
        }
        check.list("watched_files", &self.watched_files, max)?;
        for (i, f) in self.watched_files.iter().enumerate() {
            check.text(&format!("watched_files[{i}].path"), &f.path)?;
            if let Some(h) = &f.sha256
                && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(Check::fail(
                    format!("watched_files[{i}].sha256"),
                    "must be 64 hex digits",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use garrison_core::DeviceId;

    use crate::{Channel, Limits, Report, ReportError, decode_report, encode};

    use super::*;

    fn device() -> DeviceId {
        DeviceId::new("cam-1").unwrap()
    }

    fn decode(payload: &[u8]) -> Result<Report, ReportError> {
        decode_report(Channel::Inventory, &device(), payload, &Limits::default())
    }

    #[test]
    fn a_minimal_inventory_is_all_unknown() {
        let Report::Inventory(inv) =
            decode(br#"{"schema":1,"collected_at":1764633600000}"#).unwrap()
        else {
            panic!("not an inventory")
        };
        assert_eq!(inv.listening, None);
        assert_eq!(inv.services.telnet, None);
        assert_eq!(inv.security, SecurityState::default());
    }

    #[test]
    fn round_trips() {
        let inv = Inventory {
            schema: 1,
            device_id: Some("cam-1".into()),
            collected_at: 1_764_633_600_000,
            hardware: Hardware {
                model: Some("cam-x".into()),
                ..Hardware::default()
            },
            listening: Some(vec![ListeningSocket {
                protocol: Protocol::Tcp,
                address: "0.0.0.0".into(),
                port: 23,
                process: Some("telnetd".into()),
                pid: Some(101),
            }]),
            ..Inventory::default()
        };
        assert_eq!(
            decode(&encode(&inv)).unwrap(),
            Report::Inventory(Box::new(inv))
        );
    }

    #[test]
    fn bad_inventories_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"schema":2,"collected_at":1764633600000}"#,
                "unsupported_schema",
            ),
            (r#"{"collected_at":1764633600000}"#, "malformed"),
            (r#"{"schema":1,"collected_at":"yesterday"}"#, "malformed"),
            (r#"{"schema":1,"collected_at":5}"#, "invalid_field"),
            (
                r#"{"schema":1,"device_id":"cam-2","collected_at":1764633600000}"#,
                "device_mismatch",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"listening":[{"protocol":"tcp","address":"nowhere","port":1}]}"#,
                "invalid_field",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"listening":[{"protocol":"sctp","address":"::","port":1}]}"#,
                "malformed",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"listening":[{"protocol":"tcp","address":"::","port":70000}]}"#,
                "malformed",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"hardware":{"model":"a\u0000b"}}"#,
                "invalid_field",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"watched_files":[{"path":"/bin/sh","sha256":"xyz"}]}"#,
                "invalid_field",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"interfaces":[{"name":"eth0","addresses":["10.0.0.1/33"]}]}"#,
                "invalid_field",
            ),
            (
                r#"{"schema":1,"collected_at":1764633600000,"interfaces":[{"name":"eth0","addresses":["office printer"]}]}"#,
                "invalid_field",
            ),
        ];
        for (payload, reason) in cases {
            let err = decode(payload.as_bytes()).unwrap_err();
            assert_eq!(err.reason(), *reason, "{payload}: {err}");
        }
    }
}
