//! How bad something is: one scale for audit findings, drift events and (later) alerts.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Severity, least to most severe; ordered, so `max()` picks the worst.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no action needed.
    Info,
    /// Fix when convenient.
    Low,
    /// Fix soon.
    Medium,
    /// Fix now: an attacker can use this.
    High,
    /// Fix immediately: exploitation is trivial or already under way.
    Critical,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The stable name (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// A weight for scoring: each step is worth about three of the one below.
    pub fn weight(self) -> u32 {
        match self {
            Severity::Info => 0,
            Severity::Low => 1,
            Severity::Medium => 3,
            Severity::High => 9,
            Severity::Critical => 27,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}: expected info, low, medium, high or critical")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseSeverityError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_and_named() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        assert!("severe".parse::<Severity>().is_err());
    }
}

/// How much harm a compromise of a group's devices would do (FIPS 199 levels, plus critical for
/// safety-relevant equipment such as infusion pumps and industrial controllers).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    /// Limited adverse effect.
    Low,
    /// Serious adverse effect.
    Moderate,
    /// Severe or catastrophic effect on operations or assets.
    High,
    /// Harm to people or physical processes.
    Critical,
}

impl Impact {
    /// Every level, lowest first.
    pub const ALL: [Impact; 4] = [
        Impact::Low,
        Impact::Moderate,
        Impact::High,
        Impact::Critical,
    ];

    /// The stable name (`moderate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Low => "low",
            Impact::Moderate => "moderate",
            Impact::High => "high",
            Impact::Critical => "critical",
        }
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Impact {
    type Err = ParseSeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Impact::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ParseSeverityError(format!("{s} (impact: low, moderate, high or critical)"))
            })
    }
}
