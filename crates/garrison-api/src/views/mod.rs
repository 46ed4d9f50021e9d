//! Wire types of the API: what JSON clients send and receive. Converted by hand from store
//! records, because a serialised shape is a compatibility promise the store must not make.

pub mod inventory;
pub mod monitor;

use garrison_core::{Role, audit::AuditEntry, format_ms, now_ms};
use garrison_store::{Operator, Page, TokenInfo, TokenKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PageOf<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> PageOf<T> {
    /// Converts a store page item by item.
    pub fn from_page<U>(page: Page<U>, f: impl Fn(U) -> T) -> PageOf<T> {
        PageOf {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next,
        }
    }
}

/// Credentials for `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Operator username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Session token; send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The token's id (for `DELETE /api/v1/tokens/{id}`).
    pub token_id: String,
    /// Who logged in.
    pub username: String,
    /// Their role.
    pub role: Role,
    /// When the session ends (RFC 3339).
    pub expires_at: String,
}

/// The authenticated caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Username.
    pub username: String,
    /// The credential's role.
    pub role: Role,
    /// `session` or `api`.
    pub credential: String,
    /// The credential's token id.
    pub token_id: String,
    /// Permissions the caller holds, by stable name.
    pub permissions: Vec<String>,
}

/// Change one's own password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    pub current_password: String,
    /// The new password (at least 12 characters).
    pub new_password: String,
}

/// An operator account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// Username.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Disabled operators cannot log in; their tokens were revoked.
    pub disabled: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl From<Operator> for OperatorView {
    fn from(o: Operator) -> Self {
        OperatorView {
            username: o.username.into(),
            role: o.role,
            disabled: o.disabled,
            created_at: format_ms(o.created_at),
            updated_at: format_ms(o.updated_at),
        }
    }
}

/// Create an operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperator {
    /// Username: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Initial password (at least 12 characters). Omit to have one generated and returned once.
    #[serde(default)]
    pub password: Option<String>,
}

/// A created operator.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedOperator {
    /// The operator.
    pub operator: OperatorView,
    /// The generated password, present only when none was supplied. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
}

/// An API token's description (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Token id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Owner's username.
    pub owner: String,
    /// Role the token carries.
    pub role: Role,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Expires (RFC 3339), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Revoked (RFC 3339), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now_ms()) {
            "expired"
        } else {
            "active"
        };
        TokenView {
            id: t.id,
            name: t.name,
            owner: t.owner.into(),
            role: t.role,
            state: state.to_owned(),
            created_at: format_ms(t.created_at),
            expires_at: t.expires_at.map(format_ms),
            revoked_at: t.revoked_at.map(format_ms),
        }
    }
}

/// Create an API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label, e.g. `prometheus` or `ci-deploy` (1–100 characters).
    pub name: String,
    /// The token's role; defaults to the caller's. Never more than the caller's.
    #[serde(default)]
    pub role: Option<Role>,
    /// Lifetime such as `30d` or `12h` (1 minute to 3650 days); default `90d`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A created API token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token string. Shown once: store it now.
    pub token: String,
    /// Its description.
    pub info: TokenView,
}

/// An audit log entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the chain.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who or what (`operator:alice`, `token:…(alice)`, `system:…`, `anonymous:…`).
    pub actor: String,
    /// Dotted verb.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// State before, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// State after, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// Source address, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The entry's chain hash (hex).
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        let parse = |text: Option<String>| {
            text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
        };
        AuditEntryView {
            seq: e.seq,
            at: format_ms(e.at_ms),
            actor: e.actor,
            action: e.action,
            target: e.target,
            before: parse(e.before),
            after: parse(e.after),
            source: e.source,
            hash: e.hash.to_hex(),
        }
    }
}

/// Result of walking the audit chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyView {
    /// True when every entry verified.
    pub intact: bool,
    /// Entries verified before the first break (all when intact).
    pub verified: i64,
    /// Hash of the last verified entry: record it elsewhere to detect truncation later.
    pub head: String,
    /// The first broken entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_break: Option<garrison_core::audit::ChainBreak>,
}

/// Server information.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// Garrison version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// SHA-256 fingerprint of the root CA certificate.
    pub ca_fingerprint: String,
}

