//! Two identity services on one store, as two replicas on one database: a revocation or a
//! quarantine made through one reaches the other's directory and its broker's event stream
//! within the sync interval.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{sync::Arc, time::Duration};

use garrison_core::{
    DeviceId, TenantId, Username,
    audit::{Actor, AuditRecord},
    device::{CertificateKind, RevocationReason},
    now_ms,
};
use garrison_identity::{IdentityEvent, IdentityService, IdentitySettings, Requester};
use garrison_store::{
    SqliteStore, Store,
    identity::{EnrollmentGrant, IdentityStore, NewBootstrapToken, NewCertificate},
};

async fn replica(url: &str, ca: Arc<garrison_pki::CertificateAuthority>) -> IdentityService {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(url).await.unwrap());
    IdentityService::start(store, ca, IdentitySettings::default())
        .await
        .unwrap()
}

async fn next_event(events: &mut tokio::sync::broadcast::Receiver<IdentityEvent>) -> IdentityEvent {
    tokio::time::timeout(Duration::from_secs(3), events.recv())
        .await
        .expect("no event within 3 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_each_others_revocations_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let setup = SqliteStore::open(&url).await.unwrap();
    setup.migrate().await.unwrap();
    let tenant = TenantId::default();
    let rec = |a: &str| AuditRecord::new(&tenant, Actor::system("test"), a, "x");
    let far = now_ms() + 86_400_000;
    setup
        .bootstrap_token_create(
            NewBootstrapToken {
                id: "t".into(),
                tenant: tenant.clone(),
                device_pattern: "*".into(),
                secret_hash: "h".into(),
                max_uses: 5,
                expires_at: far,
                created_by: Username::new("alice").unwrap(),
                certificate_validity_ms: None,
            },
            rec("bootstrap_token.create"),
        )
        .await
        .unwrap();
    let device = DeviceId::new("cam-1").unwrap();
    setup
        .certificate_record_issue(
            &tenant,
            &device,
            EnrollmentGrant::Token { id: "t".into() },
            NewCertificate {
                serial: "4a01".into(),
                kind: CertificateKind::Device,
                subject: "cam-1".into(),
                fingerprint: "fp".into(),
                pem: "pem".into(),
                not_before: now_ms() - 1000,
                not_after: far,
            },
            rec("certificate.issue"),
        )
        .await
        .unwrap();

    let generated = garrison_pki::CertificateAuthority::generate("Test").unwrap();
    let ca = Arc::new(
        garrison_pki::CertificateAuthority::load(
            &generated.root_cert_pem,
            &generated.issuing_cert_pem,
            &generated.issuing_key_pem,
        )
        .unwrap(),
    );
    let a = replica(&url, ca.clone()).await;
    let b = replica(&url, ca).await;
    let mut b_events = b.subscribe();
    tokio::spawn(b.clone().follow_store(Duration::from_millis(100)));
    let by = Requester {
        username: Username::new("alice").unwrap(),
        actor: Actor::operator("alice"),
        source: None,
    };

    a.revoke(&tenant, "4a01", RevocationReason::KeyCompromise, &by)
        .await
        .unwrap();
    assert!(a.directory().is_revoked("4a01"));
    match next_event(&mut b_events).await {
        IdentityEvent::Revoked { subject, serial } => {
            assert_eq!((subject.as_str(), serial.as_str()), ("cam-1", "4a01"))
        }
        other => panic!("expected a revocation, got {other:?}"),
    }
    assert!(
        b.directory().is_revoked("4a01"),
        "replica B refuses the serial too"
    );
    // …and has re-signed its CRL with it (the serial as a DER INTEGER: 02 02 4a 01).
    let names_serial = |der: &[u8]| der.windows(4).any(|w| w == [0x02, 0x02, 0x4a, 0x01]);
    assert!(names_serial(&b.crl().await.der), "B's CRL lists the serial");

    a.set_quarantined(&tenant, &device, true, &by)
        .await
        .unwrap();
    loop {
        if let IdentityEvent::QuarantineChanged {
            device: d,
            quarantined,
        } = next_event(&mut b_events).await
        {
            assert_eq!((d, quarantined), (device.clone(), true));
            break;
        }
    }
    assert!(b.directory().is_quarantined(&device));
    a.set_quarantined(&tenant, &device, false, &by)
        .await
        .unwrap();
    loop {
        if let IdentityEvent::QuarantineChanged { quarantined, .. } =
            next_event(&mut b_events).await
        {
            assert!(!quarantined);
            break;
        }
    }
    assert!(!b.directory().is_quarantined(&device));
}
