//! The security classification: a risk score per device with the explanation of every point.
//!
//! Risk is likelihood × impact. Likelihood points come from what an attacker can reach and
//! what is already known to be wrong:
//! - **class**: gateways bridge networks (+10); embedded and rich devices run a full OS (+5);
//!   constrained devices add nothing;
//! - **exposure**: each non-loopback listening port +2 (at most +10), each risky service
//!   (telnet, FTP, UPnP, debug interfaces) +10 (at most +30), SSH password authentication +5;
//! - **findings**: each open posture finding by severity (critical 27, high 9, medium 3,
//!   low 1; at most +50).
//!
//! The sum (at most 100) is scaled by the highest impact of the device's groups: low ×0.6,
//! moderate (the default when no group says) ×1.0, high ×1.3, critical ×1.6; the score is
//! capped at 100. A score of 70 or more is `high` risk, 40 or more `medium`.

use garrison_core::{Impact, Severity};
use garrison_store::inventory::DeviceSummary;
use serde::Serialize;

/// A device's risk score and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    /// 0–100.
    pub score: u32,
    /// `low`, `medium` or `high`.
    pub level: &'static str,
    /// Each contribution, in the order added.
    pub factors: Vec<RiskFactor>,
}

/// One contribution to a risk score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskFactor {
    /// `class`, `exposure`, `finding` or `impact`.
    pub kind: &'static str,
    /// Points added (for `impact`: the multiplier ×100).
    pub points: u32,
    /// What it is.
    pub detail: String,
}

impl Risk {
    /// The score of a device with nothing known about it.
    pub fn unknown() -> Risk {
        Risk {
            score: 0,
            level: "low",
            factors: Vec::new(),
        }
    }
}

fn impact_factor(impact: Option<Impact>) -> (u32, &'static str) {
    match impact {
        Some(Impact::Low) => (60, "low"),
        None | Some(Impact::Moderate) => (100, "moderate"),
        Some(Impact::High) => (130, "high"),
        Some(Impact::Critical) => (160, "critical"),
    }
}

/// Scores a device from its summary, its open findings and the highest impact of its groups.
pub fn score(
    summary: Option<&DeviceSummary>,
    findings: &[(String, Severity)],
    impact: Option<Impact>,
) -> Risk {
    let mut factors = Vec::new();
    let mut add = |kind, points: u32, detail: String| {
        if points > 0 {
            factors.push(RiskFactor {
                kind,
                points,
                detail,
            });
        }
        points
    };
    let mut likelihood = 0u32;
    if let Some(s) = summary {
        let class_points = match s.class.as_deref() {
            Some("gateway") => 10,
            Some("embedded" | "rich") => 5,
            _ => 0,
        };
        if let Some(class) = &s.class {
            likelihood += add("class", class_points, format!("{class} device"));
        }
        let ports = s.tcp_ports.len() + s.udp_ports.len();
        let port_points = u32::try_from(ports)
            .unwrap_or(u32::MAX)
            .saturating_mul(2)
            .min(10);
        likelihood += add(
            "exposure",
            port_points,
            format!("{ports} network-reachable listening port(s)"),
        );
        let risky = u32::try_from(s.risky_services.len()).unwrap_or(u32::MAX);
        likelihood += add(
            "exposure",
            risky.saturating_mul(10).min(30),
            format!("risky services: {}", s.risky_services.join(", ")),
        );
        if s.ssh_password_auth == Some(true) {
            likelihood += add("exposure", 5, "SSH accepts passwords".into());
        }
    }
    let mut finding_points = 0u32;
    for (check, severity) in findings {
        let points = severity.weight().min(50 - finding_points.min(50));
        finding_points += add("finding", points, format!("{severity} finding {check}"));
    }
    likelihood = (likelihood + finding_points).min(100);
    let (factor, name) = impact_factor(impact);
    if factor != 100 {
        factors.push(RiskFactor {
            kind: "impact",
            points: factor,
            detail: format!("{name} impact group: ×{:.1}", f64::from(factor) / 100.0),
        });
    }
    let score = (likelihood * factor / 100).min(100);
    let level = match score {
        70.. => "high",
        40..=69 => "medium",
        _ => "low",
    };
    Risk {
        score,
        level,
        factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_explained() {
        let summary = DeviceSummary {
            class: Some("embedded".into()),
            tcp_ports: vec![23, 80, 554],
            risky_services: vec!["telnet".into()],
            ssh_password_auth: Some(true),
            ..DeviceSummary::default()
        };
        let findings = vec![
            ("default-credentials".to_owned(), Severity::Critical),
            ("insecure-service".to_owned(), Severity::High),
        ];
        let risk = score(Some(&summary), &findings, None);
        // 5 class + 6 ports + 10 telnet + 5 ssh + 27 + 9 = 62.
        assert_eq!(risk.score, 62);
        assert_eq!(risk.level, "medium");
        let sum: u32 = risk.factors.iter().map(|f| f.points).sum();
        assert_eq!(sum, 62);
        let critical = score(Some(&summary), &findings, Some(Impact::Critical));
        assert_eq!(critical.score, 99);
        assert_eq!(critical.level, "high");
        assert_eq!(critical.factors.last().map(|f| f.kind), Some("impact"));
    }

    #[test]
    fn findings_are_capped_and_nothing_known_is_zero() {
        let many: Vec<(String, Severity)> = (0..5)
            .map(|i| (format!("c{i}"), Severity::Critical))
            .collect();
        assert_eq!(score(None, &many, None).score, 50);
        assert_eq!(score(None, &[], None), Risk::unknown());
    }
}