/// Health or readiness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// Why not ready, if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub(crate) fn credential_name(kind: TokenKind) -> &'static str {
    kind.as_str()
}

/// A device with an identity issued by Garrison.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// Device id (certificate CN, MQTT client id).
    pub id: String,
    /// Whether the quarantine profile applies (only `update` and `cmd` stay open).
    pub quarantined: bool,
    /// How it first enrolled: `token`, `claim`, `approval` or `renewal`.
    pub enrolled_via: String,
    /// Serial of its most recent certificate.
    pub current_serial: Option<String>,
    /// When a key rotation was requested and is still outstanding (RFC 3339).
    pub rotation_requested_at: Option<String>,
    /// First enrollment (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<garrison_store::identity::Device> for DeviceView {
    fn from(d: garrison_store::identity::Device) -> Self {
        DeviceView {
            id: d.id.into(),
            quarantined: d.quarantined,
            enrolled_via: d.enrolled_via.as_str().to_owned(),
            current_serial: d.current_serial,
            rotation_requested_at: d.rotation_requested_at.map(format_ms),
            created_at: format_ms(d.created_at),
            updated_at: format_ms(d.updated_at),
        }
    }
}

/// A certificate Garrison issued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateView {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// `device` or `claim`.
    pub kind: String,
    /// Device id, or claim name.
    pub subject: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// `valid`, `expired` or `revoked`.
    pub status: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Issued (RFC 3339).
    pub issued_at: String,
    /// Revoked (RFC 3339).
    pub revoked_at: Option<String>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
    /// The certificate, PEM.
    pub pem: String,
}

impl From<garrison_store::identity::Certificate> for CertificateView {
    fn from(c: garrison_store::identity::Certificate) -> Self {
        let status = if c.revoked_at.is_some() {
            "revoked"
        } else if c.not_after <= now_ms() {
            "expired"
        } else {
            "valid"
        };
        CertificateView {
            serial: c.serial,
            kind: c.kind.as_str().to_owned(),
            subject: c.subject,
            fingerprint: c.fingerprint,
            status: status.to_owned(),
            not_before: format_ms(c.not_before),
            not_after: format_ms(c.not_after),
            issued_at: format_ms(c.issued_at),
            revoked_at: c.revoked_at.map(format_ms),
            revocation_reason: c.revocation_reason.map(|r| r.as_str().to_owned()),
            pem: c.pem,
        }
    }
}

/// Revoke a certificate.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeCertificate {
    /// `unspecified` (default), `key-compromise`, `affiliation-changed`, `superseded`,
    /// `cessation-of-operation` or `privilege-withdrawn`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A bootstrap token (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BootstrapTokenView {
    /// Token id.
    pub id: String,
    /// Device id, or prefix ending in `*`, the token may enroll.
    pub device_pattern: String,
    /// Enrollments allowed.
    pub max_uses: i64,
    /// Enrollments made.
    pub uses: i64,
    /// `active`, `used`, `expired` or `revoked`.
    pub status: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// Creator.
    pub created_by: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Validity of the certificates it enrolls, such as `7days`; absent: the server's
    /// configured device validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_validity: Option<String>,
}

impl From<garrison_store::identity::BootstrapToken> for BootstrapTokenView {
    fn from(t: garrison_store::identity::BootstrapToken) -> Self {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.uses >= t.max_uses {
            "used"
        } else if t.expires_at <= now_ms() {
            "expired"
        } else {
            "active"
        };
        BootstrapTokenView {
            id: t.id,
            device_pattern: t.device_pattern,
            max_uses: t.max_uses,
            uses: t.uses,
            status: status.to_owned(),
            expires_at: format_ms(t.expires_at),
            created_by: t.created_by,
            created_at: format_ms(t.created_at),
            certificate_validity: t.certificate_validity_ms.map(|ms| {
                let ms = u64::try_from(ms).unwrap_or(0);
                humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
            }),
        }
    }
}

