//! Garrison's certificate authority: a root CA and an issuing CA beneath it.
//!
//! The root signs only the issuing CA (path length 0 below it); the issuing CA signs leaf
//! certificates. Servers present `leaf + issuing`; clients trust the root.

use std::net::IpAddr;

use aws_lc_rs::digest;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, SanType, SerialNumber,
    SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::PkiError;

const ROOT_VALIDITY: Duration = Duration::days(20 * 365);
const ISSUING_VALIDITY: Duration = Duration::days(10 * 365);

/// The key type of the CA hierarchy. Leaf keys are the devices' own choice (P-256 recommended);
/// server certificates use P-256 for the widest client support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: supported by every TLS stack and MCU library.
    #[default]
    EcdsaP256,
    /// Ed25519: smaller, faster, deterministic signatures; not accepted by web browsers.
    Ed25519,
}

impl KeyAlgorithm {
    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &PKCS_ED25519,
        }
    }

    /// The configuration name (`ecdsa-p256`, `ed25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// Parses the configuration name.
    pub fn parse(name: &str) -> Option<KeyAlgorithm> {
        match name {
            "ecdsa-p256" => Some(KeyAlgorithm::EcdsaP256),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }
}

/// The issuing CA with its key, able to sign certificates.
pub struct CertificateAuthority {
    root_pem: String,
    issuing_pem: String,
    issuing_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A freshly generated CA hierarchy, with both private keys as PKCS#8 PEM for sealing.
pub struct GeneratedCa {
    /// The root certificate (the trust anchor clients pin).
    pub root_cert_pem: String,
    /// The root's private key. Seal it, or export it and keep it offline.
    pub root_key_pem: String,
    /// The issuing CA certificate.
    pub issuing_cert_pem: String,
    /// The issuing CA's private key.
    pub issuing_key_pem: String,
}

/// A certificate chain and its private key, issued for a server or client.
pub struct IssuedIdentity {
    /// Leaf first, then the issuing CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate as PEM.
    pub cert_pem: String,
    /// The leaf's private key as PKCS#8 PEM, for servers that read key files (the broker).
    pub key_pem: String,
    /// Not valid after.
    pub not_after: OffsetDateTime,
}

pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    // Keep the serial positive and non-zero-led so it encodes in exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_params(
    common_name: &str,
    organization: &str,
    validity: Duration,
    path_len: u8,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + validity;
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

impl CertificateAuthority {
    /// Generates a new root and issuing CA for `organization` with ECDSA P-256 keys.
    pub fn generate(organization: &str) -> Result<GeneratedCa, PkiError> {
        Self::generate_with(organization, KeyAlgorithm::EcdsaP256)
    }

    /// Generates a new root and issuing CA for `organization` with keys of `algorithm`.
    pub fn generate_with(
        organization: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<GeneratedCa, PkiError> {
        let root_key = KeyPair::generate_for(algorithm.signature_algorithm())?;
        let root_params = ca_params(
            &format!("{organization} Root CA"),
            organization,
            ROOT_VALIDITY,
            1,
        )?;
        let root_cert = root_params.self_signed(&root_key)?;
        let root_issuer = Issuer::new(root_params, &root_key);

        let issuing_key = KeyPair::generate_for(algorithm.signature_algorithm())?;
        let issuing_params = ca_params(
            &format!("{organization} Issuing CA"),
            organization,
            ISSUING_VALIDITY,
            0,
        )?;
        let issuing_cert = issuing_params.signed_by(&issuing_key, &root_issuer)?;
        Ok(GeneratedCa {
            root_cert_pem: root_cert.pem(),
            root_key_pem: root_key.serialize_pem(),
            issuing_cert_pem: issuing_cert.pem(),
            issuing_key_pem: issuing_key.serialize_pem(),
        })
    }

    /// Loads the issuing CA from its certificate and (unsealed) key, with the root for chains.
    pub fn load(
        root_cert_pem: &str,
        issuing_cert_pem: &str,
        issuing_key_pem: &str,
    ) -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::from_pem(issuing_key_pem)?;
        let issuing_der = pem_certificates(issuing_cert_pem, "issuing CA certificate")?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Pem {
                what: "issuing CA certificate".into(),
                detail: "no certificate found".into(),
            })?;
        let issuer = Issuer::from_ca_cert_der(&issuing_der, key)?;
        Ok(CertificateAuthority {
            root_pem: root_cert_pem.to_owned(),
            issuing_pem: issuing_cert_pem.to_owned(),
            issuing_der,
            issuer,
        })
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The issuing CA certificate, DER.
    pub fn issuing_der(&self) -> &CertificateDer<'static> {
        &self.issuing_der
    }

    /// The root certificate as PEM: what clients should trust.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The issuing CA certificate as PEM.
    pub fn issuing_pem(&self) -> &str {
        &self.issuing_pem
    }

    /// Issues a TLS server certificate for `names` (DNS names or IP addresses), valid for
    /// `validity`. The key is generated here and never stored: servers re-issue at each start.
    pub fn issue_server(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<IssuedIdentity, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for name in names {
            params.subject_alt_names.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into()?),
            });
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("garrison"),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + validity;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone(), self.issuing_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after: params.not_after,
        })
    }
}

