//! The catalogue of built-in posture checks: what each looks for, why it matters, how to fix
//! it, and where it sits in ETSI EN 303 645 (V2.1.1 provision numbers) and the OWASP IoT Top
//! 10 (2018).

use garrison_core::Severity;
use serde::Serialize;

/// Whether a check looks at one device alone or compares devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Decided from one device's facts and certificate: re-evaluated whenever it reports.
    Device,
    /// Needs the whole fleet or the broker's view: evaluated by full audit runs.
    Fleet,
}

/// One built-in check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id (`ssh-password-auth`).
    pub id: &'static str,
    /// One line.
    pub title: &'static str,
    /// Severity of a finding (some checks raise it for worse evidence; see `rationale`).
    pub severity: Severity,
    /// Device or fleet.
    pub scope: Scope,
    /// Why it matters.
    pub rationale: &'static str,
    /// What to do.
    pub remediation: &'static str,
    /// ETSI EN 303 645 provisions.
    pub etsi: &'static [&'static str],
    /// OWASP IoT Top 10 (2018) categories.
    pub owasp: &'static [&'static str],
}

macro_rules! checks {
    ($($name:ident = $id:literal, $title:literal, $sev:ident, $scope:ident, $why:literal, $fix:literal, [$($e:literal),*], [$($o:literal),*];)*) => {
        $(
            #[doc = $title]
            pub const $name: &str = $id;
        )*
        /// Every built-in check.
        pub const CHECKS: &[Check] = &[$(Check {
            id: $id,
            title: $title,
            severity: Severity::$sev,
            scope: Scope::$scope,
            rationale: $why,
            remediation: $fix,
            etsi: &[$($e),*],
            owasp: &[$($o),*],
        }),*];
    };
}