/// Create a bootstrap token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBootstrapToken {
    /// A device id, or a prefix ending in `*` (`line4-*`).
    pub device_pattern: String,
    /// Enrollments allowed (default 1, at most 100000).
    #[serde(default)]
    pub max_uses: Option<i64>,
    /// Lifetime such as `24h` (default) or `7d`; 1 minute to 365 days.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Shorter validity for the certificates it enrolls, such as `7d` (at least 1 hour, at
    /// most the server's device validity); absent: the device validity. Renewals get the
    /// full validity.
    #[serde(default)]
    pub certificate_validity: Option<String>,
}

/// A created bootstrap token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedBootstrapToken {
    /// The token to give the device (`gbt_…`); shown only here.
    pub token: String,
    /// Its description.
    pub info: BootstrapTokenView,
}

/// A claim certificate's allowance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    /// Name (the certificate's CN is `claim:<name>`).
    pub name: String,
    /// The claim certificate's serial.
    pub serial: String,
    /// Enrollments allowed.
    pub max_uses: i64,
    /// Enrollments made.
    pub uses: i64,
    /// Expiry (RFC 3339).
    pub not_after: String,
    /// Revoked (RFC 3339).
    pub revoked_at: Option<String>,
    /// Creator.
    pub created_by: String,
}

impl From<garrison_store::identity::Claim> for ClaimView {
    fn from(c: garrison_store::identity::Claim) -> Self {
        ClaimView {
            name: c.name,
            serial: c.serial,
            max_uses: c.max_uses,
            uses: c.uses,
            not_after: format_ms(c.not_after),
            revoked_at: c.revoked_at.map(format_ms),
            created_by: c.created_by,
        }
    }
}

/// Create a claim certificate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClaim {
    /// Name: the same rules as a device id.
    pub name: String,
    /// Enrollments allowed (default 1000).
    #[serde(default)]
    pub max_uses: Option<i64>,
    /// Validity such as `365d` (default); 1 hour to 3650 days.
    #[serde(default)]
    pub valid_for: Option<String>,
}

/// A created claim certificate with its key — shown once; Garrison keeps no copy of the key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedClaim {
    /// The claim.
    pub claim: ClaimView,
    /// Certificate, PEM.
    pub certificate_pem: String,
    /// Private key, PKCS#8 PEM.
    pub private_key_pem: String,
}

/// An enrollment request in the approval queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentRequestView {
    /// Device id the request names.
    pub device_id: String,
    /// `pending`, `approved`, `rejected` or `issued`.
    pub status: String,
    /// SHA-256 of the requested public key.
    pub public_key_sha256: Option<String>,
    /// The address it came from.
    pub source: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The certificate issued against it.
    pub serial: Option<String>,
    /// First seen (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// The CSR, PEM.
    pub csr_pem: Option<String>,
}

impl From<garrison_store::identity::EnrollmentRequest> for EnrollmentRequestView {
    fn from(r: garrison_store::identity::EnrollmentRequest) -> Self {
        EnrollmentRequestView {
            device_id: r.device_id.into(),
            status: r.status.as_str().to_owned(),
            public_key_sha256: r.public_key_sha256,
            source: r.source,
            decided_by: r.decided_by,
            serial: r.serial,
            created_at: format_ms(r.created_at),
            updated_at: format_ms(r.updated_at),
            csr_pem: r.csr_pem,
        }
    }
}

/// Pre-authorise a device id: its first request is issued without waiting.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preauthorize {
    /// Device id.
    pub device_id: String,
    /// Optionally pin the public key (SHA-256 of its SubjectPublicKeyInfo, hex).
    #[serde(default)]
    pub public_key_sha256: Option<String>,
}

/// A device's MQTT session as the broker sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Whether the device is connected now.
    pub connected: bool,
    /// Messages accepted from it since the server started.
    pub messages_in: u64,
    /// Payload bytes accepted from it.
    pub bytes_in: u64,
    /// Refused publishes, subscriptions and connects.
    pub authorization_failures: u64,
    /// Successful connects.
    pub connects: u64,
    /// Disconnects.
    pub disconnects: u64,
    /// Address of its most recent connection attempt.
    pub last_address: Option<String>,
}

/// A message from the server to a device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceMessageBody {
    /// `cmd` or `update`.
    pub channel: String,
    /// The JSON payload (the device contract: an object with a `schema` field).
    pub payload: serde_json::Value,
}
