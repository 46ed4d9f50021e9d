//! TLS server configuration from an identity: TLS 1.2 and 1.3 only, ALPN for HTTP/2 and 1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::{PkiError, ca::pem_certificates};

/// A rustls server configuration presenting `chain` (leaf first) with `key`, without client
/// certificates. Uses the aws-lc-rs provider explicitly, since more than one provider is
/// compiled into the binary.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads an operator-supplied certificate chain and private key from PEM text.
pub fn identity_from_pem(
    chain_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let chain = pem_certificates(chain_pem, "TLS certificate file")?;
    if chain.is_empty() {
        return Err(PkiError::Pem {
            what: "TLS certificate file".into(),
            detail: "contains no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| PkiError::Pem {
        what: "TLS key file".into(),
        detail: e.to_string(),
    })?;
    Ok((chain, key))
}
