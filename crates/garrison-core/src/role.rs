//! Operator roles and the permissions they grant.
//!
//! Every API route names exactly one [`Permission`]; a request is allowed when the caller's
//! [`Role`] grants it. The matrix lives here, in one table, so the API, the CLI and the tests
//! read the same truth.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// An operator's role. A token carries one role, never more than its creator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including operator and token administration.
    Admin,
    /// Runs the fleet: devices, enrollment, updates, response actions.
    Operator,
    /// Investigates: reads everything operational, triages alerts.
    Analyst,
    /// Reviews: reads the audit log and configuration, changes nothing.
    Auditor,
    /// Reads operational state; changes nothing, sees no audit log.
    ReadOnly,
    /// Hands in device messages for the devices behind it (an edge gateway, a collector):
    /// the HTTP intake and nothing else.
    Forwarder,
}

/// Something a route lets its caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Permission {
    /// Read server information, the OpenAPI document and one's own identity.
    SystemRead,
    /// Scrape Prometheus metrics.
    MetricsRead,
    /// List and inspect operator accounts.
    OperatorsRead,
    /// Create, disable and enable operator accounts.
    OperatorsWrite,
    /// Manage one's own account: API tokens, password, sessions.
    SelfManage,
    /// List and revoke every operator's API tokens.
    TokensAll,
    /// Read the audit log and verify its hash chain.
    AuditRead,
    /// List and inspect devices, certificates, enrollment requests and the CRL state.
    DevicesRead,
    /// Change devices: quarantine, release, revoke and rotate certificates.
    DevicesWrite,
    /// Let devices in: bootstrap tokens, claim certificates, approving enrollment requests.
    EnrollmentWrite,
    /// Run the posture audit, suppress findings, set firmware policies.
    PostureWrite,
    /// Triage alerts: acknowledge, resolve, mark false positive, add notes.
    AlertsWrite,
    /// Decide response actions: approve, reject, undo.
    ResponseWrite,
    /// Hand in device messages through the HTTP intake.
    IntakeWrite,
    /// Import and remove threat-intelligence sources.
    IntelWrite,
    /// Upload update artifacts and publish signed releases.
    ReleasesWrite,
    /// Pin or rotate the update trust root devices pin (admins only: it decides which keys
    /// may sign software for the fleet).
    TrustRootWrite,
    /// Start, approve and cancel update campaigns; set maintenance windows.
    CampaignsWrite,
}

