//! Device identity: who may get a certificate, and what happens when one is withdrawn.
//!
//! [`IdentityService`] is the one path to a device certificate. Every way in — a bootstrap
//! token, a claim certificate, an operator's approval, renewal with the current certificate —
//! parses and verifies the CSR the same way, signs with the same CA code, and records the
//! certificate in the same store transaction that consumes the grant.
//!
//! Withdrawal is live: [`IdentityService::revoke`] re-signs the CRL at once, updates the
//! in-memory [`Directory`] that the broker consults on every connect, publish and subscribe,
//! and broadcasts an [`IdentityEvent`] so the broker closes sessions already open.
//! Quarantine works the same way.
//!
//! Architecture invariant: no HTTP or MQTT here; the API's EST routes and the broker call in
//! with domain values.
#![forbid(unsafe_code)]

mod directory;
mod tokens;

use std::{sync::Arc, time::Duration};

use garrison_core::{
    DeviceId, TenantId, UnixMillis, Username,
    audit::{Actor, AuditRecord},
    device::{CertificateKind, RevocationReason, pattern_matches},
    now_ms,
};
use garrison_pki::{
    CertificateAuthority, CsrError, DeviceCsr, PeerCertificate, PkiError, RevokedSerial, SignedCrl,
    pkcs7_certs_only,
};
use garrison_store::{
    Store, StoreError,
    identity::{
        BootstrapToken, Certificate, Claim, Device, EnrollmentGrant, IssueRequest, Issued,
        NewBootstrapToken, NewCertificate, RequestStatus, SubmittedRequest,
    },
};
use time::OffsetDateTime;
use tokio::sync::{RwLock, broadcast, mpsc, oneshot};

pub use directory::Directory;
pub use tokens::{BootstrapSecret, parse_bootstrap_token};

/// How identity behaves; resolved from the server configuration.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// The tenant devices enroll into.
    pub tenant: TenantId,
    /// Validity of device certificates.
    pub device_validity: Duration,
    /// How long a published CRL stays valid; it is re-signed at half that, and on every
    /// revocation.
    pub crl_validity: Duration,
    /// Whether credential-less requests wait in the approval queue (otherwise they are refused).
    pub approval_queue: bool,
    /// What a pending device is told to wait before asking again.
    pub pending_retry_after: Duration,
    /// Most pending requests at once; beyond it, new devices are told to come back later, so
    /// anonymous requests cannot grow the queue without bound.
    pub max_pending: i64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            tenant: TenantId::default(),
            device_validity: Duration::from_secs(90 * 86_400),
            crl_validity: Duration::from_secs(86_400),
            approval_queue: true,
            pending_retry_after: Duration::from_secs(60),
            max_pending: 10_000,
        }
    }
}

/// What a device presents besides its CSR.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Nothing: the request joins the approval queue.
    None,
    /// A bootstrap token (`gbt_…`).
    BootstrapToken(String),
    /// A client certificate the TLS layer verified against Garrison's CA: the device's own
    /// (renewal) or a claim certificate.
    Certificate(PeerCertificate),
}

/// An enrollment attempt.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// The CSR as received (base64 DER, PEM or DER).
    pub csr: Vec<u8>,
    /// What the device presented.
    pub credential: Credential,
    /// The address it came from.
    pub source: Option<String>,
}

/// What an enrollment attempt produced.
#[derive(Debug, Clone)]
pub enum EnrollOutcome {
    /// A certificate, recorded.
    Issued {
        /// The stored record.
        certificate: Certificate,
        /// The certificate's DER, for the EST response.
        der: Vec<u8>,
    },
    /// Waiting for an operator; ask again after this long.
    Pending {
        /// Retry-After.
        retry_after: Duration,
    },
}

/// Why enrollment was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The CSR is unusable.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The credential is missing, malformed or wrong.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credential is good but does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Storage failed.
    #[error("storage error: {0}")]
    Store(StoreError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Pki(#[from] PkiError),
    /// A batch of issuances could not be stored.
    #[error("storage error: {0}")]
    Storage(String),
    /// The approval queue is full; try again later.
    #[error("the approval queue is full ({0} pending requests); try again later")]
    QueueFull(i64),
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused { reason } => EnrollError::Forbidden(reason),
            other => EnrollError::Store(other),
        }
    }
}

