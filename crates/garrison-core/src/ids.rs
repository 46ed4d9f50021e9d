//! Validated identifiers. A value of these types has passed its constructor's checks, so code
//! that receives one never re-validates it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct InvalidId {
    /// Which kind of identifier was being parsed.
    pub kind: &'static str,
    /// The offending input (truncated to 80 characters).
    pub value: String,
    /// What rule it broke.
    pub reason: &'static str,
}

fn check_slug(kind: &'static str, value: &str, max: usize) -> Result<(), InvalidId> {
    let fail = |reason| InvalidId {
        kind,
        value: value.chars().take(80).collect(),
        reason,
    };
    if value.is_empty() {
        return Err(fail("must not be empty"));
    }
    if value.len() > max {
        return Err(fail("is too long"));
    }
    let mut chars = value.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(fail("must start with a lowercase letter or digit"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(fail("may contain only a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(())
}

/// An operator's login name: 1–64 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Parses and validates a username.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        check_slug("username", &value, 64)?;
        Ok(Self(value))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant a record belongs to. Single-tenant installs use [`TenantId::default`] (`default`)
/// everywhere and never show it; multi-tenancy can be switched on later without changing the
/// meaning of stored data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Parses and validates a tenant id (same alphabet as usernames, at most 64 characters).
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        check_slug("tenant id", &value, 64)?;
        Ok(Self(value))
    }

    /// The tenant id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        assert!(Username::new("alice").is_ok());
        assert!(Username::new("ops-team.1_a").is_ok());
        assert_eq!(Username::new("").unwrap_err().reason, "must not be empty");
        assert!(Username::new("Alice").is_err());
        assert!(Username::new("-alice").is_err());
        assert!(Username::new("al ice").is_err());
        assert!(Username::new("a".repeat(65)).is_err());
        assert!(serde_json::from_str::<Username>("\"BAD\"").is_err());
    }
}
