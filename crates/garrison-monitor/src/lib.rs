//! Garrison's security monitoring and automated response.
//!
//! What the intake observed ([`garrison_inventory::Observation`]) is normalised into one
//! OCSF-aligned [`SecurityEvent`](event::SecurityEvent) (`docs/events.md`), enriched with what
//! the fleet index knows, and run through Sigma detection ([`garrison_detect`]). Detections
//! become alerts, deduplicated per rule and device while open; each newly opened alert runs the
//! [playbooks](playbook) that match it, whose actions the [`ResponseService`] carries out
//! through a [`Responder`](respond::Responder), records and audits — with approval gates,
//! dry runs, expiry and undo. Threat intelligence ([`intel`]) enriches every event;
//! [`feeds`] imports sources at run time and hunts for them in stored events; open alerts
//! group into [incidents](incident), one per device. Beside the rules,
//! [behaviour baselines](baseline) judge each device's traffic against its own history
//! and its peers' and raise explained anomalies.
//!
//! Architecture invariant: no HTTP routes or MQTT here; observations arrive from the intake
//! and actions leave through the identity service, the broker trait and the inventory.
#![forbid(unsafe_code)]

pub mod baseline;
mod error;
pub mod event;
pub mod feeds;
pub mod incident;
pub mod intel;
pub mod playbook;
pub mod respond;
pub mod service;
pub mod siem;

pub use error::MonitorError;
pub use service::{Monitor, MonitorOutcome, ResponseService};