/// Something the broker must act on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityEvent {
    /// A certificate was revoked: close any session using it.
    Revoked {
        /// Subject (device id or claim name).
        subject: String,
        /// Serial.
        serial: String,
    },
    /// A device's quarantine profile changed.
    QuarantineChanged {
        /// The device.
        device: DeviceId,
        /// Whether it is now quarantined.
        quarantined: bool,
    },
}

/// Errors of operator-driven identity actions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Storage failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A token asked for certificates that outlive the server's device validity.
    #[error(
        "a token may only shorten certificates: {requested} is longer than the device validity of {maximum} (pki.device_validity)"
    )]
    ValidityTooLong {
        /// What was asked, human-readable.
        requested: String,
        /// The configured device validity, human-readable.
        maximum: String,
    },
}

/// Who asks for an operator action, for the audit log.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The operator (or the operator behind a token).
    pub username: Username,
    /// How they authenticated, as the audit log names it.
    pub actor: Actor,
    /// Their network address.
    pub source: Option<String>,
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct IdentityService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    ca: Arc<CertificateAuthority>,
    settings: IdentitySettings,
    directory: Directory,
    crl: RwLock<Arc<SignedCrl>>,
    events: broadcast::Sender<IdentityEvent>,
    issuer: mpsc::Sender<PendingIssue>,
}

type PendingIssue = (IssueRequest, oneshot::Sender<Result<Issued, EnrollError>>);

/// Most issuances committed together.
const MAX_BATCH: usize = 256;

/// Group commit: takes every issuance waiting when the previous transaction finishes and
/// records them in one transaction (one fsync) — under load, batches grow by themselves; alone,
/// an issuance is committed at once.
async fn write_issuances(store: Arc<dyn Store>, mut queue: mpsc::Receiver<PendingIssue>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        metrics::histogram!("garrison_issuance_batch_size").record(requests.len() as f64);
        match store.certificate_record_issue_batch(requests).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result.map_err(EnrollError::from));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "Recording a batch of issued certificates failed");
                for reply in replies {
                    let _ = reply.send(Err(EnrollError::Storage(e.to_string())));
                }
            }
        }
    }
}

