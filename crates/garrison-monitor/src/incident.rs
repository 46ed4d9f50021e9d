//! Alerts grouped into incidents: everything open about one device is one story (a brute force,
//! the infection it led to, the scanning after, the anomalies around it), so an analyst
//! triages devices, not rule hits. Alerts that name no device are grouped by rule.
//!
//! Pure: alerts in, incidents out, worst first.

use std::collections::{BTreeMap, BTreeSet};

use garrison_core::{DeviceId, Severity, UnixMillis};
use garrison_store::monitor::Alert;
use serde::Serialize;

/// Open alerts about one device (or, without a device, of one rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// The device, when the alerts name one.
    pub device: Option<DeviceId>,
    /// The rule, for alerts that name no device.
    pub rule: Option<String>,
    /// The worst alert's severity.
    pub severity: Severity,
    /// How many alerts.
    pub alerts: usize,
    /// Their occurrences, summed.
    pub occurrences: i64,
    /// Every ATT&CK technique they carry, sorted.
    pub techniques: Vec<String>,
    /// Their titles, sorted.
    pub titles: Vec<String>,
    /// The earliest first occurrence.
    pub first_seen: UnixMillis,
    /// The latest occurrence.
    pub last_seen: UnixMillis,
    /// The alerts' ids, newest last seen first.
    pub alert_ids: Vec<String>,
}

/// Groups `alerts` into incidents, worst severity first, then most recent.
pub fn group(alerts: &[Alert]) -> Vec<Incident> {
    let mut groups: BTreeMap<(Option<&DeviceId>, Option<&str>), Vec<&Alert>> = BTreeMap::new();
    for alert in alerts {
        let key = match &alert.device {
            Some(d) => (Some(d), None),
            None => (None, Some(alert.rule_id.as_str())),
        };
        groups.entry(key).or_default().push(alert);
    }
    let mut incidents: Vec<Incident> = groups
        .into_iter()
        .map(|((device, rule), mut members)| {
            members.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
            let techniques: BTreeSet<&String> =
                members.iter().flat_map(|a| a.techniques.iter()).collect();
            let titles: BTreeSet<&String> = members.iter().map(|a| &a.title).collect();
            Incident {
                device: device.cloned(),
                rule: rule.map(str::to_owned),
                severity: members
                    .iter()
                    .map(|a| a.severity)
                    .max()
                    .unwrap_or(Severity::Info),
                alerts: members.len(),
                occurrences: members.iter().map(|a| a.occurrences).sum(),
                techniques: techniques.into_iter().cloned().collect(),
                titles: titles.into_iter().cloned().collect(),
                first_seen: members.iter().map(|a| a.first_seen).min().unwrap_or(0),
                last_seen: members.iter().map(|a| a.last_seen).max().unwrap_or(0),
                alert_ids: members.iter().map(|a| a.id.clone()).collect(),
            }
        })
        .collect();
    incidents.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.last_seen.cmp(&a.last_seen))
            .then(a.device.cmp(&b.device))
    });
    incidents
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use garrison_core::TenantId;
    use garrison_store::monitor::AlertStatus;

    fn alert(
        id: &str,
        device: Option<&str>,
        rule: &str,
        severity: Severity,
        seen: (i64, i64),
    ) -> Alert {
        Alert {
            id: id.into(),
            tenant: TenantId::default(),
            dedup_key: id.into(),
            rule_id: rule.into(),
            title: format!("title {rule}"),
            severity,
            device: device.map(|d| DeviceId::new(d).unwrap()),
            status: AlertStatus::New,
            techniques: vec![format!("T{}", rule.len())],
            tags: Vec::new(),
            first_seen: seen.0,
            last_seen: seen.1,
            occurrences: 2,
            evidence: serde_json::Value::Null,
            updated_at: 0,
        }
    }

    #[test]
    fn a_device_is_one_incident_and_the_worst_comes_first() {
        let alerts = [
            alert("a1", Some("cam-1"), "brute", Severity::Medium, (10, 20)),
            alert(
                "a2",
                Some("cam-1"),
                "mirai-chain",
                Severity::Critical,
                (15, 30),
            ),
            alert("a3", Some("cam-1"), "scan", Severity::High, (25, 40)),
            alert("b1", Some("plug-2"), "brute", Severity::Medium, (5, 50)),
            alert("c1", None, "broker-auth", Severity::High, (1, 2)),
            alert("c2", None, "broker-auth", Severity::Low, (3, 4)),
        ];
        let incidents = group(&alerts);
        assert_eq!(incidents.len(), 3);
        let cam = &incidents[0];
        assert_eq!(cam.device.as_ref().unwrap().as_str(), "cam-1");
        assert_eq!(cam.severity, Severity::Critical);
        assert_eq!((cam.alerts, cam.occurrences), (3, 6));
        assert_eq!((cam.first_seen, cam.last_seen), (10, 40));
        assert_eq!(cam.alert_ids, ["a3", "a2", "a1"]);
        assert_eq!(cam.techniques, ["T11", "T4", "T5"]);
        assert_eq!(cam.titles.len(), 3);
        // Same severity: the more recent first.
        assert_eq!(incidents[1].rule.as_deref(), Some("broker-auth"));
        assert_eq!(incidents[1].alerts, 2);
        assert_eq!(incidents[2].device.as_ref().unwrap().as_str(), "plug-2");
        assert!(group(&[]).is_empty());
    }
}
