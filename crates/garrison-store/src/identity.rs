//! What the store keeps about device identity: devices, issued certificates, bootstrap tokens,
//! claim certificates and the enrollment (approval) queue.
//!
//! Issuing is one transaction: the grant that allowed it (a token use, a claim use, an approved
//! request, or the device's current certificate) is consumed, the device row is created or
//! updated, the certificate is recorded and the audit entry appended — or none of it happens.
//! The PKI signs *before* that transaction; a certificate whose transaction fails is never
//! handed out.

use async_trait::async_trait;
use garrison_core::{
    DeviceId, TenantId, UnixMillis, Username,
    audit::AuditRecord,
    device::{CertificateKind, EnrollmentMethod, RevocationReason},
};

use crate::{Page, PageRequest, StoreResult};

/// A device Garrison has issued an identity to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Tenant.
    pub tenant: TenantId,
    /// Device id (certificate CN, MQTT client id).
    pub id: DeviceId,
    /// Whether the quarantine profile applies.
    pub quarantined: bool,
    /// How its first certificate was obtained.
    pub enrolled_via: EnrollmentMethod,
    /// Serial of the most recently issued certificate.
    pub current_serial: Option<String>,
    /// First enrollment.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// When an operator asked for a new key; cleared by the next issuance.
    pub rotation_requested_at: Option<UnixMillis>,
}

/// The outcome of recording an issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The new certificate.
    pub certificate: Certificate,
    /// The certificate this renewal superseded and revoked (rotation), if any.
    pub superseded: Option<String>,
}

/// One issuance to record (see [`IdentityStore::certificate_record_issue_batch`]).
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Tenant.
    pub tenant: TenantId,
    /// The device.
    pub device: DeviceId,
    /// What allowed it.
    pub grant: EnrollmentGrant,
    /// The signed certificate.
    pub cert: NewCertificate,
    /// Its audit record.
    pub audit: AuditRecord,
}

/// A certificate Garrison issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Device or claim.
    pub kind: CertificateKind,
    /// The device id (device certificates) or claim name (claim certificates).
    pub subject: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// The certificate, PEM.
    pub pem: String,
    /// Start of validity.
    pub not_before: UnixMillis,
    /// End of validity.
    pub not_after: UnixMillis,
    /// When it was issued.
    pub issued_at: UnixMillis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
    /// Why it was revoked.
    pub revocation_reason: Option<RevocationReason>,
}

/// A certificate just signed, to be recorded.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Device or claim.
    pub kind: CertificateKind,
    /// Device id or claim name.
    pub subject: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// PEM.
    pub pem: String,
    /// Start of validity.
    pub not_before: UnixMillis,
    /// End of validity.
    pub not_after: UnixMillis,
}

/// What allowed an issuance, consumed in the issuing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollmentGrant {
    /// One use of a bootstrap token (checked again inside the transaction: unexpired,
    /// unrevoked, uses left).
    Token {
        /// Token id.
        id: String,
    },
    /// One use of a claim certificate.
    Claim {
        /// The claim certificate's serial.
        serial: String,
    },
    /// An approved (or pre-authorised) enrollment request for the device.
    Approval,
    /// Renewal: the device's current certificate, which must still be valid and unrevoked.
    Renewal {
        /// Serial of the certificate the device authenticated with.
        serial: String,
    },
}

impl EnrollmentGrant {
    /// The enrollment method this grant stands for.
    pub fn method(&self) -> EnrollmentMethod {
        match self {
            EnrollmentGrant::Token { .. } => EnrollmentMethod::Token,
            EnrollmentGrant::Claim { .. } => EnrollmentMethod::Claim,
            EnrollmentGrant::Approval => EnrollmentMethod::Approval,
            EnrollmentGrant::Renewal { .. } => EnrollmentMethod::Renewal,
        }
    }
}

/// A one-time (or few-times) bootstrap token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// Public id (the part before the secret).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// A device id, or a prefix ending in `*`.
    pub device_pattern: String,
    /// Enrollments allowed.
    pub max_uses: i64,
    /// Enrollments made.
    pub uses: i64,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: UnixMillis,
    /// When it was revoked.
    pub revoked_at: Option<UnixMillis>,
    /// Validity of the certificates it enrolls, ms (`None`: the server's default).
    pub certificate_validity_ms: Option<i64>,
}