checks! {
    DEFAULT_CREDENTIALS = "default-credentials",
        "An account has a vendor default or empty password",
        Critical, Device,
        "Default and empty passwords are the first thing botnets such as Mirai try; a device with one is taken over in minutes once reachable.",
        "Set a unique password per device (or disable password login), then confirm the next inventory shows it.",
        ["5.1-1"], ["I1"];
    SHARED_CREDENTIALS = "shared-credentials",
        "The same password hash is on several devices",
        High, Fleet,
        "An identical salted hash means a cloned image: one cracked or leaked password opens every device that shares it.",
        "Give each device its own password at provisioning; rotate the shared one on every listed device.",
        ["5.1-1", "5.1-2"], ["I1"];
    INSECURE_SERVICE = "insecure-service",
        "Telnet, FTP, UPnP or a debug interface is enabled",
        High, Device,
        "These services send credentials in clear, expose the device to discovery and relay attacks, or give an attacker a debugger.",
        "Disable the service in the firmware or the device's configuration; use SSH with keys for administration.",
        ["5.6-1", "5.6-4", "5.5-1"], ["I2", "I9"];
    UNNEEDED_SERVICE = "unneeded-service",
        "A listening service is not on the allow-list of the device's group",
        Medium, Device,
        "Every reachable service is attack surface; a port the device's profile does not need is either a misconfiguration or a compromise.",
        "Close the port, or add it to the group's allowed services if the device really needs it.",
        ["5.6-1", "5.6-5"], ["I2"];
    SSH_PASSWORD_AUTH = "ssh-password-auth",
        "SSH accepts password authentication",
        Medium, Device,
        "Password logins can be brute-forced over the network; keys cannot.",
        "Set `PasswordAuthentication no` in sshd_config (Dropbear: `-s`) and log in with keys.",
        ["5.1-2A", "5.1-5"], ["I1", "I9"];
    FIRMWARE_OUTDATED = "firmware-outdated",
        "Firmware is older than the model's minimum version",
        High, Device,
        "Firmware below the policy minimum lacks security fixes the vendor has published.",
        "Roll out a current firmware release to the device.",
        ["5.3-2", "5.3-8"], ["I4", "I5"];
    CERTIFICATE_EXPIRING = "certificate-expiring",
        "The device certificate expires soon or has expired",
        Medium, Device,
        "Devices renew well before expiry; a certificate this close to expiry means renewal is failing, and the device will lose its connection (high once expired or within 7 days).",
        "Check the device's clock and its connectivity to the EST endpoint, then renew (simplereenroll) or re-enroll it.",
        ["5.5-8"], ["I8"];
    CERTIFICATE_TOO_OLD = "certificate-too-old",
        "The device certificate was issued long ago",
        Low, Device,
        "Long-lived keys have had longer to leak; short certificate lifetimes limit the damage of an unnoticed compromise.",
        "Rotate the device's key (`garrison device rotate`).",
        ["5.5-8"], ["I8"];
    CERTIFICATE_WEAK_KEY = "certificate-weak-key",
        "The device certificate has a weak key",
        High, Device,
        "RSA below 2048 bits and elliptic curves below 256 bits can be broken with practical effort.",
        "Rotate the device's key to ECDSA P-256 or Ed25519.",
        ["5.5-1", "5.4-4"], ["I7"];
    CERTIFICATE_SHARED = "certificate-shared",
        "A device key is shared with other devices, or its certificate is in use from several places",
        High, Fleet,
        "Devices whose certificates share one key pair (a key baked into a factory image) can each pass for the others, and a certificate connecting from several addresses and taking sessions from itself has been copied to another machine: whoever holds the key is the device.",
        "Revoke the certificates (reason key-compromise), have each device generate its own key and re-enroll, and find where the copies came from.",
        ["5.4-2", "5.4-4"], ["I1", "I8"];
    REVOKED_CERTIFICATE_CONNECTED = "revoked-certificate-connected",
        "A revoked certificate still has a live connection",
        Critical, Fleet,
        "Revocation only helps if it is enforced; a session that outlives its certificate's revocation keeps an evicted device inside.",
        "Quarantine the device at once, then check that the broker backend refuses the revoked certificate and closes its sessions.",
        ["5.5-8"], ["I8"];
    CONFLICTING_CLIENT_IDS = "conflicting-client-ids",
        "Connections keep taking over the same device's session",
        Medium, Fleet,
        "Two clients with one identity push each other off the broker: a cloned device, a misconfigured fleet image, or an attacker competing with the device.",
        "Find the clients connecting as this device (addresses in the evidence); give each its own identity.",
        ["5.4-2", "5.9-3"], ["I8"];
    LOGGING_DISABLED = "logging-disabled",
        "No system logger is running",
        Low, Device,
        "Without logs nothing on the device can be examined after an incident, nor forwarded for monitoring.",
        "Enable the system logger (syslogd, rsyslog or journald) and forward it to Garrison.",
        ["5.10-1"], ["I8"];
    NO_TIME_SYNC = "no-time-sync",
        "The clock is not synchronised",
        Medium, Device,
        "Certificate validation, update expiry and event correlation all depend on a correct clock.",
        "Enable NTP (systemd-timesyncd, chrony or ntpd) against a trusted time source.",
        ["5.5-1"], ["I9"];
    FIREWALL_DISABLED = "firewall-disabled",
        "No packet filter is active",
        Low, Device,
        "A packet filter limits who can reach the services a device must run.",
        "Enable nftables or iptables with a default-deny inbound policy.",
        ["5.6-1"], ["I9"];
    SECURE_BOOT_DISABLED = "secure-boot-disabled",
        "Secure boot is off",
        Low, Device,
        "Without verified boot, a modified bootloader or kernel runs unnoticed.",
        "Enable secure boot in the firmware setup and enroll the vendor's keys.",
        ["5.7-1"], ["I10"];
    STALE_INVENTORY = "stale-inventory",
        "The device has not reported its inventory recently",
        Low, Device,
        "A device that stops reporting cannot be audited: its findings describe the past.",
        "Check the device's agent and connectivity; it reports at every connection and at least daily.",
        ["5.10-1"], ["I8"];
}

/// A check by id.
pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The ids of the checks of a scope.
pub fn ids(scope: Option<Scope>) -> Vec<String> {
    CHECKS
        .iter()
        .filter(|c| scope.is_none_or(|s| c.scope == s))
        .map(|c| c.id.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_complete_and_unique() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
        for c in CHECKS {
            assert!(
                !c.etsi.is_empty() && !c.owasp.is_empty(),
                "{} has no mapping",
                c.id
            );
            assert!(c.owasp.iter().all(|o| o.starts_with('I')), "{}", c.id);
            assert!(
                c.rationale.ends_with('.') && c.remediation.ends_with('.'),
                "{}",
                c.id
            );
        }
        assert_eq!(
            check(SSH_PASSWORD_AUTH).map(|c| c.scope),
            Some(Scope::Device)
        );
    }
}
