//! Devices as the rest of Garrison sees them: their identifiers, the MQTT topics of the device
//! contract, and who may publish or subscribe where.
//!
//! The topic rules live here, free of any broker, so the embedded broker, an external-broker
//! backend and the tests all enforce one table. The contract (`DESIGN.md`): device `D` publishes
//! to `garrison/v1/d/D/{birth,inventory,telemetry,events,cmd/result,update/status}` and subscribes
//! to `garrison/v1/d/D/{cmd,update}`; nothing else.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::InvalidId;

/// A device's identifier: its certificate's subject CN and its MQTT client id.
///
/// 1–128 characters of `A-Z a-z 0-9 . _ -` starting with a letter or digit — nothing that could
/// change the meaning of a topic (`/ + #`) or of a distinguished name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses and validates a device id.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        let fail = |reason| InvalidId {
            kind: "device id",
            value: value.chars().take(80).collect(),
            reason,
        };
        if value.is_empty() {
            return Err(fail("must not be empty"));
        }
        if value.len() > 128 {
            return Err(fail("is longer than 128 characters"));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(fail("must start with a letter or digit"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(fail("may contain only A-Z, a-z, 0-9, '.', '_' and '-'"));
        }
        Ok(Self(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl FromStr for DeviceId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl From<DeviceId> for String {
    fn from(value: DeviceId) -> Self {
        value.0
    }
}

// Ordering, equality and hashing are the inner string's, so maps keyed by `DeviceId` can be
// searched with a `&str`.
impl std::borrow::Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of every device's topic tree.
pub const TOPIC_ROOT: &str = "garrison/v1/d/";

/// Channels a device publishes on (relative to `garrison/v1/d/<id>/`).
pub const DEVICE_TO_SERVER: &[&str] = &[
    "birth",
    "inventory",
    "telemetry",
    "events",
    "cmd/result",
    "update/status",
];

/// Channels the server publishes on and the device subscribes to.
pub const SERVER_TO_DEVICE: &[&str] = &["cmd", "update"];

/// Channels a quarantined device may still publish on: reporting the outcome of the commands
/// and updates that are meant to bring it back into line.
pub const QUARANTINE_PUBLISH: &[&str] = &["cmd/result", "update/status"];

/// The topic of `channel` for `device`.
pub fn device_topic(device: &DeviceId, channel: &str) -> String {
    format!("{TOPIC_ROOT}{device}/{channel}")
}

/// Why a publish or subscribe was refused — logged and counted as an authorization failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicRefusal {
    /// Outside the device's own `garrison/v1/d/<id>/` tree.
    ForeignTopic,
    /// Inside its tree, but not a channel of the contract in that direction.
    NotAChannel,
    /// The device is quarantined and this channel is closed to it.
    Quarantined,
    /// Wildcards are not allowed in a device's subscriptions.
    Wildcard,
}

impl TopicRefusal {
    /// A short stable reason, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicRefusal::ForeignTopic => "foreign_topic",
            TopicRefusal::NotAChannel => "not_a_channel",
            TopicRefusal::Quarantined => "quarantined",
            TopicRefusal::Wildcard => "wildcard",
        }
    }
}

impl fmt::Display for TopicRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel part of `topic` if it lies in `device`'s own tree.
fn own_channel<'t>(device: &DeviceId, topic: &'t str) -> Option<&'t str> {
    topic
        .strip_prefix(TOPIC_ROOT)?
        .strip_prefix(device.as_str())?
        .strip_prefix('/')
}

/// Whether `device` may publish to `topic`.
pub fn check_publish(
    device: &DeviceId,
    topic: &str,
    quarantined: bool,
) -> Result<(), TopicRefusal> {
    let channel = own_channel(device, topic).ok_or(TopicRefusal::ForeignTopic)?;
    if !DEVICE_TO_SERVER.contains(&channel) {
        return Err(TopicRefusal::NotAChannel);
    }
    if quarantined && !QUARANTINE_PUBLISH.contains(&channel) {
        return Err(TopicRefusal::Quarantined);
    }
    Ok(())
}

/// Whether `device` may subscribe to `filter`. Server → device channels stay open under
/// quarantine: they are how the device is repaired.
pub fn check_subscribe(device: &DeviceId, filter: &str) -> Result<(), TopicRefusal> {
    // `$share/group/…` would let a device join another's delivery; refuse anything but its own.
    let channel = own_channel(device, filter).ok_or(TopicRefusal::ForeignTopic)?;
    if channel.contains(['+', '#']) {
        return Err(TopicRefusal::Wildcard);
    }
    if !SERVER_TO_DEVICE.contains(&channel) {
        return Err(TopicRefusal::NotAChannel);
    }
    Ok(())
}

/// Why a certificate was revoked (RFC 5280 CRLReason, the subset an operator chooses from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The device's private key is (or may be) known to someone else.
    KeyCompromise,
    /// The device changed owner or site.
    AffiliationChanged,
    /// Replaced by a newer certificate (renewal, rotation).
    Superseded,
    /// The device was decommissioned.
    CessationOfOperation,
    /// The device is no longer allowed in.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, for help texts and tests.
    pub const ALL: &'static [RevocationReason] = &[
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];

    /// The stable name (`key-compromise`).
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RevocationReason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidId {
                kind: "revocation reason",
                value: s.chars().take(80).collect(),
                reason: "expected unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation or privilege-withdrawn",
            })
    }
}

