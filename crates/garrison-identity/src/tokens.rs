//! Bootstrap token secrets: `gbt_<id>_<secret>`.
//!
//! The secret is 256 random bits, so a plain SHA-256 of it is as strong as any password hash
//! would be (there is nothing to brute-force) and lets enrollment run at thousands per second;
//! argon2 is for secrets people choose.

use aws_lc_rs::{
    constant_time,
    digest::{SHA256, digest},
    rand::{SecureRandom, SystemRandom},
};

/// A freshly generated token: the full text to hand to the device, and what is stored.
#[derive(Debug, Clone)]
pub struct BootstrapSecret {
    /// Public id (16 hex characters).
    pub id: String,
    /// The whole token, `gbt_<id>_<secret>`; shown once.
    pub token: String,
    /// SHA-256 of the secret part, hex.
    pub(crate) hash: String,
}

impl BootstrapSecret {
    pub(crate) fn generate() -> Option<BootstrapSecret> {
        let rng = SystemRandom::new();
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rng.fill(&mut id).ok()?;
        rng.fill(&mut secret).ok()?;
        let id = hex::encode(id);
        let secret = hex::encode(secret);
        Some(BootstrapSecret {
            token: format!("gbt_{id}_{secret}"),
            hash: hash_secret(&secret),
            id,
        })
    }
}

fn hash_secret(secret: &str) -> String {
    hex::encode(digest(&SHA256, secret.as_bytes()))
}

/// Splits `gbt_<id>_<secret>` into id and secret.
pub fn parse_bootstrap_token(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim().strip_prefix("gbt_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (ok(id, 16) && ok(secret, 64)).then_some((id, secret))
}

pub(crate) fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    constant_time::verify_slices_are_equal(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify_and_others_do_not() {
        let t = BootstrapSecret::generate().unwrap();
        let (id, secret) = parse_bootstrap_token(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert!(secret_matches(secret, &t.hash));
        let other = BootstrapSecret::generate().unwrap();
        let (_, other_secret) = parse_bootstrap_token(&other.token).unwrap();
        assert!(!secret_matches(other_secret, &t.hash));
        for bad in [
            "",
            "gbt_",
            "gar_x_y",
            "gbt_zz_00",
            &t.token[..t.token.len() - 1],
        ] {
            assert!(parse_bootstrap_token(bad).is_none(), "{bad:?}");
        }
    }
}
