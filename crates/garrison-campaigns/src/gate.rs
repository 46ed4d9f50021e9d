//! The release gate: a campaign may require its release's SBOM to pass a policy before it
//! starts. [`ReleaseGate`] is the hook the vulnerability capability will implement (matching
//! components against advisories); [`SbomPolicy`] is the policy Garrison has today — components
//! denied outright or below a minimum version (`openssl<3.0.7`, `telnetd`).
//!
//! A release's SBOM is the CycloneDX JSON artifact of its manifest (a name ending in
//! `.cdx.json`), so it is covered by the same signature as the software it describes.

use garrison_contract::Sbom;
use garrison_core::version::compare_versions;

/// Judges a release by its SBOM.
pub trait ReleaseGate: Send + Sync {
    /// Why the release may not be rolled out (empty: it passes).
    fn violations(&self, sbom: &Sbom) -> Vec<String>;
}

/// A component the policy refuses: any version, or versions below `below`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedComponent {
    /// Component name, as the SBOM lists it.
    pub name: String,
    /// Versions below this are refused; none: every version is.
    pub below: Option<String>,
}

/// Why a policy entry cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SBOM policy entry {0:?}: write NAME or NAME<VERSION (openssl<3.0.7)")]
pub struct PolicyError(pub String);

impl std::str::FromStr for DeniedComponent {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError(s.to_owned());
        let (name, below) = match s.split_once('<') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (s.trim(), None),
        };
        if name.is_empty() || below.is_some_and(str::is_empty) {
            return Err(bad());
        }
        Ok(DeniedComponent {
            name: name.to_owned(),
            below: below.map(str::to_owned),
        })
    }
}

/// Components denied outright or below a version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SbomPolicy {
    /// The denied components.
    pub deny: Vec<DeniedComponent>,
}

impl ReleaseGate for SbomPolicy {
    fn violations(&self, sbom: &Sbom) -> Vec<String> {
        let mut out = Vec::new();
        for component in &sbom.components {
            for denied in &self.deny {
                if !component.name.eq_ignore_ascii_case(&denied.name) {
                    continue;
                }
                let version = component.version.as_deref();
                match (&denied.below, version) {
                    (None, _) => out.push(format!(
                        "{} {} is denied",
                        component.name,
                        version.unwrap_or("(no version)")
                    )),
                    (Some(min), Some(v)) if compare_versions(v, min).is_lt() => {
                        out.push(format!("{} {v} is below the minimum {min}", component.name))
                    }
                    (Some(min), None) => out.push(format!(
                        "{} has no version; the policy needs at least {min}",
                        component.name
                    )),
                    _ => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sbom(components: &[(&str, Option<&str>)]) -> Sbom {
        serde_json::from_value(serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": components.iter().map(|(n, v)| serde_json::json!({
                "type": "library", "name": n, "version": v,
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn denied_components_and_minimum_versions() {
        let policy = SbomPolicy {
            deny: vec!["openssl<3.0.7".parse().unwrap(), "telnetd".parse().unwrap()],
        };
        assert!(
            policy
                .violations(&sbom(&[
                    ("openssl", Some("3.0.11")),
                    ("busybox", Some("1.36.1"))
                ]))
                .is_empty()
        );
        let v = policy.violations(&sbom(&[
            ("openssl", Some("1.1.1w")),
            ("telnetd", Some("0.17")),
            ("OpenSSL", None),
        ]));
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].contains("below the minimum 3.0.7"));
        assert!("<1.0".parse::<DeniedComponent>().is_err());
        assert!("x<".parse::<DeniedComponent>().is_err());
    }
}
