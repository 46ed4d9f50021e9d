//! The CycloneDX subset devices report their installed software in.
//!
//! A device sends a CycloneDX 1.5 JSON BOM (`bomFormat`, `specVersion`, `components` with
//! `type`, `name`, `version`, `purl`); fields outside this subset are accepted and ignored, so
//! a full BOM from a vendor tool is fine. Package URLs (`pkg:deb/debian/openssl@3.0.11-1`) are
//! what later vulnerability matching keys on.

use serde::{Deserialize, Serialize};

use crate::{ReportError, report::Check};

/// A CycloneDX BOM of the device's installed software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sbom {
    /// Always `CycloneDX`.
    pub bom_format: String,
    /// `1.4`, `1.5` or `1.6`.
    pub spec_version: String,
    /// `urn:uuid:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// BOM version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Where and when it was produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<SbomMetadata>,
    /// The components.
    #[serde(default)]
    pub components: Vec<Component>,
}

/// BOM metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomMetadata {
    /// RFC 3339 time of production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// One installed component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// What kind of component.
    #[serde(rename = "type")]
    pub component_type: ComponentType,
    /// Package name.
    pub name: String,
    /// Installed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Package URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// CycloneDX component types Garrison distinguishes; the rest are `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentType {
    /// An application.
    Application,
    /// A library.
    Library,
    /// Firmware.
    Firmware,
    /// The operating system.
    OperatingSystem,
    /// A framework.
    Framework,
    /// A file.
    File,
    /// Anything else CycloneDX defines.
    #[serde(other)]
    Other,
}

impl Sbom {
    /// A CycloneDX 1.5 BOM of `components`.
    pub fn new(components: Vec<Component>) -> Sbom {
        Sbom {
            bom_format: "CycloneDX".into(),
            spec_version: "1.5".into(),
            serial_number: None,
            version: Some(1),
            metadata: None,
            components,
        }
    }

    pub(crate) fn validate(&self, check: &Check<'_>) -> Result<(), ReportError> {
        if self.bom_format != "CycloneDX" {
            return Err(Check::fail("software.bomFormat", "must be \"CycloneDX\""));
        }
        if !matches!(self.spec_version.as_str(), "1.4" | "1.5" | "1.6") {
            return Err(Check::fail(
                "software.specVersion",
                "CycloneDX 1.4, 1.5 and 1.6 are accepted",
            ));
        }
        check.opt_text("software.serialNumber", self.serial_number.as_deref())?;
        check.list(
            "software.components",
            &self.components,
            check.limits.max_components,
        )?;
        for (i, c) in self.components.iter().enumerate() {
            if c.name.is_empty() {
                return Err(Check::fail(
                    format!("software.components[{i}].name"),
                    "must not be empty",
                ));
            }
            check.text(&format!("software.components[{i}].name"), &c.name)?;
            check.opt_text(
                &format!("software.components[{i}].version"),
                c.version.as_deref(),
            )?;
            if let Some(purl) = &c.purl {
                check.text(&format!("software.components[{i}].purl"), purl)?;
                if !purl.starts_with("pkg:") {
                    return Err(Check::fail(
                        format!("software.components[{i}].purl"),
                        "a package URL starts with \"pkg:\"",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use garrison_core::DeviceId;

    use crate::{Channel, Limits, Report, decode_report};

    #[test]
    fn sbom_bounds() {
        let device = DeviceId::new("gw-1").unwrap();
        let limits = Limits {
            max_components: 2,
            ..Limits::default()
        };
        let inventory = |components: &str| {
            format!(
                r#"{{"schema":1,"collected_at":1764633600000,"software":{{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{components}]}}}}"#
            )
        };
        let one = r#"{"type":"library","name":"openssl","version":"3.0.11","purl":"pkg:deb/debian/openssl@3.0.11","licenses":[]}"#;
        let Report::Inventory(inv) = decode_report(
            Channel::Inventory,
            &device,
            inventory(one).as_bytes(),
            &limits,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(inv.software.unwrap().components[0].name, "openssl");
        let three = [one, one, one].join(",");
        let err = decode_report(
            Channel::Inventory,
            &device,
            inventory(&three).as_bytes(),
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.reason(), "invalid_field");
        assert!(err.to_string().contains("at most 2"), "{err}");
        let bad_purl = r#"{"type":"library","name":"x","purl":"deb/x"}"#;
        assert!(
            decode_report(
                Channel::Inventory,
                &device,
                inventory(bad_purl).as_bytes(),
                &limits
            )
            .is_err()
        );
    }
}