impl Permission {
    /// Every permission, for tables and tests.
    pub const ALL: &'static [Permission] = &[
        Permission::SystemRead,
        Permission::MetricsRead,
        Permission::OperatorsRead,
        Permission::OperatorsWrite,
        Permission::SelfManage,
        Permission::TokensAll,
        Permission::AuditRead,
        Permission::DevicesRead,
        Permission::DevicesWrite,
        Permission::EnrollmentWrite,
        Permission::PostureWrite,
        Permission::AlertsWrite,
        Permission::ResponseWrite,
        Permission::IntakeWrite,
        Permission::IntelWrite,
        Permission::ReleasesWrite,
        Permission::TrustRootWrite,
        Permission::CampaignsWrite,
    ];

    /// The permission's stable name, as used in OpenAPI security scopes (`system:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SystemRead => "system:read",
            Permission::MetricsRead => "metrics:read",
            Permission::OperatorsRead => "operators:read",
            Permission::OperatorsWrite => "operators:write",
            Permission::SelfManage => "self:manage",
            Permission::TokensAll => "tokens:all",
            Permission::AuditRead => "audit:read",
            Permission::DevicesRead => "devices:read",
            Permission::DevicesWrite => "devices:write",
            Permission::EnrollmentWrite => "enrollment:write",
            Permission::PostureWrite => "posture:write",
            Permission::AlertsWrite => "alerts:write",
            Permission::ResponseWrite => "response:write",
            Permission::IntakeWrite => "intake:write",
            Permission::IntelWrite => "intel:write",
            Permission::ReleasesWrite => "releases:write",
            Permission::TrustRootWrite => "trust-root:write",
            Permission::CampaignsWrite => "campaigns:write",
        }
    }

    /// Looks a permission up by its stable name.
    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: &'static [Role] = &[
        Role::Admin,
        Role::Operator,
        Role::Analyst,
        Role::Auditor,
        Role::ReadOnly,
        Role::Forwarder,
    ];

    /// Whether this role grants `permission`. This match is the whole RBAC matrix.
    pub fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(
                permission,
                P::SystemRead
                    | P::MetricsRead
                    | P::SelfManage
                    | P::DevicesRead
                    | P::DevicesWrite
                    | P::EnrollmentWrite
                    | P::PostureWrite
                    | P::AlertsWrite
                    | P::ResponseWrite
                    | P::IntelWrite
                    | P::ReleasesWrite
                    | P::CampaignsWrite
            ),
            // Analysts triage: they may run the audit, suppress findings and work alerts, but
            // act on devices only through operators.
            Role::Analyst => matches!(
                permission,
                P::SystemRead
                    | P::MetricsRead
                    | P::SelfManage
                    | P::DevicesRead
                    | P::PostureWrite
                    | P::AlertsWrite
                    | P::IntelWrite
            ),
            Role::Auditor => matches!(
                permission,
                P::SystemRead
                    | P::MetricsRead
                    | P::SelfManage
                    | P::OperatorsRead
                    | P::AuditRead
                    | P::DevicesRead
            ),
            Role::ReadOnly => matches!(permission, P::SystemRead | P::SelfManage | P::DevicesRead),
            // A forwarder's token sits on a gateway in the field: if it leaks, it must not read
            // the fleet or change anything but what devices could have reported themselves.
            Role::Forwarder => matches!(permission, P::SystemRead | P::IntakeWrite),
        }
    }

    /// Whether everything `other` may do, this role may do too. A caller can only hand out
    /// tokens whose role it covers, so tokens never escalate privilege.
    pub fn covers(self, other: Role) -> bool {
        Permission::ALL
            .iter()
            .all(|&p| !other.grants(p) || self.grants(p))
    }

    /// The role's stable name (`read-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::ReadOnly => "read-only",
            Role::Forwarder => "forwarder",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {0:?}: expected one of admin, operator, analyst, auditor, read-only, forwarder"
)]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_covers_everyone_and_nobody_else_covers_admin() {
        for &r in Role::ALL {
            assert!(Role::Admin.covers(r));
            if r != Role::Admin {
                assert!(!r.covers(Role::Admin), "{r} must not cover admin");
            }
        }
    }

    #[test]
    fn read_only_covers_only_itself() {
        for &r in Role::ALL {
            assert_eq!(Role::ReadOnly.covers(r), r == Role::ReadOnly, "{r}");
        }
    }

    #[test]
    fn only_admin_writes_operators_and_only_admin_and_auditor_read_audit() {
        for &r in Role::ALL {
            assert_eq!(r.grants(Permission::OperatorsWrite), r == Role::Admin);
            assert_eq!(
                r.grants(Permission::AuditRead),
                matches!(r, Role::Admin | Role::Auditor)
            );
        }
    }

    #[test]
    fn a_forwarder_may_hand_in_messages_and_nothing_else() {
        for &p in Permission::ALL {
            assert_eq!(
                Role::Forwarder.grants(p),
                matches!(p, Permission::IntakeWrite | Permission::SystemRead),
                "{p}"
            );
        }
        // Only admin and forwarders feed the intake: people act, they do not report.
        for &r in Role::ALL {
            assert_eq!(
                r.grants(Permission::IntakeWrite),
                matches!(r, Role::Admin | Role::Forwarder),
                "{r}"
            );
        }
        assert!(!Role::Forwarder.covers(Role::ReadOnly));
    }

    #[test]
    fn names_round_trip() {
        for &r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        for &p in Permission::ALL {
            assert_eq!(Permission::from_name(p.as_str()), Some(p));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