fn to_offset(ms: UnixMillis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_ms(t: OffsetDateTime) -> UnixMillis {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl IdentityService {
    /// Loads revoked serials and quarantined devices from `store`, and signs a first CRL.
    pub async fn start(
        store: Arc<dyn Store>,
        ca: Arc<CertificateAuthority>,
        settings: IdentitySettings,
    ) -> Result<IdentityService, IdentityError> {
        let revoked = store.certificates_revoked_unexpired(now_ms()).await?;
        let quarantined = store.devices_quarantined().await?;
        let directory = Directory::new(
            revoked.iter().map(|c| c.serial.clone()),
            quarantined.into_iter().map(|(_, d)| d),
        );
        let crl = sign_crl(&ca, &revoked, settings.crl_validity)?;
        let (events, _) = broadcast::channel(1024);
        let (issuer, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_issuances(store.clone(), queue));
        Ok(IdentityService {
            inner: Arc::new(Inner {
                issuer,
                store,
                ca,
                settings,
                directory,
                crl: RwLock::new(Arc::new(crl)),
                events,
            }),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &IdentitySettings {
        &self.inner.settings
    }

    /// The certificate authority.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.inner.ca
    }

    /// The live view the broker checks connections and messages against.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// Revocations and quarantine changes as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<IdentityEvent> {
        self.inner.events.subscribe()
    }

    /// The CA certificates (issuing, then root) as PKCS#7 certs-only DER, for EST `/cacerts`.
    pub fn ca_certs_pkcs7(&self) -> Result<Vec<u8>, PkiError> {
        let mut certs = garrison_pki::pem_certificates(self.ca().issuing_pem(), "issuing CA")?;
        certs.extend(garrison_pki::pem_certificates(
            self.ca().root_pem(),
            "root CA",
        )?);
        Ok(pkcs7_certs_only(&certs))
    }

    /// The current CRL.
    pub async fn crl(&self) -> Arc<SignedCrl> {
        self.inner.crl.read().await.clone()
    }

    /// Re-signs the CRL from the store (every revocation does this; a timer does it too, so
    /// the CRL never passes its next-update time).
    pub async fn refresh_crl(&self) -> Result<(), IdentityError> {
        let revoked = self
            .inner
            .store
            .certificates_revoked_unexpired(now_ms())
            .await?;
        let crl = sign_crl(&self.inner.ca, &revoked, self.inner.settings.crl_validity)?;
        *self.inner.crl.write().await = Arc::new(crl);
        Ok(())
    }

    /// Enrolls (or renews) a device. See the crate documentation for the ways in.
    pub async fn enroll(&self, request: EnrollRequest) -> Result<EnrollOutcome, EnrollError> {
        let csr = DeviceCsr::parse(&request.csr)?;
        let tenant = self.inner.settings.tenant.clone();
        let device = csr.device_id.clone();
        let mut validity = self.inner.settings.device_validity;
        let (grant, actor) = match request.credential {
            Credential::BootstrapToken(text) => {
                let token = self.check_bootstrap_token(&text, &device).await?;
                if let Some(ms) = token.certificate_validity_ms {
                    validity = validity.min(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
                }
                (
                    EnrollmentGrant::Token { id: token.id },
                    Actor::device(device.as_str()),
                )
            }
            Credential::Certificate(peer) => self.certificate_grant(&peer, &device).await?,
            Credential::None => match self.queue(&tenant, &csr, request.source.clone()).await? {
                Some(grant) => (grant, Actor::device(device.as_str())),
                None => {
                    return Ok(EnrollOutcome::Pending {
                        retry_after: self.inner.settings.pending_retry_after,
                    });
                }
            },
        };
        let issued = self.inner.ca.issue_device(&csr, to_time(validity))?;
        let audit = AuditRecord::new(
            &tenant,
            actor,
            "certificate.issue",
            format!("device:{device}"),
        )
        .source(request.source);
        let recorded = self
            .record(IssueRequest {
                tenant: tenant.clone(),
                device: device.clone(),
                grant,
                cert: NewCertificate {
                    serial: issued.serial.clone(),
                    kind: CertificateKind::Device,
                    subject: device.to_string(),
                    fingerprint: issued.fingerprint.clone(),
                    pem: issued.pem.clone(),
                    not_before: to_ms(issued.not_before),
                    not_after: to_ms(issued.not_after),
                },
                audit,
            })
            .await?;
        let certificate = recorded.certificate;
        if let Some(old) = recorded.superseded {
            // A rotation completed: the old key is retired like any revoked certificate.
            self.retired(&device.to_string(), &old).await;
        }
        metrics::counter!("garrison_certificates_issued_total").increment(1);
        tracing::info!(device = %device, serial = %certificate.serial, "Issued a device certificate");
        Ok(EnrollOutcome::Issued {
            certificate,
            der: issued.der.to_vec(),
        })
    }

    /// Records an issuance through the group-commit writer: the issuances waiting when the
    /// previous transaction ends are recorded in one (one fsync; the bootstrap-token ones in
    /// a few multi-row statements for the whole batch, which on PostgreSQL also means a few
    /// round trips under the audit chain's lock instead of several per issuance).
    async fn record(&self, request: IssueRequest) -> Result<Issued, EnrollError> {
        let (reply, outcome) = oneshot::channel();
        self.inner
            .issuer
            .send((request, reply))
            .await
            .map_err(|_| EnrollError::Storage("the issuance writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| EnrollError::Storage("the issuance writer has stopped".into()))?
    }

    async fn check_bootstrap_token(
        &self,
        text: &str,
        device: &DeviceId,
    ) -> Result<BootstrapToken, EnrollError> {
        let (id, secret) = parse_bootstrap_token(text).ok_or_else(|| {
            EnrollError::Unauthenticated("the bootstrap token is malformed (expected gbt_…)".into())
        })?;
        let unknown = || EnrollError::Unauthenticated("unknown or wrong bootstrap token".into());
        let (token, hash) = self
            .inner
            .store
            .bootstrap_token_auth(id)
            .await
            .map_err(EnrollError::Store)?
            .ok_or_else(unknown)?;
        if !tokens::secret_matches(secret, &hash) || token.tenant != self.inner.settings.tenant {
            return Err(unknown());
        }
        if token.revoked_at.is_some() {
            return Err(EnrollError::Forbidden(
                "the bootstrap token was revoked".into(),
            ));
        }
        if token.expires_at <= now_ms() {
            return Err(EnrollError::Forbidden(
                "the bootstrap token has expired".into(),
            ));
        }
        if token.uses >= token.max_uses {
            return Err(EnrollError::Forbidden(
                "the bootstrap token has been used up".into(),
            ));
        }
        if !pattern_matches(&token.device_pattern, device) {
            return Err(EnrollError::Forbidden(format!(
                "the bootstrap token is for devices matching {:?}, but the CSR names {device}",
                token.device_pattern
            )));
        }
        Ok(token)
    }

    async fn certificate_grant(
        &self,
        peer: &PeerCertificate,
        device: &DeviceId,
    ) -> Result<(EnrollmentGrant, Actor), EnrollError> {
        if self.inner.directory.is_revoked(&peer.serial) {
            return Err(EnrollError::Forbidden(
                "the client certificate has been revoked".into(),
            ));
        }
        if let Some(name) = peer.common_name.strip_prefix("claim:") {
            let claim = self
                .inner
                .store
                .claim_get(&peer.serial)
                .await
                .map_err(EnrollError::Store)?
                .ok_or_else(|| {
                    EnrollError::Forbidden("the claim certificate is not known here".into())
                })?;
            if claim.uses >= claim.max_uses {
                return Err(EnrollError::Forbidden(format!(
                    "claim {name:?} has been used up ({} enrollments)",
                    claim.max_uses
                )));
            }
            return Ok((
                EnrollmentGrant::Claim {
                    serial: peer.serial.clone(),
                },
                Actor::from_stored(format!("claim:{name}")),
            ));
        }
        if peer.common_name != device.as_str() {
            return Err(EnrollError::Forbidden(format!(
                "a certificate for {:?} cannot renew {device}: the CSR's CN must equal the current certificate's",
                peer.common_name
            )));
        }
        Ok((
            EnrollmentGrant::Renewal {
                serial: peer.serial.clone(),
            },
            Actor::device(device.as_str()),
        ))
    }

    /// Files a credential-less request; returns the grant when it is already approved.
    async fn queue(
        &self,
        tenant: &TenantId,
        csr: &DeviceCsr,
        source: Option<String>,
    ) -> Result<Option<EnrollmentGrant>, EnrollError> {
        if !self.inner.settings.approval_queue {
            return Err(EnrollError::Unauthenticated(
                "enrollment needs a bootstrap token (HTTP Basic password) or a claim certificate; the approval queue is off".into(),
            ));
        }
        let known = self
            .inner
            .store
            .enrollment_request_get(tenant, &csr.device_id)
            .await?
            .is_some();
        if !known {
            let pending = self
                .inner
                .store
                .enrollment_requests_count(tenant, RequestStatus::Pending)
                .await?;
            if pending >= self.inner.settings.max_pending {
                return Err(EnrollError::QueueFull(pending));
            }
        }
        let audit = AuditRecord::new(
            tenant,
            Actor::device(csr.device_id.as_str()),
            "enrollment.request",
            format!("device:{}", csr.device_id),
        )
        .source(source.clone());
        let request = self
            .inner
            .store
            .enrollment_request_submit(
                SubmittedRequest {
                    tenant: tenant.clone(),
                    device_id: csr.device_id.clone(),
                    public_key_sha256: csr.public_key_sha256.clone(),
                    csr_pem: csr.pem.clone(),
                    source,
                },
                audit,
            )
            .await?;
        match request.status {
            RequestStatus::Pending | RequestStatus::Issued => Ok(None),
            RequestStatus::Rejected => Err(EnrollError::Forbidden(format!(
                "an operator rejected enrollment of {}",
                csr.device_id
            ))),
            RequestStatus::Approved => match &request.public_key_sha256 {
                Some(pinned) if pinned != &csr.public_key_sha256 => {
                    Err(EnrollError::Forbidden(format!(
                        "the approval for {} is for another public key",
                        csr.device_id
                    )))
                }
                _ => Ok(Some(EnrollmentGrant::Approval)),
            },
        }
    }

    /// Follows revocations and quarantine changes made by other replicas sharing the store,
    /// polling every `every`: each change not yet in this process's directory is applied and
    /// announced exactly as a local one, so the broker here closes a session within about
    /// `every` of another replica revoking its certificate. Polls overlap by a few seconds so
    /// replica clocks need not agree exactly; re-seen changes are ignored.
    pub async fn follow_store(self, every: Duration) {
        const OVERLAP_MS: i64 = 5_000;
        let mut watermark = now_ms();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let changes = match self
                .inner
                .store
                .identity_changes_since(watermark.saturating_sub(OVERLAP_MS))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot read identity changes from the store; will retry");
                    continue;
                }
            };
            for (serial, subject, at) in changes.revoked {
                watermark = watermark.max(at);
                if !self.inner.directory.is_revoked(&serial) {
                    tracing::info!(%serial, %subject, "Another replica revoked a certificate");
                    self.retired(&subject, &serial).await;
                }
            }
            for (device, quarantined, at) in changes.devices {
                watermark = watermark.max(at);
                if self.inner.directory.is_quarantined(&device) != quarantined {
                    tracing::info!(%device, quarantined, "Another replica changed a quarantine profile");
                    self.inner.directory.set_quarantined(&device, quarantined);
                    let _ = self.inner.events.send(IdentityEvent::QuarantineChanged {
                        device,
                        quarantined,
                    });
                }
            }
        }
    }

    /// Revokes a certificate: store, CRL, directory, and an event that makes the broker close
    /// its session.
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        serial: &str,
        reason: RevocationReason,
        by: &Requester,
    ) -> Result<Certificate, IdentityError> {
        let audit = AuditRecord::new(
            tenant,
            by.actor.clone(),
            "certificate.revoke",
            format!("certificate:{serial}"),
        )
        .source(by.source.clone());
        let cert = self
            .inner
            .store
            .certificate_revoke(tenant, serial, reason, audit)
            .await?;
        tracing::info!(serial, subject = %cert.subject, reason = %reason, "Revoked a certificate");
        self.retired(&cert.subject, serial).await;
        Ok(cert)
    }

    /// After the store revoked `serial`: directory (new handshakes are refused at once), CRL,
    /// then the broker event — so whoever sees the event can rely on the CRL listing it.
    async fn retired(&self, subject: &str, serial: &str) {
        self.inner.directory.add_revoked(serial);
        if let Err(e) = self.refresh_crl().await {
            // The timer re-signs it; the directory already refuses the serial.
            tracing::error!(error = %e, "Re-signing the CRL after a revocation failed");
        }
        let _ = self.inner.events.send(IdentityEvent::Revoked {
            subject: subject.to_owned(),
            serial: serial.to_owned(),
        });
        metrics::counter!("garrison_certificates_revoked_total").increment(1);
    }

    /// Asks a device to rotate its key: its next renewal (EST `simplereenroll`) supersedes and
    /// revokes the certificate it renews with. The caller tells the device (a `cmd` message).
    pub async fn request_rotation(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        by: &Requester,
    ) -> Result<Device, IdentityError> {
        let audit = AuditRecord::new(
            tenant,
            by.actor.clone(),
            "device.rotate",
            format!("device:{device}"),
        )
        .source(by.source.clone());
        Ok(self
            .inner
            .store
            .device_request_rotation(tenant, device, audit)
            .await?)
    }

    /// Switches a device's quarantine profile on or off, effective for its next message.
    pub async fn set_quarantined(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        quarantined: bool,
        by: &Requester,
    ) -> Result<Device, IdentityError> {
        let action = if quarantined {
            "device.quarantine"
        } else {
            "device.release"
        };
        let audit = AuditRecord::new(tenant, by.actor.clone(), action, format!("device:{device}"))
            .source(by.source.clone());
        let stored = self
            .inner
            .store
            .device_set_quarantined(tenant, device, quarantined, audit)
            .await?;
        self.inner.directory.set_quarantined(device, quarantined);
        let _ = self.inner.events.send(IdentityEvent::QuarantineChanged {
            device: device.clone(),
            quarantined,
        });
        Ok(stored)
    }

    /// Creates a bootstrap token for `device_pattern`; the returned secret is shown once.
    pub async fn create_bootstrap_token(
        &self,
        tenant: &TenantId,
        device_pattern: &str,
        max_uses: i64,
        ttl: Duration,
        certificate_validity: Option<Duration>,
        by: &Requester,
    ) -> Result<(BootstrapToken, BootstrapSecret), IdentityError> {
        let maximum = self.inner.settings.device_validity;
        if let Some(requested) = certificate_validity
            && requested > maximum
        {
            return Err(IdentityError::ValidityTooLong {
                requested: humantime::format_duration(requested).to_string(),
                maximum: humantime::format_duration(maximum).to_string(),
            });
        }
        let secret = BootstrapSecret::generate().ok_or(IdentityError::Random)?;
        let expires_at =
            now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let audit = AuditRecord::new(
            tenant,
            by.actor.clone(),
            "bootstrap_token.create",
            format!("bootstrap_token:{}", secret.id),
        )
        .source(by.source.clone());
        let token = self
            .inner
            .store
            .bootstrap_token_create(
                NewBootstrapToken {
                    id: secret.id.clone(),
                    tenant: tenant.clone(),
                    device_pattern: device_pattern.to_owned(),
                    secret_hash: secret.hash.clone(),
                    max_uses,
                    expires_at,
                    created_by: by.username.clone(),
                    certificate_validity_ms: certificate_validity
                        .map(|v| i64::try_from(v.as_millis()).unwrap_or(i64::MAX)),
                },
                audit,
            )
            .await?;
        Ok((token, secret))
    }

    /// Issues a claim certificate named `name` allowing `max_uses` enrollments; returns the
    /// claim, its certificate PEM and its private key PEM (shown once, not kept).
    pub async fn create_claim(
        &self,
        tenant: &TenantId,
        name: &str,
        max_uses: i64,
        validity: Duration,
        by: &Requester,
    ) -> Result<(Claim, String, String), IdentityError> {
        let issued = self.inner.ca.issue_claim(name, to_time(validity))?;
        let cert = &issued.certificate;
        let audit = AuditRecord::new(
            tenant,
            by.actor.clone(),
            "claim.create",
            format!("claim:{name}"),
        )
        .source(by.source.clone());
        let claim = self
            .inner
            .store
            .claim_create(
                tenant,
                name,
                max_uses,
                &by.username,
                NewCertificate {
                    serial: cert.serial.clone(),
                    kind: CertificateKind::Claim,
                    subject: name.to_owned(),
                    fingerprint: cert.fingerprint.clone(),
                    pem: cert.pem.clone(),
                    not_before: to_ms(cert.not_before),
                    not_after: to_ms(cert.not_after),
                },
                audit,
            )
            .await?;
        Ok((claim, issued.certificate.pem, issued.key_pem))
    }
}

fn sign_crl(
    ca: &CertificateAuthority,
    revoked: &[Certificate],
    validity: Duration,
) -> Result<SignedCrl, PkiError> {
    let entries: Vec<RevokedSerial> = revoked
        .iter()
        .map(|c| RevokedSerial {
            serial: c.serial.clone(),
            revoked_at: to_offset(c.revoked_at.unwrap_or(c.issued_at)),
            reason: c.revocation_reason.unwrap_or(RevocationReason::Unspecified),
        })
        .collect();
    // Milliseconds since the epoch grow with every CRL, as RFC 5280 requires of CRL numbers.
    let number = u64::try_from(now_ms()).unwrap_or(0);
    ca.sign_crl(&entries, number, to_time(validity))
}
