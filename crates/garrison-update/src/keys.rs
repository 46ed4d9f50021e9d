//! Signing keys (Ed25519, ECDSA P-256) and the public keys a trust root lists.
//!
//! Private keys are PKCS#8 PEM — what `garrison release keygen` writes and what
//! `openssl genpkey -algorithm ed25519` or `-algorithm EC -pkeyopt ec_paramgen_curve:P-256`
//! produce. Public keys travel as SubjectPublicKeyInfo PEM (`openssl pkey -pubout` reads and
//! writes the same). Both curves have one fixed SPKI prefix, so the DER is built and checked
//! here rather than through an ASN.1 library.

use std::{fmt, str::FromStr};

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair, UnparsedPublicKey,
    },
};
use pkcs8::der::pem::{self, LineEnding};
use serde::{Deserialize, Serialize};

use crate::error::{UpdateError, malformed};

/// SubjectPublicKeyInfo up to the key bytes: id-Ed25519 (RFC 8410).
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// SubjectPublicKeyInfo up to the key bytes: id-ecPublicKey, prime256v1 (RFC 5480).
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Ed25519 (COSE `EdDSA`, -8).
    Ed25519,
    /// ECDSA over P-256 with SHA-256 (COSE `ES256`, -7), signatures as r‖s.
    EcdsaP256,
}

impl Algorithm {
    /// Its name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }

    pub(crate) fn cose(self) -> coset::iana::Algorithm {
        match self {
            Algorithm::Ed25519 => coset::iana::Algorithm::EdDSA,
            Algorithm::EcdsaP256 => coset::iana::Algorithm::ES256,
        }
    }

    fn spki_prefix(self) -> &'static [u8] {
        match self {
            Algorithm::Ed25519 => ED25519_SPKI,
            Algorithm::EcdsaP256 => P256_SPKI,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Algorithm::Ed25519 => 32,
            Algorithm::EcdsaP256 => 65,
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "ecdsa-p256" | "p256" | "es256" => Ok(Algorithm::EcdsaP256),
            other => Err(format!(
                "unknown algorithm {other:?}: use ed25519 or ecdsa-p256"
            )),
        }
    }
}

/// A short, stable name for a public key: the first 16 bytes of the SHA-256 of its
/// SubjectPublicKeyInfo, hex (so `openssl pkey -pubin -outform der | sha256sum` shows it as
/// the first 32 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> KeyId {
        KeyId(String::from_utf8_lossy(bytes).into_owned())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public key a trust root lists.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Raw key: 32 bytes (Ed25519) or an uncompressed 65-byte point (P-256), hex.
    #[serde(with = "hex::serde")]
    pub key: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm.name(), self.id())
    }
}

impl PublicKey {
    /// Its SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = self.algorithm.spki_prefix().to_vec();
        der.extend_from_slice(&self.key);
        der
    }

    /// Its id.
    pub fn id(&self) -> KeyId {
        let hash = digest::digest(&digest::SHA256, &self.spki_der());
        KeyId(hex::encode(&hash.as_ref()[..16]))
    }

    /// `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn to_pem(&self) -> String {
        pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der()).unwrap_or_default()
    }

    /// Reads a `PUBLIC KEY` PEM of an Ed25519 or P-256 key.
    pub fn from_pem(text: &str) -> Result<PublicKey, UpdateError> {
        let (label, der) =
            pem::decode_vec(text.trim().as_bytes()).map_err(|e| malformed("public key PEM", e))?;
        if label != "PUBLIC KEY" {
            return Err(malformed(
                "public key PEM",
                format!("expected PUBLIC KEY, found {label} (give the .pub file, not the key)"),
            ));
        }
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            if let Some(key) = der.strip_prefix(algorithm.spki_prefix())
                && key.len() == algorithm.key_len()
            {
                return Ok(PublicKey {
                    algorithm,
                    key: key.to_vec(),
                });
            }
        }
        Err(malformed(
            "public key PEM",
            "not an Ed25519 or P-256 public key",
        ))
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn aws_lc_rs::signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::Ed25519 => &ED25519,
            Algorithm::EcdsaP256 => &ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

/// A private signing key.
pub struct SigningKey {
    pkcs8: Vec<u8>,
    pair: Pair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.public_key())
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(algorithm: Algorithm) -> Result<SigningKey, UpdateError> {
        let rng = SystemRandom::new();
        let crypto = |e: aws_lc_rs::error::Unspecified| UpdateError::Crypto(e.to_string());
        let pkcs8 = match algorithm {
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng).map_err(crypto)?,
            Algorithm::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(crypto)?
            }
        };
        SigningKey::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Reads a PKCS#8 DER private key, Ed25519 or P-256.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, UpdateError> {
        let pair = if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            Pair::Ed25519(pair)
        } else if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            Pair::EcdsaP256(pair)
        } else {
            return Err(malformed(
                "private key",
                "not a PKCS#8 Ed25519 or P-256 key",
            ));
        };
        Ok(SigningKey {
            pkcs8: der.to_vec(),
            pair,
        })
    }

    /// Reads a `PRIVATE KEY` PEM.
    pub fn from_pem(text: &str) -> Result<SigningKey, UpdateError> {
        let (label, der) =
            pem::decode_vec(text.trim().as_bytes()).map_err(|e| malformed("private key PEM", e))?;
        if label != "PRIVATE KEY" {
            return Err(malformed(
                "private key PEM",
                format!("expected PRIVATE KEY, found {label}"),
            ));
        }
        SigningKey::from_pkcs8_der(&der)
    }

    /// `-----BEGIN PRIVATE KEY-----` PEM (PKCS#8).
    pub fn to_pem(&self) -> String {
        pem::encode_string("PRIVATE KEY", LineEnding::LF, &self.pkcs8).unwrap_or_default()
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Ed25519(_) => Algorithm::Ed25519,
            Pair::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        let key = match &self.pair {
            Pair::Ed25519(p) => p.public_key().as_ref().to_vec(),
            Pair::EcdsaP256(p) => p.public_key().as_ref().to_vec(),
        };
        PublicKey {
            algorithm: self.algorithm(),
            key,
        }
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, UpdateError> {
        match &self.pair {
            Pair::Ed25519(p) => Ok(p.sign(message).as_ref().to_vec()),
            Pair::EcdsaP256(p) => p
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| UpdateError::Crypto(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_sign_and_verify() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let key = SigningKey::generate(algorithm).unwrap();
            let again = SigningKey::from_pem(&key.to_pem()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
            assert_eq!(public, key.public_key());
            assert_eq!(public.id().as_str().len(), 32);
            let sig = key.sign(b"release").unwrap();
            assert!(public.verify(b"release", &sig));
            assert!(!public.verify(b"releasE", &sig));
            let other = SigningKey::generate(algorithm).unwrap().public_key();
            assert!(!other.verify(b"release", &sig));
            assert_ne!(other.id(), public.id());
        }
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        assert!(
            PublicKey::from_pem(&key.to_pem()).is_err(),
            "a private key is not a public one"
        );
    }
}