/// What a certificate Garrison issued is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateKind {
    /// A device's own identity: may connect to the broker as that device.
    Device,
    /// A shared factory claim certificate: may only enroll, never connect as a device.
    Claim,
}

impl CertificateKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateKind::Device => "device",
            CertificateKind::Claim => "claim",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<CertificateKind> {
        match s {
            "device" => Some(CertificateKind::Device),
            "claim" => Some(CertificateKind::Claim),
            _ => None,
        }
    }
}

/// How a device's certificate came to be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EnrollmentMethod {
    /// A one-time bootstrap token.
    Token,
    /// A factory claim certificate.
    Claim,
    /// An operator approved it (or pre-authorised the id).
    Approval,
    /// Renewal with the device's current certificate.
    Renewal,
}

impl EnrollmentMethod {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentMethod::Token => "token",
            EnrollmentMethod::Claim => "claim",
            EnrollmentMethod::Approval => "approval",
            EnrollmentMethod::Renewal => "renewal",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<EnrollmentMethod> {
        [
            EnrollmentMethod::Token,
            EnrollmentMethod::Claim,
            EnrollmentMethod::Approval,
            EnrollmentMethod::Renewal,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Whether `pattern` (a device id, or a prefix ending in `*`) admits `device`. Bootstrap tokens
/// carry such a pattern so one token can serve a production batch (`line4-*`).
pub fn pattern_matches(pattern: &str, device: &DeviceId) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => device.as_str().starts_with(prefix),
        None => pattern == device.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    #[test]
    fn device_ids_refuse_topic_and_dn_metacharacters() {
        for bad in [
            "",
            "a/b",
            "a+b",
            "#",
            "a b",
            "-lead",
            "CN=x",
            "é",
            &"x".repeat(129),
        ] {
            assert!(DeviceId::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["dev-1", "CAM_0042", "a", "plc.line4.7"] {
            assert!(DeviceId::new(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn publish_only_inside_own_tree_and_only_device_channels() {
        let d = id("dev-1");
        for ch in DEVICE_TO_SERVER {
            assert_eq!(check_publish(&d, &device_topic(&d, ch), false), Ok(()));
        }
        let refused = [
            ("garrison/v1/d/dev-2/telemetry", TopicRefusal::ForeignTopic),
            ("garrison/v1/d/dev-10/telemetry", TopicRefusal::ForeignTopic),
            ("garrison/v1/d/dev-1", TopicRefusal::ForeignTopic),
            ("garrison/v1/d/dev-1/cmd", TopicRefusal::NotAChannel),
            ("garrison/v1/d/dev-1/update", TopicRefusal::NotAChannel),
            ("garrison/v1/d/dev-1/telemetry/x", TopicRefusal::NotAChannel),
            ("other/topic", TopicRefusal::ForeignTopic),
        ];
        for (topic, why) in refused {
            assert_eq!(check_publish(&d, topic, false), Err(why), "{topic}");
        }
    }

    #[test]
    fn quarantine_keeps_only_result_and_status_channels() {
        let d = id("dev-1");
        for ch in DEVICE_TO_SERVER {
            let expect = if QUARANTINE_PUBLISH.contains(ch) {
                Ok(())
            } else {
                Err(TopicRefusal::Quarantined)
            };
            assert_eq!(
                check_publish(&d, &device_topic(&d, ch), true),
                expect,
                "{ch}"
            );
        }
    }

    #[test]
    fn subscribe_only_to_own_server_channels_without_wildcards() {
        let d = id("dev-1");
        assert_eq!(check_subscribe(&d, "garrison/v1/d/dev-1/cmd"), Ok(()));
        assert_eq!(check_subscribe(&d, "garrison/v1/d/dev-1/update"), Ok(()));
        for (filter, why) in [
            ("garrison/v1/d/dev-1/#", TopicRefusal::Wildcard),
            ("garrison/v1/d/dev-1/+", TopicRefusal::Wildcard),
            ("garrison/v1/d/+/cmd", TopicRefusal::ForeignTopic),
            ("#", TopicRefusal::ForeignTopic),
            (
                "$share/g/garrison/v1/d/dev-1/cmd",
                TopicRefusal::ForeignTopic,
            ),
            ("garrison/v1/d/dev-2/cmd", TopicRefusal::ForeignTopic),
            ("garrison/v1/d/dev-1/telemetry", TopicRefusal::NotAChannel),
        ] {
            assert_eq!(check_subscribe(&d, filter), Err(why), "{filter}");
        }
    }

    #[test]
    fn patterns_match_exact_ids_and_prefixes() {
        assert!(pattern_matches("dev-1", &id("dev-1")));
        assert!(!pattern_matches("dev-1", &id("dev-10")));
        assert!(pattern_matches("line4-*", &id("line4-0007")));
        assert!(!pattern_matches("line4-*", &id("line5-0007")));
        assert!(pattern_matches("*", &id("anything")));
    }

    #[test]
    fn reasons_round_trip() {
        for r in RevocationReason::ALL {
            assert_eq!(r.as_str().parse::<RevocationReason>(), Ok(*r));
        }
    }
}
