//! The built-in IoT rule pack: Sigma detection and correlation rules written for Garrison's
//! normalised event (`docs/events.md`), compiled into the binary.
//!
//! The rules are embedded with `include_str!` rather than read from disk so that a Garrison
//! binary always carries its own pack: nothing has to be installed next to it, a deployment
//! cannot lose or half-update the files, and the rules that run are exactly the ones the
//! binary was tested with.
//!
//! The source files live in `rules/iot/` (one rule per file, or a building-block detection and
//! the correlations over it in one multi-document file); each carries `rsigma.exemplars`, so
//! `garrison rules test` and the crate's tests check every rule against its own positive and
//! negative events.

use crate::RuleSet;

/// Every rule file of the pack: its label (`iot/<file>.yml`) and its text.
pub const IOT_RULES: &[(&str, &str)] = &[
    (
        "iot/account_persistence_file_changed.yml",
        include_str!("../rules/iot/account_persistence_file_changed.yml"),
    ),
    (
        "iot/broker_authorization_burst.yml",
        include_str!("../rules/iot/broker_authorization_burst.yml"),
    ),
    (
        "iot/broker_credential_stuffing.yml",
        include_str!("../rules/iot/broker_credential_stuffing.yml"),
    ),
    (
        "iot/broker_topic_acl_violation.yml",
        include_str!("../rules/iot/broker_topic_acl_violation.yml"),
    ),
    (
        "iot/c2_irc_port.yml",
        include_str!("../rules/iot/c2_irc_port.yml"),
    ),
    (
        "iot/certificate_new_network.yml",
        include_str!("../rules/iot/certificate_new_network.yml"),
    ),
    (
        "iot/clock_backwards.yml",
        include_str!("../rules/iot/clock_backwards.yml"),
    ),
    (
        "iot/clock_tampering.yml",
        include_str!("../rules/iot/clock_tampering.yml"),
    ),
    (
        "iot/crypto_miner.yml",
        include_str!("../rules/iot/crypto_miner.yml"),
    ),
    (
        "iot/default_account_telnet_login.yml",
        include_str!("../rules/iot/default_account_telnet_login.yml"),
    ),
    (
        "iot/download_and_execute.yml",
        include_str!("../rules/iot/download_and_execute.yml"),
    ),
    (
        "iot/exfiltration_volume.yml",
        include_str!("../rules/iot/exfiltration_volume.yml"),
    ),
    (
        "iot/firmware_downgrade.yml",
        include_str!("../rules/iot/firmware_downgrade.yml"),
    ),
    (
        "iot/firmware_integrity.yml",
        include_str!("../rules/iot/firmware_integrity.yml"),
    ),
    (
        "iot/insecure_config_drift.yml",
        include_str!("../rules/iot/insecure_config_drift.yml"),
    ),
    (
        "iot/log_wiping.yml",
        include_str!("../rules/iot/log_wiping.yml"),
    ),
    (
        "iot/login_after_brute_force.yml",
        include_str!("../rules/iot/login_after_brute_force.yml"),
    ),
    (
        "iot/mirai_gafgyt_binary.yml",
        include_str!("../rules/iot/mirai_gafgyt_binary.yml"),
    ),
    (
        "iot/mirai_infection_chain.yml",
        include_str!("../rules/iot/mirai_infection_chain.yml"),
    ),
    (
        "iot/new_listening_port.yml",
        include_str!("../rules/iot/new_listening_port.yml"),
    ),
    (
        "iot/new_login_account.yml",
        include_str!("../rules/iot/new_login_account.yml"),
    ),
    (
        "iot/os_downgrade.yml",
        include_str!("../rules/iot/os_downgrade.yml"),
    ),
    (
        "iot/port_scan.yml",
        include_str!("../rules/iot/port_scan.yml"),
    ),
    (
        "iot/process_from_writable_dir.yml",
        include_str!("../rules/iot/process_from_writable_dir.yml"),
    ),
    (
        "iot/reconnect_storm.yml",
        include_str!("../rules/iot/reconnect_storm.yml"),
    ),
    (
        "iot/revoked_certificate.yml",
        include_str!("../rules/iot/revoked_certificate.yml"),
    ),
    (
        "iot/risky_listening_port.yml",
        include_str!("../rules/iot/risky_listening_port.yml"),
    ),
    (
        "iot/risky_listening_port_drift.yml",
        include_str!("../rules/iot/risky_listening_port_drift.yml"),
    ),
    (
        "iot/ssh_brute_force.yml",
        include_str!("../rules/iot/ssh_brute_force.yml"),
    ),
    (
        "iot/ssh_login_without_key.yml",
        include_str!("../rules/iot/ssh_login_without_key.yml"),
    ),
    (
        "iot/telemetry_rate_spike.yml",
        include_str!("../rules/iot/telemetry_rate_spike.yml"),
    ),
    (
        "iot/telnet_brute_force.yml",
        include_str!("../rules/iot/telnet_brute_force.yml"),
    ),
    (
        "iot/telnet_login_success.yml",
        include_str!("../rules/iot/telnet_login_success.yml"),
    ),
    (
        "iot/telnet_scanning.yml",
        include_str!("../rules/iot/telnet_scanning.yml"),
    ),
    (
        "iot/threat_intel_connection.yml",
        include_str!("../rules/iot/threat_intel_connection.yml"),
    ),
    (
        "iot/threat_intel_telemetry.yml",
        include_str!("../rules/iot/threat_intel_telemetry.yml"),
    ),
    (
        "iot/watched_file_drift.yml",
        include_str!("../rules/iot/watched_file_drift.yml"),
    ),
];

/// The built-in IoT pack loaded into a [`RuleSet`]; its report names each document by its
/// `iot/<file>.yml` label.
pub fn iot_rule_set() -> RuleSet {
    let mut set = RuleSet::new();
    for (source, yaml) in IOT_RULES {
        set.add_yaml(source, yaml);
    }
    set
}