/// A new bootstrap token; the secret is stored only as a hash.
#[derive(Debug, Clone)]
pub struct NewBootstrapToken {
    /// Public id.
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Device id or prefix pattern.
    pub device_pattern: String,
    /// Hash of the secret.
    pub secret_hash: String,
    /// Enrollments allowed.
    pub max_uses: i64,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// Creator.
    pub created_by: Username,
    /// Validity of the certificates it enrolls, ms (`None`: the server's default).
    pub certificate_validity_ms: Option<i64>,
}

/// A claim certificate's enrollment allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claim certificate's serial.
    pub serial: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Name (CN is `claim:<name>`).
    pub name: String,
    /// Enrollments allowed.
    pub max_uses: i64,
    /// Enrollments made.
    pub uses: i64,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: UnixMillis,
    /// Expiry of the certificate.
    pub not_after: UnixMillis,
    /// When the certificate was revoked.
    pub revoked_at: Option<UnixMillis>,
}

/// Where an enrollment request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    /// Waiting for an operator.
    Pending,
    /// Approved (or pre-authorised); the device's next request is issued.
    Approved,
    /// Rejected; the device's requests are refused.
    Rejected,
    /// A certificate was issued against the approval.
    Issued,
}

impl RequestStatus {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Issued => "issued",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<RequestStatus> {
        [
            RequestStatus::Pending,
            RequestStatus::Approved,
            RequestStatus::Rejected,
            RequestStatus::Issued,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A device's enrollment request in the approval queue (one per device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRequest {
    /// Tenant.
    pub tenant: TenantId,
    /// The device id the request names.
    pub device_id: DeviceId,
    /// Where it stands.
    pub status: RequestStatus,
    /// SHA-256 of the requested public key; a pre-authorisation may pin it in advance.
    pub public_key_sha256: Option<String>,
    /// The last CSR received, PEM.
    pub csr_pem: Option<String>,
    /// The address it came from.
    pub source: Option<String>,
    /// First seen.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// The operator who decided.
    pub decided_by: Option<String>,
    /// The certificate issued against it.
    pub serial: Option<String>,
}

/// A CSR arriving without credentials, for the approval queue.
#[derive(Debug, Clone)]
pub struct SubmittedRequest {
    /// Tenant.
    pub tenant: TenantId,
    /// Device id from the CSR.
    pub device_id: DeviceId,
    /// SHA-256 of its public key.
    pub public_key_sha256: String,
    /// The CSR, PEM.
    pub csr_pem: String,
    /// Source address.
    pub source: Option<String>,
}

/// What [`IdentityStore::identity_changes_since`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityChanges {
    /// `(serial, subject, revoked_at)`.
    pub revoked: Vec<(String, String, UnixMillis)>,
    /// `(device, quarantined, updated_at)`.
    pub devices: Vec<(DeviceId, bool, UnixMillis)>,
}

/// Which certificates to list.
#[derive(Debug, Clone, Default)]
pub struct CertificateFilter {
    /// Only this subject (device id or claim name).
    pub subject: Option<String>,
    /// Only unrevoked certificates expiring before this instant (and not yet expired).
    pub expiring_before: Option<UnixMillis>,
    /// Only this kind.
    pub kind: Option<CertificateKind>,
}

/// Device identity storage; every [`Store`](crate::Store) implements it.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// A device.
    async fn device_get(&self, tenant: &TenantId, id: &DeviceId) -> StoreResult<Option<Device>>;

    /// Devices ordered by id.
    async fn devices_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>>;

    /// Every quarantined device of every tenant (the broker's start-up view).
    async fn devices_quarantined(&self) -> StoreResult<Vec<(TenantId, DeviceId)>>;

    /// Certificates revoked after `after` (any tenant): `(serial, subject, revoked_at)`, and
    /// devices changed after `after`: `(device, quarantined, updated_at)` — what another
    /// replica did, for this one's directory.
    async fn identity_changes_since(&self, after: UnixMillis) -> StoreResult<IdentityChanges>;

    /// Turns the quarantine profile on or off.
    async fn device_set_quarantined(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        quarantined: bool,
        audit: AuditRecord,
    ) -> StoreResult<Device>;

    /// Records an issued device certificate, consuming `grant`, in one transaction. A renewal
    /// while a rotation is requested also revokes the renewed certificate (`superseded`).
    /// [`StoreError::Refused`](crate::StoreError::Refused) if the grant is no longer good.
    async fn certificate_record_issue(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        grant: EnrollmentGrant,
        cert: NewCertificate,
        audit: AuditRecord,
    ) -> StoreResult<Issued>;

