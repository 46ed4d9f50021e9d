//! Garrison's asset inventory: what every device is, runs and exposes, as the devices report it.
//!
//! - [`ingest`] takes device messages from the broker, validates them against the contract
//!   and records inventory reports (with [`facts`] history and [`drift`]), events, presence and
//!   sightings of unmanaged devices;
//! - [`forward`] checks device messages that gateways and collectors forward over HTTP and
//!   queues them into the same intake;
//! - [`index`] keeps the fleet in memory for search, dynamic groups and the [`risk`] score;
//! - [`InventoryService`] is what the API calls: search with the device query language, tags,
//!   groups (static, or dynamic by query), firmware policies.
//!
//! Architecture invariant: no HTTP or MQTT here. Messages arrive as [`Incoming`] values (the
//! binary converts the broker's), and the API converts records to its own wire types.
#![forbid(unsafe_code)]

pub mod drift;
pub mod facts;
pub mod forward;
pub mod index;
pub mod ingest;
pub mod risk;
mod service;

pub use index::{DeviceRecord, FleetIndex, SearchPage, compile_group_query, device_schema};
pub use ingest::{AccessKind, Incoming, IngestSettings, Ingestor, Observation, UpdateReport};
pub use service::{GroupSpec, InventoryError, InventoryService, validate_tag};
