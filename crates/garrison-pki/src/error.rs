//! The PKI crate's error type.

/// What can go wrong with keys and certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The master key text is not 32 bytes in base64 or hex.
    #[error(
        "the master key must be 32 bytes written as base64 (44 characters) or hex (64 characters)"
    )]
    MasterKeyFormat,
    /// A sealed blob did not open: the master key is not the one it was sealed with, or the blob
    /// was altered.
    #[error(
        "cannot decrypt {what}: the master key is not the one this installation was created with (or the data was altered)"
    )]
    WrongMasterKey {
        /// Which secret failed to open.
        what: String,
    },
    /// A sealed blob is too short or has an unknown header.
    #[error("{what} is not a sealed Garrison secret")]
    NotSealed {
        /// Which secret.
        what: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Certificate generation or parsing failed.
    #[error("certificate error: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A PEM file could not be read as a certificate chain or private key.
    #[error("{what}: {detail}")]
    Pem {
        /// Which file or value.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
}
