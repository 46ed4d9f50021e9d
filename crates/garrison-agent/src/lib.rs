//! Garrison's device agent, as a library: what runs on a Linux-class device to give it an
//! identity and report over the device contract.
//!
//! - [`collect`] reads the device's facts (hardware, OS, packages as a CycloneDX SBOM,
//!   listening sockets, SSH and risky services, accounts, protective settings), telemetry
//!   counters and security events from a filesystem root — `/` on a device, a fixture tree in
//!   tests. What cannot be read is reported as unknown, never guessed.
//!
//! - [`keystore`] keeps the device's key (generated on the device, 0600) and certificate;
//! - [`est`] enrolls and renews over EST (RFC 7030);
//! - [`session`] is the MQTT session over mutual TLS, with [`backoff`] for reconnects;
//! - [`update`] verifies an update offer and fetches its artifacts with the device certificate;
//!   [`install`] runs the configured installer, health check and rollback;
//! - [`runtime`] is the agent's loop tying them together; [`cli`] its command line, shared by
//!   `garrison agent` and the small `garrison-agent` binary.
//!
//! Architecture invariant: collectors only read files under their root (and, for RPM, may run
//! `rpm` when the root is `/`); they never write, and never panic on what they read.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod collect;
pub mod est;
pub mod install;
pub mod keystore;
pub mod runtime;
pub mod session;
pub mod update;
