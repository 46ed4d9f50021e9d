//! Why an update, a key or a trust root was refused. Every refusal names what to look at.

/// An update-verification or signing failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateError {
    /// Bytes that are not what they claim to be (CBOR, COSE, PEM, PKCS#8).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A signature by a key the trust root does not list for the role.
    #[error("signed by key {key}, which the trust root does not list as a {role} key")]
    UnknownKey {
        /// The key id in the signature.
        key: String,
        /// The role it would need.
        role: &'static str,
    },
    /// A signature that does not verify.
    #[error("the signature by key {key} does not verify: the {what} was altered or forged")]
    BadSignature {
        /// The key id.
        key: String,
        /// What was signed.
        what: &'static str,
    },
    /// Fewer valid signatures than the role's threshold.
    #[error("{what} has {valid} valid {role} signature(s); the trust root requires {threshold}")]
    BelowThreshold {
        /// What was signed.
        what: &'static str,
        /// The role.
        role: &'static str,
        /// Valid, distinct signatures found.
        valid: usize,
        /// Needed.
        threshold: usize,
    },
    /// A manifest or trust root past its expiry.
    #[error("the {what} expired at {expired_at} (Unix ms); sign a new one")]
    Expired {
        /// What expired.
        what: &'static str,
        /// When.
        expired_at: i64,
    },
    /// A release for another vendor or device class.
    #[error("the release is for {field} {offered:?}, this device is {expected:?}")]
    WrongTarget {
        /// `vendor` or `class`.
        field: &'static str,
        /// In the manifest.
        offered: String,
        /// On the device.
        expected: String,
    },
    /// Anti-rollback: not newer than what is installed.
    #[error(
        "the release's sequence number {offered} is not above the installed {installed}: refusing a rollback (even a validly signed one)"
    )]
    Rollback {
        /// In the manifest.
        offered: u64,
        /// On the device.
        installed: u64,
    },
    /// A new trust root whose version does not follow the old one.
    #[error("trust root version {offered} does not follow the pinned version {pinned}")]
    RootVersion {
        /// Offered.
        offered: u64,
        /// Pinned.
        pinned: u64,
    },
    /// An artifact the manifest does not name.
    #[error("the manifest has no artifact named {0:?}")]
    NoSuchArtifact(String),
    /// More bytes than the manifest's size.
    #[error("artifact {name:?} is longer than the {size} bytes its manifest states")]
    TooLong {
        /// Artifact.
        name: String,
        /// Its stated size.
        size: u64,
    },
    /// Fewer bytes than the manifest's size.
    #[error("artifact {name:?} has {got} bytes, its manifest states {size}")]
    TooShort {
        /// Artifact.
        name: String,
        /// Received.
        got: u64,
        /// Stated.
        size: u64,
    },
    /// Content that does not hash to the manifest's digest.
    #[error("artifact {name:?} has SHA-256 {got}, its manifest states {expected}")]
    DigestMismatch {
        /// Artifact.
        name: String,
        /// Computed.
        got: String,
        /// Stated.
        expected: String,
    },
    /// A manifest or root that breaks a rule of its own (empty artifact list, threshold
    /// above the key count…).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The crypto library failed (key generation, signing).
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

pub(crate) fn malformed(what: &'static str, reason: impl std::fmt::Display) -> UpdateError {
    UpdateError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> UpdateError {
    UpdateError::Invalid {
        what,
        reason: reason.into(),
    }
}
