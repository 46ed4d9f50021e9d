//! The tamper-evident audit log: what an audit record says, and how the hash chain is computed
//! and checked.
//!
//! Every entry's hash covers its own fields and the previous entry's hash, so editing, inserting
//! or deleting any stored entry breaks the chain at that point. Storage appends and reads entries;
//! this module alone decides what a valid chain is. Truncating the newest entries cannot be seen
//! from inside the chain, which is why `garrison audit verify` prints the head hash for operators
//! to record elsewhere (and can check it with `--expect-head`).

use std::fmt;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::{TenantId, UnixMillis};

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The hash the first entry links to.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Reads a hash from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<ChainHash> {
        bytes.try_into().ok().map(ChainHash)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Who or what performed an action, rendered as `kind:name` (`operator:alice`,
/// `token:0193…(alice)`, `system:cli`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    /// An operator acting through a login session.
    pub fn operator(username: &str) -> Actor {
        Actor(format!("operator:{username}"))
    }

    /// An API token acting on behalf of its owner.
    pub fn token(token_id: &str, owner: &str) -> Actor {
        Actor(format!("token:{token_id}({owner})"))
    }

    /// Garrison itself (`system:<component>`), e.g. first start or the local admin CLI.
    pub fn system(component: &str) -> Actor {
        Actor(format!("system:{component}"))
    }

    /// A device acting with its own certificate (renewal), or claiming an id (enrollment).
    pub fn device(device_id: &str) -> Actor {
        Actor(format!("device:{device_id}"))
    }

    /// Someone not (yet) authenticated, e.g. a failed login, named by what they claimed.
    pub fn anonymous(claimed: &str) -> Actor {
        Actor(format!("anonymous:{claimed}"))
    }

    /// Rebuilds an actor from its stored text.
    pub fn from_stored(text: String) -> Actor {
        Actor(text)
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened, before it is given a place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The tenant the action concerns.
    pub tenant: TenantId,
    /// Who or what did it.
    pub actor: Actor,
    /// Dotted verb, e.g. `operator.create`, `auth.login_failed`.
    pub action: String,
    /// What it was done to, e.g. `operator:alice`.
    pub target: String,
    /// State before the change (never secrets), if any.
    pub before: Option<serde_json::Value>,
    /// State after the change (never secrets), if any.
    pub after: Option<serde_json::Value>,
    /// The network address the request came from, when there was one.
    pub source: Option<String>,
}

impl AuditRecord {
    /// A record with no before/after state and no source address.
    pub fn new(
        tenant: &TenantId,
        actor: Actor,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord {
            tenant: tenant.clone(),
            actor,
            action: action.into(),
            target: target.into(),
            before: None,
            after: None,
            source: None,
        }
    }

    /// Sets the state before the change.
    pub fn before(mut self, value: serde_json::Value) -> Self {
        self.before = Some(value);
        self
    }

    /// Sets the state after the change.
    pub fn after(mut self, value: serde_json::Value) -> Self {
        self.after = Some(value);
        self
    }

    /// Sets the source address.
    pub fn source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    /// Gives the record its place in the chain: sequence number, time and hashes. The
    /// before/after JSON is serialised here, once, and the hash covers exactly those bytes.
    pub fn seal(self, seq: i64, at_ms: UnixMillis, prev_hash: ChainHash) -> AuditEntry {
        let mut entry = AuditEntry {
            seq,
            at_ms,
            tenant: self.tenant.as_str().to_owned(),
            actor: self.actor.0,
            action: self.action,
            target: self.target,
            before: self.before.map(|v| v.to_string()),
            after: self.after.map(|v| v.to_string()),
            source: self.source,
            prev_hash,
            hash: ChainHash::GENESIS,
        };
        entry.hash = entry.compute_hash();
        entry
    }
}

/// An entry as stored: every field is covered by `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Position in the chain, starting at 1 with no gaps.
    pub seq: i64,
    /// When it was appended.
    pub at_ms: UnixMillis,
    /// Tenant id as text.
    pub tenant: String,
    /// Actor as text.
    pub actor: String,
    /// Dotted verb.
    pub action: String,
    /// Target.
    pub target: String,
    /// JSON text of the state before, if any.
    pub before: Option<String>,
    /// JSON text of the state after, if any.
    pub after: Option<String>,
    /// Source address, if any.
    pub source: Option<String>,
    /// The previous entry's hash ([`ChainHash::GENESIS`] for seq 1).
    pub prev_hash: ChainHash,
    /// SHA-256 over the fields above.
    pub hash: ChainHash,
}

impl AuditEntry {
    /// Recomputes the hash from the entry's fields. Each field is length-prefixed and optional
    /// fields carry a presence byte, so no two different entries serialise to the same bytes.
    pub fn compute_hash(&self) -> ChainHash {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"garrison-audit-v1\0");
        ctx.update(&self.prev_hash.0);
        ctx.update(&self.seq.to_be_bytes());
        ctx.update(&self.at_ms.to_be_bytes());
        for field in [&self.tenant, &self.actor, &self.action, &self.target] {
            put_field(&mut ctx, Some(field));
        }
        for field in [&self.before, &self.after, &self.source] {
            put_field(&mut ctx, field.as_deref());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        ChainHash(out)
    }
}

fn put_field(ctx: &mut digest::Context, field: Option<&str>) {
    match field {
        None => ctx.update(&[0]),
        Some(text) => {
            ctx.update(&[1]);
            ctx.update(&(text.len() as u64).to_be_bytes());
            ctx.update(text.as_bytes());
        }
    }
}

/// Why the chain is broken at an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The entry's stored hash does not match its contents: it was edited.
    ContentModified,
    /// The entry does not link to the previous entry's hash: an entry before it was changed,
    /// removed or inserted.
    LinkBroken,
    /// A sequence number is missing or repeated: entries were deleted or inserted.
    SequenceGap,
}

