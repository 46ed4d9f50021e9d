//! The trust root devices pin: which keys may sign releases, and which keys (how many of
//! them) may change that — TUF's root role, reduced to the two roles a release needs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    UpdateError, cose,
    cose::Opened,
    error::{invalid, malformed},
    keys::{KeyId, PublicKey, SigningKey},
};

/// The COSE content type of a signed trust root.
pub(crate) const ROOT_CONTENT_TYPE: &str = "application/vnd.garrison.root+cbor";

/// Most keys per role.
const MAX_KEYS: usize = 32;

/// The roles a trust root names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Signs trust roots.
    Root,
    /// Signs release manifests.
    Release,
}

impl KeyRole {
    fn name(self) -> &'static str {
        match self {
            KeyRole::Root => "root",
            KeyRole::Release => "release",
        }
    }
}

/// A version of the trust root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRoot {
    /// Starts at 1; each rotation adds one.
    pub root_version: u64,
    /// Keys that sign trust roots.
    pub root_keys: Vec<PublicKey>,
    /// How many of them must sign a trust root.
    pub root_threshold: u32,
    /// Keys that sign release manifests (any one of them).
    pub release_keys: Vec<PublicKey>,
    /// When it was made, Unix ms.
    pub created_at: i64,
    /// After this (Unix ms) devices install nothing until they get a newer root: a frozen
    /// or withheld root cannot keep them on old releases forever. None: no expiry.
    pub expires_at: Option<i64>,
}

impl TrustRoot {
    /// Checks the root's own rules: keys present and distinct per role, and a threshold
    /// between 1 and the number of root keys.
    pub fn validate(&self) -> Result<(), UpdateError> {
        const WHAT: &str = "trust root";
        if self.root_version == 0 {
            return Err(invalid(WHAT, "root_version starts at 1"));
        }
        for (role, keys) in [
            (KeyRole::Root, &self.root_keys),
            (KeyRole::Release, &self.release_keys),
        ] {
            if keys.is_empty() || keys.len() > MAX_KEYS {
                return Err(invalid(
                    WHAT,
                    format!("it needs 1 to {MAX_KEYS} {} keys", role.name()),
                ));
            }
            let ids: BTreeSet<KeyId> = keys.iter().map(PublicKey::id).collect();
            if ids.len() != keys.len() {
                return Err(invalid(
                    WHAT,
                    format!("a {} key is listed twice", role.name()),
                ));
            }
        }
        let threshold = self.root_threshold as usize;
        if threshold == 0 || threshold > self.root_keys.len() {
            return Err(invalid(
                WHAT,
                format!(
                    "root_threshold {threshold} must be between 1 and the {} root keys",
                    self.root_keys.len()
                ),
            ));
        }
        Ok(())
    }

    /// The key of `role` with id `id`.
    pub fn key(&self, role: KeyRole, id: &KeyId) -> Option<&PublicKey> {
        let keys = match role {
            KeyRole::Root => &self.root_keys,
            KeyRole::Release => &self.release_keys,
        };
        keys.iter().find(|k| &k.id() == id)
    }

    /// Signs this root with `keys`, which must be at least `root_threshold` of its own root
    /// keys (a rotation also needs the previous root's threshold: sign with the union).
    pub fn sign(&self, keys: &[&SigningKey]) -> Result<Vec<u8>, UpdateError> {
        self.validate()?;
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).map_err(|e| malformed("trust root CBOR", e))?;
        let signed = cose::sign(payload, ROOT_CONTENT_TYPE, keys)?;
        // Refuse to produce a root its own devices would refuse.
        let opened = cose::open_sign(&signed, ROOT_CONTENT_TYPE)?;
        threshold_met(&opened, self, "trust root")?;
        Ok(signed)
    }

    /// Reads a signed root and checks it against itself (its own root keys and threshold):
    /// how a root is first pinned, from a file the operator trusts.
    pub fn open(bytes: &[u8]) -> Result<TrustRoot, UpdateError> {
        let (root, opened) = parse(bytes)?;
        threshold_met(&opened, &root, "trust root")?;
        Ok(root)
    }

    /// Accepts `bytes` as the next root after this one: its version must be exactly one
    /// more, and it must carry the threshold of this root's keys *and* of its own.
    pub fn rotate(&self, bytes: &[u8]) -> Result<TrustRoot, UpdateError> {
        let (next, opened) = parse(bytes)?;
        if Some(next.root_version) != self.root_version.checked_add(1) {
            return Err(UpdateError::RootVersion {
                offered: next.root_version,
                pinned: self.root_version,
            });
        }
        threshold_met(&opened, self, "new trust root (by the pinned root's keys)")?;
        threshold_met(&opened, &next, "new trust root (by its own keys)")?;
        Ok(next)
    }
}

fn parse(bytes: &[u8]) -> Result<(TrustRoot, Opened), UpdateError> {
    let opened = cose::open_sign(bytes, ROOT_CONTENT_TYPE)?;
    let root: TrustRoot = ciborium::from_reader(opened.payload.as_slice())
        .map_err(|e| malformed("trust root CBOR", e))?;
    root.validate()?;
    Ok((root, opened))
}

/// Whether at least `by.root_threshold` distinct root keys of `by` signed validly.
/// Signatures by other keys are ignored (a root signed for a rotation carries both sets).
fn threshold_met(opened: &Opened, by: &TrustRoot, what: &'static str) -> Result<(), UpdateError> {
    let mut valid = BTreeSet::new();
    for s in &opened.signatures {
        let Some(key) = by.key(KeyRole::Root, &s.key) else {
            continue;
        };
        if s.algorithm == Some(coset::Algorithm::Assigned(key.algorithm.cose()))
            && key.verify(&s.signed, &s.signature)
        {
            valid.insert(s.key.clone());
        }
    }
    let threshold = by.root_threshold as usize;
    if valid.len() < threshold {
        return Err(UpdateError::BelowThreshold {
            what,
            role: "root",
            valid: valid.len(),
            threshold,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    #[test]
    fn a_rotation_signed_only_by_the_old_keys_is_refused() {
        let [a, b, c, d] = [(); 4].map(|_| SigningKey::generate(Algorithm::Ed25519).unwrap());
        let root = |version: u64, keys: [&SigningKey; 2]| TrustRoot {
            root_version: version,
            root_keys: keys.iter().map(|k| k.public_key()).collect(),
            root_threshold: 2,
            release_keys: vec![a.public_key()],
            created_at: 0,
            expires_at: None,
        };
        let pinned = root(1, [&a, &b]);
        let next = root(2, [&c, &d]);
        // Bypass `sign`'s own check, as an attacker holding the old keys would.
        let mut payload = Vec::new();
        ciborium::into_writer(&next, &mut payload).unwrap();
        let forged = cose::sign(payload, ROOT_CONTENT_TYPE, &[&a, &b]).unwrap();
        assert_eq!(
            pinned.rotate(&forged),
            Err(UpdateError::BelowThreshold {
                what: "new trust root (by its own keys)",
                role: "root",
                valid: 0,
                threshold: 2
            })
        );
        let good = next.sign(&[&a, &b, &c, &d]).unwrap();
        assert_eq!(pinned.rotate(&good), Ok(next));
    }
}
