//! The master key: seals secrets at rest with AES-256-GCM.
//!
//! A sealed blob is `"GSK1" || nonce(12) || ciphertext || tag(16)`. The `context` string is bound
//! in as associated data, so a blob sealed as one secret cannot be swapped in for another.

use std::fmt;

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    digest,
    rand::{SecureRandom, SystemRandom},
};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::PkiError;

const MAGIC: &[u8; 4] = b"GSK1";
const CHECK_CONTEXT: &str = "garrison/master-key-check";
const CHECK_PLAINTEXT: &[u8] = b"garrison master key check v1";

/// The 256-bit key that seals private keys at rest. Never logged: `Debug` shows only its id.
pub struct MasterKey {
    bytes: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {})", self.id())
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<MasterKey, PkiError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| PkiError::Random)?;
        Ok(MasterKey { bytes })
    }

    /// Parses a key written as base64 (44 characters) or hex (64 characters); surrounding
    /// whitespace is ignored, so key files may end in a newline.
    pub fn from_text(text: &str) -> Result<MasterKey, PkiError> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex_decode(text)
        } else {
            STANDARD.decode(text).ok()
        };
        let bytes: [u8; 32] = decoded
            .and_then(|d| d.try_into().ok())
            .ok_or(PkiError::MasterKeyFormat)?;
        Ok(MasterKey { bytes })
    }

    /// The key as base64, for writing a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// A short public identifier (first 8 bytes of SHA-256 over the key, hex), safe to print so
    /// operators can tell keys apart.
    pub fn id(&self) -> String {
        let d = digest::digest(&digest::SHA256, &self.bytes);
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn aead(&self) -> Result<LessSafeKey, PkiError> {
        // Fails only for a wrong key length, which the type rules out.
        UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map(LessSafeKey::new)
            .map_err(|_| PkiError::MasterKeyFormat)
    }

    /// Encrypts `plaintext`, binding `context` (e.g. `ca/issuing`) as associated data.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, PkiError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| PkiError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| PkiError::Random)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + in_out.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, PkiError> {
        let not_sealed = || PkiError::NotSealed {
            what: context.to_owned(),
        };
        let rest = sealed
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(not_sealed)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(not_sealed());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| not_sealed())?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| PkiError::WrongMasterKey {
                what: context.to_owned(),
            })?;
        Ok(plain.to_vec())
    }

    /// A value to store beside the data proving which key sealed it, as base64.
    pub fn check_value(&self) -> Result<String, PkiError> {
        Ok(STANDARD.encode(self.seal(CHECK_PLAINTEXT, CHECK_CONTEXT)?))
    }

    /// Whether `check` (from [`MasterKey::check_value`]) was made with this key.
    pub fn verify_check_value(&self, check: &str) -> Result<(), PkiError> {
        let sealed = STANDARD
            .decode(check.trim())
            .map_err(|_| PkiError::NotSealed {
                what: CHECK_CONTEXT.to_owned(),
            })?;
        match self.open(&sealed, CHECK_CONTEXT)? {
            plain if plain == CHECK_PLAINTEXT => Ok(()),
            _ => Err(PkiError::WrongMasterKey {
                what: CHECK_CONTEXT.to_owned(),
            }),
        }
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret", "ca/issuing").unwrap();
        assert_eq!(key.open(&sealed, "ca/issuing").unwrap(), b"secret");
        assert!(matches!(
            key.open(&sealed, "ca/root"),
            Err(PkiError::WrongMasterKey { .. })
        ));
    }

    #[test]
    fn wrong_key_and_tampering_are_refused() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let mut sealed = key.seal(b"secret", "x").unwrap();
        assert!(matches!(
            other.open(&sealed, "x"),
            Err(PkiError::WrongMasterKey { .. })
        ));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(key.open(&sealed, "x").is_err());
        assert!(matches!(
            key.open(b"GSK1short", "x"),
            Err(PkiError::NotSealed { .. })
        ));
    }

    #[test]
    fn check_value_identifies_the_key() {
        let key = MasterKey::generate().unwrap();
        let check = key.check_value().unwrap();
        key.verify_check_value(&check).unwrap();
        assert!(
            MasterKey::generate()
                .unwrap()
                .verify_check_value(&check)
                .is_err()
        );
    }

    #[test]
    fn text_forms() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_text(&format!("{}\n", key.to_base64())).unwrap();
        assert_eq!(key.id(), again.id());
        let hex: String = key.bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(MasterKey::from_text(&hex).unwrap().id(), key.id());
        assert!(MasterKey::from_text("too short").is_err());
        assert!(MasterKey::from_text(&STANDARD.encode([0u8; 16])).is_err());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