/// The first place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainBreak {
    /// The sequence number of the first bad entry.
    pub seq: i64,
    /// What is wrong with it.
    pub kind: BreakKind,
    /// A sentence for people.
    pub detail: String,
}

/// Walks a chain in sequence order, one entry at a time, so storage can stream pages through it.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    expected_prev: ChainHash,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting the chain to start at seq 1 from [`ChainHash::GENESIS`].
    pub fn new() -> ChainVerifier {
        ChainVerifier {
            expected_seq: 1,
            expected_prev: ChainHash::GENESIS,
        }
    }

    /// Checks the next entry.
    pub fn check(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        if entry.seq != self.expected_seq {
            return Err(ChainBreak {
                seq: entry.seq,
                kind: BreakKind::SequenceGap,
                detail: format!(
                    "expected entry {} but found entry {}: entries were deleted or inserted",
                    self.expected_seq, entry.seq
                ),
            });
        }
        if entry.compute_hash() != entry.hash {
            return Err(ChainBreak {
                seq: entry.seq,
                kind: BreakKind::ContentModified,
                detail: format!(
                    "entry {} ({} on {}) does not match its hash: it was modified after it was written",
                    entry.seq, entry.action, entry.target
                ),
            });
        }
        if entry.prev_hash != self.expected_prev {
            return Err(ChainBreak {
                seq: entry.seq,
                kind: BreakKind::LinkBroken,
                detail: format!(
                    "entry {} does not link to entry {}: the chain was rewritten",
                    entry.seq,
                    entry.seq - 1
                ),
            });
        }
        self.expected_seq += 1;
        self.expected_prev = entry.hash;
        Ok(())
    }

    /// How many entries have been checked.
    pub fn verified(&self) -> i64 {
        self.expected_seq - 1
    }

    /// The hash of the last verified entry (the chain head).
    pub fn head(&self) -> ChainHash {
        self.expected_prev
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let tenant = TenantId::default();
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|seq| {
                let e = AuditRecord::new(&tenant, Actor::operator("alice"), "thing.do", "thing:x")
                    .after(json!({ "n": seq }))
                    .seal(seq, 1_700_000_000_000 + seq, prev);
                prev = e.hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Result<i64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for e in entries {
            v.check(e)?;
        }
        Ok(v.verified())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn edited_field_is_content_modified() {
        let mut c = chain(5);
        c[2].target = "thing:y".into();
        let b = verify(&c).unwrap_err();
        assert_eq!((b.seq, b.kind), (3, BreakKind::ContentModified));
    }

    #[test]
    fn rehashed_edit_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].after = Some("{\"n\":99}".into());
        c[2].hash = c[2].compute_hash();
        let b = verify(&c).unwrap_err();
        assert_eq!((b.seq, b.kind), (4, BreakKind::LinkBroken));
    }

    #[test]
    fn deleted_entry_is_a_gap() {
        let mut c = chain(5);
        c.remove(1);
        let b = verify(&c).unwrap_err();
        assert_eq!((b.seq, b.kind), (3, BreakKind::SequenceGap));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let tenant = TenantId::default();
        let a =
            AuditRecord::new(&tenant, Actor::system("ab"), "c", "d").seal(1, 0, ChainHash::GENESIS);
        let b =
            AuditRecord::new(&tenant, Actor::system("a"), "bc", "d").seal(1, 0, ChainHash::GENESIS);
        assert_ne!(a.hash, b.hash);
        let none =
            AuditRecord::new(&tenant, Actor::system("a"), "b", "c").seal(1, 0, ChainHash::GENESIS);
        let empty = AuditRecord::new(&tenant, Actor::system("a"), "b", "c")
            .source(Some(String::new()))
            .seal(1, 0, ChainHash::GENESIS);
        assert_ne!(none.hash, empty.hash);
    }
}
