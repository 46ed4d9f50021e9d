//! Signed software updates, the part with no I/O: what a release is, who may sign it, and the
//! checks a device (or the agent, or the server on upload) makes before trusting it.
//!
//! The design follows SUIT's information model (RFC 9124) for the manifest and TUF for the
//! keys:
//!
//! - A [`Manifest`] names the vendor and device class (model) it is for, a monotonically
//!   increasing sequence number (anti-rollback), every artifact's SHA-256 and size, and an
//!   optional expiry. It travels as a COSE_Sign1 (RFC 9052) over its CBOR encoding, signed by
//!   one release key: [`SignedManifest`].
//! - A [`TrustRoot`] — what devices pin — lists the root keys with their threshold and the
//!   release keys with theirs. It is itself threshold-signed by the root keys as a COSE_Sign.
//!   A new root version is accepted only when signed by a threshold of the old root's keys
//!   and of its own ([`TrustRoot::rotate`]), so root keys can be replaced without re-flashing
//!   devices and one stolen key is not enough.
//! - [`verify_manifest`] is the device's check: signature by a release key the root lists,
//!   vendor, class, sequence strictly above the installed one, expiry. [`ArtifactCheck`]
//!   hashes an artifact as it streams and refuses it on the first byte past its size.
//!
//! Keys are Ed25519 or ECDSA P-256 ([`SigningKey`], [`PublicKey`]) through aws-lc-rs; signing
//! needs only the private key file, so `garrison release sign` runs on an offline machine and
//! the server only verifies and serves.
#![forbid(unsafe_code)]

pub mod campaign;
mod cose;
mod error;
mod keys;
mod manifest;
mod root;
mod verify;

pub use error::UpdateError;
pub use keys::{Algorithm, KeyId, PublicKey, SigningKey};
pub use manifest::{Artifact, MAX_ARTIFACTS, Manifest, SignedManifest, is_sha256};
pub use root::{KeyRole, TrustRoot};
pub use verify::{ArtifactCheck, DeviceState, Sha256Stream, verify_manifest, verify_release};
