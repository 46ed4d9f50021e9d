//! Garrison's domain types: the vocabulary every other crate speaks.
//!
//! This crate owns identifiers ([`Username`], [`TenantId`]), operator roles and the permissions
//! they grant ([`Role`], [`Permission`]), and the tamper-evident audit chain ([`audit`]).
//!
//! Architecture invariant: nothing here performs I/O or knows about SQL, HTTP, TLS or MQTT. Types
//! that cross a protocol edge are converted at that edge; constructors validate ("parse, don't
//! validate"), so a value of these types is always well-formed.
#![forbid(unsafe_code)]

pub mod audit;
pub mod device;
mod ids;
mod role;
mod severity;
mod time_ms;
pub mod version;

pub use device::DeviceId;
pub use ids::{InvalidId, TenantId, Username};
pub use role::{ParseRoleError, Permission, Role};
pub use severity::{Impact, ParseSeverityError, Severity};
pub use time_ms::{UnixMillis, format_ms, now_ms};
