//! TLS server configuration from an identity: TLS 1.2 and 1.3 only, ALPN for HTTP/2 and 1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::{PkiError, ca::pem_certificates};

/// Whether and how the server asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Never asks.
    None,
    /// Asks; a certificate, when sent, must chain to one of these anchors, but clients may send
    /// none (the HTTPS API: operators use bearer tokens, devices renewing over EST send their
    /// certificate).
    Optional(Vec<CertificateDer<'static>>),
    /// Requires a certificate chaining to one of these anchors (the MQTT broker).
    Required(Vec<CertificateDer<'static>>),
}

/// A rustls server configuration presenting `chain` (leaf first) with `key`. TLS 1.2 and 1.3
/// only. Uses the aws-lc-rs provider explicitly, since more than one provider is compiled into
/// the binary.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(anchors) | ClientAuth::Required(anchors) if anchors.is_empty() => {
            return Err(PkiError::Pem {
                what: "client certificate anchors".into(),
                detail: "none given".into(),
            });
        }
        ClientAuth::Optional(anchors) => builder.with_client_cert_verifier(
            client_verifier(anchors, provider)?
                .allow_unauthenticated()
                .build()
                .map_err(|e| PkiError::Tls(rustls::Error::General(e.to_string())))?,
        ),
        ClientAuth::Required(anchors) => builder.with_client_cert_verifier(
            client_verifier(anchors, provider)?
                .build()
                .map_err(|e| PkiError::Tls(rustls::Error::General(e.to_string())))?,
        ),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn client_verifier(
    anchors: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::server::ClientCertVerifierBuilder, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for anchor in anchors {
        roots.add(anchor)?;
    }
    Ok(rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider,
    ))
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