/// Parses every certificate in a PEM text.
pub fn pem_certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            what: what.to_owned(),
            detail: e.to_string(),
        })
}

/// SHA-256 fingerprint of a DER certificate, as colon-separated uppercase hex (the form
/// `openssl x509 -fingerprint -sha256` prints).
pub fn certificate_fingerprint(der: &[u8]) -> String {
    digest::digest(&digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Encrypts a PKCS#8 PEM private key with `passphrase` as standard encrypted PKCS#8
/// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with PBKDF2-HMAC-SHA256 at 600,000
/// iterations and AES-256-CBC), which `openssl pkey` reads — for keeping the root CA key
/// offline. (Not scrypt: OpenSSL refuses the default scrypt parameters' memory use.)
pub fn encrypt_private_key(key_pem: &str, passphrase: &str) -> Result<String, PkiError> {
    use pkcs8::{LineEnding, PrivateKeyInfo, der::Decode};
    let bad = |detail: String| PkiError::Pem {
        what: "private key".into(),
        detail,
    };
    let key = KeyPair::from_pem(key_pem)?;
    let der = key.serialize_der();
    let mut info = PrivateKeyInfo::from_der(&der).map_err(|e| bad(e.to_string()))?;
    // Version 1 (no embedded public key): every reader accepts it, while OpenSSL misreads the
    // version-2 form this crate would write for Ed25519.
    info.public_key = None;
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    let rng = SystemRandom::new();
    rng.fill(&mut salt).map_err(|_| PkiError::Random)?;
    rng.fill(&mut iv).map_err(|_| PkiError::Random)?;
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(600_000, &salt, &iv)
        .map_err(|e| bad(e.to_string()))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    Ok(encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| bad(e.to_string()))?
        .to_string())
}

/// Opens a key written by [`encrypt_private_key`]; returns its PKCS#8 PEM.
pub fn decrypt_private_key(encrypted_pem: &str, passphrase: &str) -> Result<String, PkiError> {
    use pkcs8::{EncryptedPrivateKeyInfo, der::Decode};
    let bad = |detail: String| PkiError::Pem {
        what: "encrypted private key".into(),
        detail,
    };
    let (label, der) =
        pkcs8::der::pem::decode_vec(encrypted_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(bad(format!(
            "expected ENCRYPTED PRIVATE KEY, found {label}"
        )));
    }
    let info = EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let plain = info
        .decrypt(passphrase.as_bytes())
        .map_err(|_| bad("wrong passphrase or damaged file".into()))?;
    let key = KeyPair::try_from(plain.as_bytes())?;
    Ok(key.serialize_pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_hierarchy_issues_and_root_keys_round_trip_encrypted() {
        let g = CertificateAuthority::generate_with("Ed", KeyAlgorithm::Ed25519).unwrap();
        let ca =
            CertificateAuthority::load(&g.root_cert_pem, &g.issuing_cert_pem, &g.issuing_key_pem)
                .unwrap();
        let (_, issuing) = x509_parser::parse_x509_certificate(ca.issuing_der()).unwrap();
        assert_eq!(
            issuing.signature_algorithm.algorithm.to_id_string(),
            "1.3.101.112",
            "the issuing CA is signed with Ed25519"
        );
        ca.issue_server(&["localhost".into()], Duration::days(1))
            .unwrap();

        let sealed = encrypt_private_key(&g.root_key_pem, "correct horse").unwrap();
        assert!(sealed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(!sealed.contains(&g.root_key_pem[40..80]));
        let opened = decrypt_private_key(&sealed, "correct horse").unwrap();
        assert_eq!(
            KeyPair::from_pem(&opened).unwrap().public_key_pem(),
            KeyPair::from_pem(&g.root_key_pem).unwrap().public_key_pem()
        );
        assert!(decrypt_private_key(&sealed, "wrong horse").is_err());
    }

    #[test]
    fn hierarchy_issues_a_server_certificate_that_chains_to_the_root() {
        let generated = CertificateAuthority::generate("Garrison Test").unwrap();
        let ca = CertificateAuthority::load(
            &generated.root_cert_pem,
            &generated.issuing_cert_pem,
            &generated.issuing_key_pem,
        )
        .unwrap();
        let identity = ca
            .issue_server(
                &["localhost".into(), "127.0.0.1".into()],
                Duration::days(30),
            )
            .unwrap();
        assert_eq!(identity.chain.len(), 2);

        let root = pem_certificates(&generated.root_cert_pem, "root").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root[0].clone()).unwrap();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            provider.into(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        verifier
            .verify_server_cert(
                &identity.chain[0],
                &identity.chain[1..],
                &name,
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
        let ip = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        verifier
            .verify_server_cert(
                &identity.chain[0],
                &identity.chain[1..],
                &ip,
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
        let other = rustls_pki_types::ServerName::try_from("evil.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &identity.chain[0],
                    &identity.chain[1..],
                    &other,
                    &[],
                    rustls_pki_types::UnixTime::now()
                )
                .is_err()
        );
    }

    #[test]
    fn fingerprint_format() {
        let fp = certificate_fingerprint(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF"));
    }
}