    /// Records several issuances in **one** transaction (one fsync), each in its own savepoint
    /// so a refused grant affects only its own item. Group commit for concurrent enrollments.
    async fn certificate_record_issue_batch(
        &self,
        batch: Vec<IssueRequest>,
    ) -> StoreResult<Vec<StoreResult<Issued>>>;

    /// Asks a device for a new key: its next renewal supersedes its current certificate.
    async fn device_request_rotation(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        audit: AuditRecord,
    ) -> StoreResult<Device>;

    /// A certificate by serial.
    async fn certificate_get(
        &self,
        tenant: &TenantId,
        serial: &str,
    ) -> StoreResult<Option<Certificate>>;

    /// A certificate by serial in any tenant (the broker and EST see serials before tenants).
    async fn certificate_by_serial(&self, serial: &str) -> StoreResult<Option<Certificate>>;

    /// Certificates ordered by serial.
    async fn certificates_list(
        &self,
        tenant: &TenantId,
        filter: &CertificateFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Certificate>>;

    /// Revokes a certificate. [`StoreError::Conflict`](crate::StoreError::Conflict) if it
    /// already is.
    async fn certificate_revoke(
        &self,
        tenant: &TenantId,
        serial: &str,
        reason: RevocationReason,
        audit: AuditRecord,
    ) -> StoreResult<Certificate>;

    /// Revoked certificates of every tenant that have not yet expired: the CRL's content.
    async fn certificates_revoked_unexpired(
        &self,
        now: UnixMillis,
    ) -> StoreResult<Vec<Certificate>>;

    /// Stores a bootstrap token.
    async fn bootstrap_token_create(
        &self,
        new: NewBootstrapToken,
        audit: AuditRecord,
    ) -> StoreResult<BootstrapToken>;

    /// A bootstrap token with its secret hash, for authentication.
    async fn bootstrap_token_auth(&self, id: &str)
    -> StoreResult<Option<(BootstrapToken, String)>>;

    /// Bootstrap tokens, newest first.
    async fn bootstrap_tokens_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<BootstrapToken>>;

    /// Revokes a bootstrap token.
    async fn bootstrap_token_revoke(
        &self,
        tenant: &TenantId,
        id: &str,
        audit: AuditRecord,
    ) -> StoreResult<BootstrapToken>;

    /// Records a claim certificate and its allowance.
    async fn claim_create(
        &self,
        tenant: &TenantId,
        name: &str,
        max_uses: i64,
        created_by: &Username,
        cert: NewCertificate,
        audit: AuditRecord,
    ) -> StoreResult<Claim>;

    /// A claim by its certificate's serial.
    async fn claim_get(&self, serial: &str) -> StoreResult<Option<Claim>>;

    /// Claims ordered by name.
    async fn claims_list(&self, tenant: &TenantId, page: &PageRequest) -> StoreResult<Page<Claim>>;

    /// Files (or refreshes) a credential-less request: a pending request takes the new CSR, an
    /// issued one reopens as pending; approved and rejected requests are returned unchanged
    /// for the caller to act on.
    async fn enrollment_request_submit(
        &self,
        request: SubmittedRequest,
        audit: AuditRecord,
    ) -> StoreResult<EnrollmentRequest>;

    /// A device's request.
    async fn enrollment_request_get(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
    ) -> StoreResult<Option<EnrollmentRequest>>;

    /// Requests ordered by device id, optionally of one status.
    async fn enrollment_requests_list(
        &self,
        tenant: &TenantId,
        status: Option<RequestStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<EnrollmentRequest>>;

    /// How many requests of a status there are (the approval queue's size).
    async fn enrollment_requests_count(
        &self,
        tenant: &TenantId,
        status: RequestStatus,
    ) -> StoreResult<i64>;

    /// Approves or rejects a pending request.
    async fn enrollment_request_decide(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        approve: bool,
        decided_by: &Username,
        audit: AuditRecord,
    ) -> StoreResult<EnrollmentRequest>;

    /// Pre-authorises a device id (optionally pinning its public key): its first request is
    /// issued without waiting.
    async fn enrollment_preauthorize(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        public_key_sha256: Option<String>,
        decided_by: &Username,
        audit: AuditRecord,
    ) -> StoreResult<EnrollmentRequest>;
}
