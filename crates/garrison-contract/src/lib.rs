//! The device ↔ server contract, version 1: what a device publishes on each of its channels and
//! what the server sends it, as Rust types with bounded decoding.
//!
//! Both sides use this crate: the agent and the simulator build these messages, the server's
//! intake decodes them with [`decode_report`]. A payload is JSON (or CBOR, for constrained
//! devices), optionally gzip-compressed, and always carries `"schema": 1`. Decoding is the
//! validation: it enforces size limits before and after decompression, the schema version, the
//! device id (a report naming another device is refused), and every list and string bound in
//! [`Limits`], so a value of these types is always within bounds. Unknown fields are ignored,
//! so a newer agent can add optional facts without breaking an older server.
//!
//! Facts a device cannot read are `null` (or absent): *unknown*, never guessed. A `bool`
//! fact is therefore an `Option<bool>` whose `None` means "could not tell".
//!
//! Architecture invariant: no I/O here — bytes in, types out (and back).
#![forbid(unsafe_code)]

mod codec;
mod command;
mod events;
mod inventory;
mod report;
mod sbom;
mod telemetry;
mod update;

pub use codec::{Limits, encode, encode_compressed};
pub use command::{Command, CommandResult, CommandStatus};
pub use events::{DeviceEvent, EventKind, Events, Protocol};
pub use inventory::{
    Account, Birth, DeviceClass, Firmware, Hardware, Inventory, ListeningSocket, NetworkInterface,
    Os, PasswordState, SecurityState, Services, SshConfig, WatchedFile,
};
pub use report::{Channel, Report, ReportError, decode_report, decode_report_sized};
pub use sbom::{Component, ComponentType, Sbom, SbomMetadata};
pub use telemetry::Telemetry;
pub use update::{ArtifactLink, UpdateAction, UpdateNotice, UpdateState, UpdateStatus};

/// The contract version these types implement; every payload's `schema` field.
pub const SCHEMA_VERSION: u32 = 1;
