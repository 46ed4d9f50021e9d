//! Garrison's public-key infrastructure and secrets at rest.
//!
//! - [`MasterKey`] seals private keys (AES-256-GCM) before they touch storage, and proves at
//!   start-up that the key supplied is the one the installation was created with.
//! - [`CertificateAuthority`] is Garrison's own two-level CA: a root that anchors trust and an
//!   issuing CA that signs server (and, later, device) certificates, so the root key can be
//!   taken offline without re-issuing anything.
//! - [`tls`] turns an issued or operator-supplied identity into a `rustls` server configuration
//!   (TLS 1.2 and 1.3 only).
//!
//! Architecture invariant: no storage or network I/O happens here; callers fetch and store the
//! sealed blobs. Keys are ECDSA P-256 by default.
#![forbid(unsafe_code)]

mod ca;
mod device;
mod error;
mod master_key;
pub mod tls;

pub use ca::{
    CertificateAuthority, GeneratedCa, IssuedIdentity, KeyAlgorithm, certificate_fingerprint,
    decrypt_private_key, encrypt_private_key, pem_certificates,
};
pub use device::{
    CertificateKey, CsrError, DeviceCsr, IssuedCertificate, IssuedClaim, MAX_CSR_BYTES,
    PeerCertificate, RevokedSerial, SignedCrl, certificate_key, csr_attributes, pkcs7_certs_only,
    read_peer_certificate,
};
pub use error::PkiError;
pub use master_key::MasterKey;
