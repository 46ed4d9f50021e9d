//! Garrison's posture audit: built-in checks over what devices report and what the fleet and
//! the broker show, each mapped to ETSI EN 303 645 and the OWASP IoT Top 10.
//!
//! - [`checks`] is the catalogue (id, severity, rationale, remediation, mappings);
//! - [`evaluate`] decides, without I/O, which checks fail for which device and why;
//! - [`PostureService`] gathers the inputs, runs the checks (full runs on a schedule under a
//!   lease or on demand; device-scope checks again whenever a device reports) and reconciles
//!   the results with the stored findings: new failures open findings, passing checks resolve
//!   them, suppressions hold until they lapse.
#![forbid(unsafe_code)]

pub mod checks;
pub mod evaluate;
mod runner;

pub use runner::{
    BrokerConnection, ConnectionSource, PostureError, PostureService, PostureSettings,
};
