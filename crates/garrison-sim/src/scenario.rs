//! Attack scenarios a simulated device can be made to play, as real devices would show them:
//! through their events, telemetry and inventory, and (for the broker-facing ones) through real
//! MQTT connections.
//!
//! | scenario | what the device does |
//! |---|---|
//! | `mirai` | telnet brute force from the Internet, a successful root login, a dropped binary that changes `/bin/busybox`, a C2 connection, a new telnet listener, then scanning on 23/2323 |
//! | `c2-beacon` | a connection to the listed C2 address every 30 s |
//! | `port-scan` | connections to every address of its /24 on common ports |
//! | `firmware-tamper` | an inventory with older firmware and a changed `/bin/busybox` |
//! | `credential-stuffing` | 30 MQTT connections with its certificate but other devices' client ids |
//! | `reconnect-storm` | 20 disconnect/reconnect cycles with no back-off |

use std::{fmt, str::FromStr, time::Duration};

/// The C2 server the scenarios contact (TEST-NET-2, never routed).
pub const C2_ADDRESS: &str = "198.51.100.23";
/// Where the brute force comes from (TEST-NET-3).
pub const ATTACKER_ADDRESS: &str = "203.0.113.66";

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// Mirai-style telnet brute force, then infection and scanning.
    Mirai,
    /// Beaconing to a listed C2 address.
    C2Beacon,
    /// A port scan of the device's subnet.
    PortScan,
    /// A firmware downgrade with a modified system binary.
    FirmwareTamper,
    /// Many broker connections under other devices' client ids.
    CredentialStuffing,
    /// Reconnecting flat out.
    ReconnectStorm,
}

impl ScenarioKind {
    /// Every scenario.
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::Mirai,
        ScenarioKind::C2Beacon,
        ScenarioKind::PortScan,
        ScenarioKind::FirmwareTamper,
        ScenarioKind::CredentialStuffing,
        ScenarioKind::ReconnectStorm,
    ];

    /// The stable name (`c2-beacon`).
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::Mirai => "mirai",
            ScenarioKind::C2Beacon => "c2-beacon",
            ScenarioKind::PortScan => "port-scan",
            ScenarioKind::FirmwareTamper => "firmware-tamper",
            ScenarioKind::CredentialStuffing => "credential-stuffing",
            ScenarioKind::ReconnectStorm => "reconnect-storm",
        }
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scenario to run on some devices after a delay: `KIND:DEVICE[,DEVICE…][@DELAY]`, e.g.
/// `mirai:sim-cam-0003@60s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// What to do.
    pub kind: ScenarioKind,
    /// Which devices (ids).
    pub devices: Vec<String>,
    /// How long after the fleet is connected.
    pub after: Duration,
}

/// A scenario specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad scenario {spec:?}: {reason} (expected KIND:DEVICE[,DEVICE…][@DELAY] with KIND one of mirai, c2-beacon, port-scan, firmware-tamper, credential-stuffing, reconnect-storm)"
)]
pub struct ScenarioError {
    spec: String,
    reason: &'static str,
}

impl FromStr for Scenario {
    type Err = ScenarioError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ScenarioError {
            spec: spec.to_owned(),
            reason,
        };
        let (kind, rest) = spec.split_once(':').ok_or_else(|| fail("no ':'"))?;
        let kind = ScenarioKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| fail("unknown kind"))?;
        let (devices, after) = match rest.split_once('@') {
            Some((d, delay)) => (
                d,
                humantime::parse_duration(delay).map_err(|_| fail("bad delay"))?,
            ),
            None => (rest, Duration::ZERO),
        };
        let devices: Vec<String> = devices
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        if devices.is_empty() {
            return Err(fail("no device"));
        }
        Ok(Scenario {
            kind,
            devices,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s: Scenario = "mirai:sim-cam-0003,sim-cam-0010@90s".parse().unwrap();
        assert_eq!(s.kind, ScenarioKind::Mirai);
        assert_eq!(s.devices, ["sim-cam-0003", "sim-cam-0010"]);
        assert_eq!(s.after, Duration::from_secs(90));
        assert_eq!(
            "port-scan:x".parse::<Scenario>().unwrap().after,
            Duration::ZERO
        );
        for bad in ["mirai", "teleport:x", "mirai:@1s", "mirai:x@soon"] {
            assert!(bad.parse::<Scenario>().is_err(), "{bad}");
        }
    }
}
