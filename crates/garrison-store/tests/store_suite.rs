//! The store test suite, run against both backends: SQLite in a temporary directory and
//! PostgreSQL in a fresh schema of the database named by `GARRISON_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`). Where PostgreSQL is unreachable the
//! PostgreSQL tests print a clear SKIPPED line — unless `GARRISON_TEST_REQUIRE_POSTGRES=1`
//! (set by `.ci/run`), in which case they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

#[macro_use]
mod common;
use common::*;

use garrison_core::{Role, Username, audit::BreakKind, now_ms};
use garrison_store::{NewOperator, NewToken, PageRequest, Store, StoreError, TokenKind};

fn op(name: &str, role: Role) -> NewOperator {
    NewOperator {
        tenant: tenant(),
        username: Username::new(name).unwrap(),
        role,
        password_hash: "hash".into(),
    }
}

both!(operators_round_trip);
async fn operators_round_trip(store: Arc<dyn Store>, _t: Tamper) {
    let alice = store
        .operator_create(
            op("alice", Role::Analyst),
            rec("operator.create", "operator:alice"),
        )
        .await
        .unwrap();
    assert_eq!(alice.role, Role::Analyst);
    assert!(!alice.disabled);
    let dup = store
        .operator_create(
            op("alice", Role::Admin),
            rec("operator.create", "operator:alice"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    for n in ["bob", "carol", "dave"] {
        store
            .operator_create(op(n, Role::ReadOnly), rec("operator.create", n))
            .await
            .unwrap();
    }
    assert_eq!(store.operators_count(&tenant()).await.unwrap(), 4);
    let p1 = store
        .operators_list(&tenant(), &PageRequest::first(3))
        .await
        .unwrap();
    let names: Vec<_> = p1.items.iter().map(|o| o.username.to_string()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let p2 = store
        .operators_list(
            &tenant(),
            &PageRequest {
                limit: 3,
                after: p1.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(p2.items[0].username.as_str(), "dave");
    assert!(p2.next.is_none());
    let auth = store
        .operator_auth(&tenant(), &Username::new("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.password_hash, "hash");
    assert!(
        store
            .operator_get(&tenant(), &Username::new("nobody").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

both!(tokens_and_disabling);
async fn tokens_and_disabling(store: Arc<dyn Store>, _t: Tamper) {
    store
        .operator_create(
            op("alice", Role::Operator),
            rec("operator.create", "operator:alice"),
        )
        .await
        .unwrap();
    let alice = Username::new("alice").unwrap();
    let mut ids = Vec::new();
    for (i, kind) in [TokenKind::Api, TokenKind::Api, TokenKind::Session]
        .into_iter()
        .enumerate()
    {
        let id = uuid::Uuid::now_v7().to_string();
        let t = store
            .token_create(
                NewToken {
                    id: id.clone(),
                    tenant: tenant(),
                    owner: alice.clone(),
                    kind,
                    name: format!("t{i}"),
                    role: Role::Analyst,
                    secret_hash: "h".into(),
                    expires_at: Some(now_ms() + 60_000),
                },
                rec("token.create", &id),
            )
            .await
            .unwrap();
        assert_eq!(t.owner, alice);
        ids.push(id);
    }
    let listed = store
        .tokens_list(&tenant(), Some(&alice), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2, "sessions are not listed");
    assert_eq!(listed.items[0].id, ids[1], "newest first");
    let auth = store.token_auth(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (auth.owner_role, auth.owner_disabled, auth.token.revoked_at),
        (Role::Operator, false, None)
    );

    let revoked = store
        .token_revoke(&tenant(), &ids[0], rec("token.revoke", &ids[0]))
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let missing = store
        .token_revoke(
            &tenant(),
            "00000000-0000-0000-0000-000000000000",
            rec("token.revoke", "x"),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));

    let disabled = store
        .operator_set_disabled(&tenant(), &alice, true, rec("operator.disable", "alice"))
        .await
        .unwrap();
    assert!(disabled.disabled);
    for id in &ids {
        let a = store.token_auth(id).await.unwrap().unwrap();
        assert!(
            a.owner_disabled && a.token.revoked_at.is_some(),
            "disabling revokes every token"
        );
    }
    let last = store
        .audit_list(&tenant(), &PageRequest::first(1))
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(last.action, "operator.disable");
    assert!(last.before.unwrap().contains("\"disabled\":false"));
    assert!(last.after.unwrap().contains("\"disabled\":true"));
}

both!(audit_chain_detects_tampering);
async fn audit_chain_detects_tampering(store: Arc<dyn Store>, tamper: Tamper) {
    for i in 0..5 {
        store
            .audit_append(rec("thing.do", &format!("thing:{i}")))
            .await
            .unwrap();
    }
    let v = store.audit_verify().await.unwrap();
    assert_eq!((v.verified, v.first_break.is_none()), (5, true));
    let page = store
        .audit_list(&tenant(), &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(page.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 4]);
    assert_eq!(page.next.as_deref(), Some("4"));

    tamper
        .exec("UPDATE audit_log SET target = 'thing:forged' WHERE seq = 3")
        .await;
    let v = store.audit_verify().await.unwrap();
    let b = v.first_break.expect("an edited row must break the chain");
    assert_eq!((b.seq, b.kind), (3, BreakKind::ContentModified));
    assert_eq!(v.verified, 2);
}

both!(audit_chain_detects_deletion);
async fn audit_chain_detects_deletion(store: Arc<dyn Store>, tamper: Tamper) {
    for i in 0..4 {
        store
            .audit_append(rec("thing.do", &format!("thing:{i}")))
            .await
            .unwrap();
    }
    tamper.exec("DELETE FROM audit_log WHERE seq = 2").await;
    let b = store.audit_verify().await.unwrap().first_break.unwrap();
    assert_eq!((b.seq, b.kind), (3, BreakKind::SequenceGap));
}

both!(concurrent_appends_keep_one_chain);
async fn concurrent_appends_keep_one_chain(store: Arc<dyn Store>, _t: Tamper) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.audit_append(rec("race", &format!("r:{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = store.audit_verify().await.unwrap();
    assert_eq!((v.verified, v.first_break), (40, None));
}

both!(secrets_meta_and_leases);
async fn secrets_meta_and_leases(store: Arc<dyn Store>, _t: Tamper) {
    assert_eq!(store.meta_get("k").await.unwrap(), None);
    assert_eq!(store.meta_put_if_absent("k", "one").await.unwrap(), "one");
    assert_eq!(store.meta_put_if_absent("k", "two").await.unwrap(), "one");
    assert!(
        store
            .secret_put_if_absent(&tenant(), "s", b"sealed", rec("pki.ca_create", "ca"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .secret_put_if_absent(&tenant(), "s", b"other", rec("pki.ca_create", "ca"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.secret_get(&tenant(), "s").await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    assert_eq!(
        store.audit_verify().await.unwrap().verified,
        1,
        "only the stored secret is audited"
    );

    let now = now_ms();
    assert!(store.lease_acquire("job", "a", now, 1000).await.unwrap());
    assert!(
        !store
            .lease_acquire("job", "b", now + 10, 1000)
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        store
            .lease_acquire("job", "a", now + 20, 1000)
            .await
            .unwrap(),
        "renewal"
    );
    assert!(
        store
            .lease_acquire("job", "b", now + 5000, 1000)
            .await
            .unwrap(),
        "expired, taken over"
    );
    store.ping().await.unwrap();
}

mod identity_fixtures {
    use garrison_core::device::CertificateKind;
    use garrison_store::identity::NewCertificate;

    pub(super) fn cert(serial: &str, subject: &str, not_after: i64) -> NewCertificate {
        NewCertificate {
            serial: serial.into(),
            kind: CertificateKind::Device,
            subject: subject.into(),
            fingerprint: format!("FP:{serial}"),
            pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            not_before: garrison_core::now_ms() - 1000,
            not_after,
        }
    }
}

fn dev(id: &str) -> garrison_core::DeviceId {
    garrison_core::DeviceId::new(id).unwrap()
}

fn refused<T: std::fmt::Debug, E: std::borrow::Borrow<StoreError> + std::fmt::Debug>(
    r: Result<T, E>,
    needle: &str,
) {
    match r.as_ref().map_err(|e| e.borrow()) {
        Err(StoreError::Refused { reason }) => {
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
        }
        other => panic!("expected Refused({needle}), got {other:?}"),
    }
}

both!(bootstrap_tokens_are_consumed_and_identities_are_unique);
async fn bootstrap_tokens_are_consumed_and_identities_are_unique(
    store: Arc<dyn Store>,
    _t: Tamper,
) {
    use garrison_core::device::RevocationReason;
    use garrison_store::identity::{CertificateFilter, EnrollmentGrant, NewBootstrapToken};
    let far = now_ms() + 86_400_000;
    let token = |id: &str, expires_at: i64| NewBootstrapToken {
        id: id.into(),
        tenant: tenant(),
        device_pattern: "dev-*".into(),
        secret_hash: "h".into(),
        max_uses: 2,
        expires_at,
        created_by: Username::new("alice").unwrap(),
        certificate_validity_ms: (id == "t1").then_some(3_600_000),
    };
    store
        .bootstrap_token_create(token("t1", far), rec("bootstrap_token.create", "t1"))
        .await
        .unwrap();
    let grant = || EnrollmentGrant::Token { id: "t1".into() };
    let issue = |d: &'static str, serial: &'static str, g: EnrollmentGrant| {
        let store = store.clone();
        async move {
            store
                .certificate_record_issue(
                    &tenant(),
                    &dev(d),
                    g,
                    identity_fixtures::cert(serial, d, far),
                    rec("certificate.issue", d),
                )
                .await
                .map(|issued| issued.certificate)
        }
    };
    let c1 = issue("dev-1", "01", grant()).await.unwrap();
    assert_eq!(c1.subject, "dev-1");
    refused(
        issue("dev-1", "02", grant()).await,
        "already has a valid certificate",
    );
    issue("dev-2", "03", grant()).await.unwrap();
    refused(issue("dev-3", "04", grant()).await, "used up");
    let (t, hash) = store.bootstrap_token_auth("t1").await.unwrap().unwrap();
    assert_eq!((t.uses, hash.as_str()), (2, "h"));
    assert_eq!(t.certificate_validity_ms, Some(3_600_000));

    store
        .bootstrap_token_create(
            token("t2", now_ms() - 1),
            rec("bootstrap_token.create", "t2"),
        )
        .await
        .unwrap();
    refused(
        issue("dev-4", "05", EnrollmentGrant::Token { id: "t2".into() }).await,
        "expired",
    );
    store
        .bootstrap_token_create(token("t3", far), rec("bootstrap_token.create", "t3"))
        .await
        .unwrap();
    store
        .bootstrap_token_revoke(&tenant(), "t3", rec("bootstrap_token.revoke", "t3"))
        .await
        .unwrap();
    refused(
        issue("dev-4", "06", EnrollmentGrant::Token { id: "t3".into() }).await,
        "revoked",
    );

    // Renewal with the current certificate; a revoked one cannot renew.
    issue(
        "dev-1",
        "07",
        EnrollmentGrant::Renewal {
            serial: "01".into(),
        },
    )
    .await
    .unwrap();
    let device = store
        .device_get(&tenant(), &dev("dev-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.current_serial.as_deref(), Some("07"));
    assert!(
        store
            .certificate_get(&tenant(), "01")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none(),
        "a plain renewal leaves the old certificate valid until it expires"
    );

    // Rotation: the next renewal supersedes the certificate it renewed with.
    let asked = store
        .device_request_rotation(&tenant(), &dev("dev-2"), rec("device.rotate", "dev-2"))
        .await
        .unwrap();
    assert!(asked.rotation_requested_at.is_some());
    let rotated = store
        .certificate_record_issue(
            &tenant(),
            &dev("dev-2"),
            EnrollmentGrant::Renewal {
                serial: "03".into(),
            },
            identity_fixtures::cert("0a", "dev-2", far),
            rec("certificate.issue", "dev-2"),
        )
        .await
        .unwrap();
    assert_eq!(rotated.superseded.as_deref(), Some("03"));
    let old = store
        .certificate_get(&tenant(), "03")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.revocation_reason, Some(RevocationReason::Superseded));
    let dev2 = store
        .device_get(&tenant(), &dev("dev-2"))
        .await
        .unwrap()
        .unwrap();
    assert!(dev2.rotation_requested_at.is_none());
    assert!(matches!(
        store
            .device_request_rotation(&tenant(), &dev("ghost"), rec("device.rotate", "ghost"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    refused(
        issue(
            "dev-2",
            "08",
            EnrollmentGrant::Renewal {
                serial: "01".into(),
            },
        )
        .await,
        "not this device's",
    );
    let revoked = store
        .certificate_revoke(
            &tenant(),
            "01",
            RevocationReason::KeyCompromise,
            rec("certificate.revoke", "01"),
        )
        .await
        .unwrap();
    assert_eq!(
        revoked.revocation_reason,
        Some(RevocationReason::KeyCompromise)
    );
    refused(
        store
            .certificate_revoke(
                &tenant(),
                "01",
                RevocationReason::Unspecified,
                rec("certificate.revoke", "01"),
            )
            .await,
        "already revoked",
    );
    refused(
        issue(
            "dev-1",
            "09",
            EnrollmentGrant::Renewal {
                serial: "01".into(),
            },
        )
        .await,
        "revoked",
    );
    let crl: Vec<_> = store
        .certificates_revoked_unexpired(now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(crl, ["01", "03"]);
    let mine = store
        .certificates_list(
            &tenant(),
            &CertificateFilter {
                subject: Some("dev-1".into()),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 2);
    let soon = store
        .certificates_list(
            &tenant(),
            &CertificateFilter {
                expiring_before: Some(far + 1),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    let serials: Vec<_> = soon.items.iter().map(|c| c.serial.as_str()).collect();
    assert_eq!(
        serials,
        ["07", "0a"],
        "revoked 01 and superseded 03 are not listed as expiring"
    );
    assert!(
        store
            .certificates_list(
                &tenant(),
                &CertificateFilter {
                    expiring_before: Some(far - 60_000),
                    ..Default::default()
                },
                &PageRequest::first(10),
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

both!(approval_queue_and_preauthorisation);
async fn approval_queue_and_preauthorisation(store: Arc<dyn Store>, _t: Tamper) {
    use garrison_store::identity::{EnrollmentGrant, RequestStatus, SubmittedRequest};
    let alice = Username::new("alice").unwrap();
    let far = now_ms() + 86_400_000;
    let submit = |d: &str, key: &str| SubmittedRequest {
        tenant: tenant(),
        device_id: dev(d),
        public_key_sha256: key.into(),
        csr_pem: "csr".into(),
        source: Some("10.0.0.9".into()),
    };
    let r = store
        .enrollment_request_submit(submit("cam-1", "k1"), rec("enrollment.request", "cam-1"))
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Pending);
    let head = store.audit_verify().await.unwrap().verified;
    store
        .enrollment_request_submit(submit("cam-1", "k1"), rec("enrollment.request", "cam-1"))
        .await
        .unwrap();
    assert_eq!(
        store.audit_verify().await.unwrap().verified,
        head,
        "a device asking again with the same key adds no audit entry"
    );
    let grant_issue = |d: &'static str, serial: &'static str| {
        let store = store.clone();
        async move {
            store
                .certificate_record_issue(
                    &tenant(),
                    &dev(d),
                    EnrollmentGrant::Approval,
                    identity_fixtures::cert(serial, d, far),
                    rec("certificate.issue", d),
                )
                .await
                .map(|issued| issued.certificate)
        }
    };
    refused(grant_issue("cam-1", "a1").await, "not approved");
    let approved = store
        .enrollment_request_decide(
            &tenant(),
            &dev("cam-1"),
            true,
            &alice,
            rec("enrollment.approve", "cam-1"),
        )
        .await
        .unwrap();
    assert_eq!(approved.status, RequestStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("alice"));
    refused(
        store
            .enrollment_request_decide(
                &tenant(),
                &dev("cam-1"),
                false,
                &alice,
                rec("enrollment.reject", "cam-1"),
            )
            .await,
        "not pending",
    );
    grant_issue("cam-1", "a2").await.unwrap();
    let after = store
        .enrollment_request_get(&tenant(), &dev("cam-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.status, after.serial.as_deref()),
        (RequestStatus::Issued, Some("a2"))
    );

    store
        .enrollment_request_submit(submit("cam-2", "k2"), rec("enrollment.request", "cam-2"))
        .await
        .unwrap();
    store
        .enrollment_request_decide(
            &tenant(),
            &dev("cam-2"),
            false,
            &alice,
            rec("enrollment.reject", "cam-2"),
        )
        .await
        .unwrap();
    let again = store
        .enrollment_request_submit(submit("cam-2", "k2"), rec("enrollment.request", "cam-2"))
        .await
        .unwrap();
    assert_eq!(again.status, RequestStatus::Rejected, "a rejection sticks");

    let pre = store
        .enrollment_preauthorize(
            &tenant(),
            &dev("cam-3"),
            Some("k3".into()),
            &alice,
            rec("enrollment.preauthorize", "cam-3"),
        )
        .await
        .unwrap();
    assert_eq!(pre.status, RequestStatus::Approved);
    let seen = store
        .enrollment_request_submit(submit("cam-3", "k3"), rec("enrollment.request", "cam-3"))
        .await
        .unwrap();
    assert_eq!(seen.status, RequestStatus::Approved);
    assert_eq!(seen.public_key_sha256.as_deref(), Some("k3"));
    grant_issue("cam-3", "a3").await.unwrap();
    assert_eq!(
        store
            .enrollment_requests_count(&tenant(), RequestStatus::Rejected)
            .await
            .unwrap(),
        1
    );
    let pending = store
        .enrollment_requests_list(
            &tenant(),
            Some(RequestStatus::Pending),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert!(pending.items.is_empty());
    let all = store
        .enrollment_requests_list(&tenant(), None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
}

both!(claims_quarantine_and_lookup);
async fn claims_quarantine_and_lookup(store: Arc<dyn Store>, _t: Tamper) {
    use garrison_core::device::{CertificateKind, RevocationReason};
    use garrison_store::identity::EnrollmentGrant;
    let alice = Username::new("alice").unwrap();
    let far = now_ms() + 86_400_000;
    let mut claim_cert = identity_fixtures::cert("c0", "factory-a", far);
    claim_cert.kind = CertificateKind::Claim;
    let claim = store
        .claim_create(
            &tenant(),
            "factory-a",
            1,
            &alice,
            claim_cert,
            rec("claim.create", "factory-a"),
        )
        .await
        .unwrap();
    assert_eq!((claim.uses, claim.max_uses), (0, 1));
    let by_claim = |d: &'static str, serial: &'static str| {
        let store = store.clone();
        async move {
            store
                .certificate_record_issue(
                    &tenant(),
                    &dev(d),
                    EnrollmentGrant::Claim {
                        serial: "c0".into(),
                    },
                    identity_fixtures::cert(serial, d, far),
                    rec("certificate.issue", d),
                )
                .await
                .map(|issued| issued.certificate)
        }
    };
    by_claim("plug-1", "p1").await.unwrap();
    refused(by_claim("plug-2", "p2").await, "used up");
    assert_eq!(store.claim_get("c0").await.unwrap().unwrap().uses, 1);
    assert_eq!(
        store
            .claims_list(&tenant(), &PageRequest::first(5))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        store
            .certificate_by_serial("c0")
            .await
            .unwrap()
            .unwrap()
            .kind,
        CertificateKind::Claim
    );

    let mut claim_cert = identity_fixtures::cert("c1", "factory-b", far);
    claim_cert.kind = CertificateKind::Claim;
    store
        .claim_create(
            &tenant(),
            "factory-b",
            10,
            &alice,
            claim_cert,
            rec("claim.create", "factory-b"),
        )
        .await
        .unwrap();
    store
        .certificate_revoke(
            &tenant(),
            "c1",
            RevocationReason::PrivilegeWithdrawn,
            rec("certificate.revoke", "c1"),
        )
        .await
        .unwrap();
    let revoked_claim = store
        .certificate_record_issue(
            &tenant(),
            &dev("plug-3"),
            EnrollmentGrant::Claim {
                serial: "c1".into(),
            },
            identity_fixtures::cert("p3", "plug-3", far),
            rec("certificate.issue", "plug-3"),
        )
        .await;
    refused(revoked_claim, "revoked");

    let q = store
        .device_set_quarantined(
            &tenant(),
            &dev("plug-1"),
            true,
            rec("device.quarantine", "plug-1"),
        )
        .await
        .unwrap();
    assert!(q.quarantined);
    assert_eq!(
        store.devices_quarantined().await.unwrap(),
        vec![(tenant(), dev("plug-1"))]
    );
    assert!(matches!(
        store
            .device_set_quarantined(
                &tenant(),
                &dev("ghost"),
                true,
                rec("device.quarantine", "ghost")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // What another replica polls for: the revoked claim and the quarantined device, each
    // with the instant it changed; nothing once the watermark has passed them.
    let changes = store.identity_changes_since(0).await.unwrap();
    assert_eq!(
        changes
            .revoked
            .iter()
            .map(|(serial, subject, _)| (serial.as_str(), subject.as_str()))
            .collect::<Vec<_>>(),
        vec![("c1", "factory-b")]
    );
    assert!(
        changes
            .devices
            .iter()
            .any(|(d, q, _)| *d == dev("plug-1") && *q)
    );
    let latest = changes
        .revoked
        .iter()
        .map(|c| c.2)
        .chain(changes.devices.iter().map(|c| c.2))
        .max()
        .unwrap();
    assert!(latest <= now_ms());
    let after = store.identity_changes_since(latest).await.unwrap();
    assert!(
        after.revoked.is_empty() && after.devices.is_empty(),
        "{after:?}"
    );
    let listed = store
        .devices_list(&tenant(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

both!(a_batch_of_issuances_commits_together_and_refuses_item_by_item);
async fn a_batch_of_issuances_commits_together_and_refuses_item_by_item(
    store: Arc<dyn Store>,
    _t: Tamper,
) {
    use garrison_store::identity::{EnrollmentGrant, IssueRequest, NewBootstrapToken};
    let far = now_ms() + 86_400_000;
    store
        .bootstrap_token_create(
            NewBootstrapToken {
                id: "tb".into(),
                tenant: tenant(),
                device_pattern: "*".into(),
                secret_hash: "h".into(),
                max_uses: 2,
                expires_at: far,
                created_by: Username::new("alice").unwrap(),
                certificate_validity_ms: None,
            },
            rec("bootstrap_token.create", "tb"),
        )
        .await
        .unwrap();
    let item = |d: &str, serial: &str| IssueRequest {
        tenant: tenant(),
        device: dev(d),
        grant: EnrollmentGrant::Token { id: "tb".into() },
        cert: identity_fixtures::cert(serial, d, far),
        audit: rec("certificate.issue", d),
    };
    let before = store.audit_verify().await.unwrap().verified;
    let results = store
        .certificate_record_issue_batch(vec![
            item("b-1", "b1"),
            item("b-1", "b2"), // a second identity for b-1: refused
            item("b-2", "b3"),
            item("b-3", "b4"), // the token is used up by now: refused
        ])
        .await
        .unwrap();
    let outcome: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(outcome, [true, false, true, false], "{results:?}");
    assert!(matches!(results[1], Err(StoreError::Refused { .. })));
    let (token, _) = store.bootstrap_token_auth("tb").await.unwrap().unwrap();
    assert_eq!(token.uses, 2, "the batch spent exactly the uses it issued");
    assert!(
        store
            .certificate_get(&tenant(), "b2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .certificate_get(&tenant(), "b4")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .certificate_get(&tenant(), "b3")
            .await
            .unwrap()
            .is_some()
    );
    let verification = store.audit_verify().await.unwrap();
    assert!(verification.first_break.is_none());
    assert_eq!(
        verification.verified,
        before + 2,
        "one audit entry per issued certificate"
    );
}

both!(stale_statistics_are_refreshed);
async fn stale_statistics_are_refreshed(store: Arc<dyn Store>, tamper: Tamper) {
    for i in 0..300 {
        store
            .meta_put_if_absent(&format!("bulk-{i}"), "v")
            .await
            .unwrap();
    }
    if store.backend() == garrison_store::Backend::Sqlite {
        // `PRAGMA optimize` chooses for itself; it must simply succeed.
        assert_eq!(
            store.refresh_statistics().await.unwrap(),
            Vec::<String>::new()
        );
        return;
    }
    // Every pooled session must have published its row counts first: one that publishes after
    // the ANALYZE would make the table stale again, legitimately.
    tamper.await_insert_statistics("garrison_meta").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let analysed = store.refresh_statistics().await.unwrap();
        if analysed.iter().any(|t| t == "garrison_meta") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "garrison_meta never reported stale; analysed {analysed:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Once analysed, it is fresh: a second pass leaves it alone.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again = store.refresh_statistics().await.unwrap();
    assert!(
        !again.iter().any(|t| t == "garrison_meta"),
        "re-analysed: {again:?}"
    );
}

both!(issuances_recorded_together_decide_as_one_by_one);
async fn issuances_recorded_together_decide_as_one_by_one(store: Arc<dyn Store>, _t: Tamper) {
    use garrison_store::identity::{EnrollmentGrant, IssueRequest, NewBootstrapToken};
    let far = now_ms() + 86_400_000;
    for (id, expires_at) in [("tm", far), ("old", now_ms() - 1)] {
        store
            .bootstrap_token_create(
                NewBootstrapToken {
                    id: id.into(),
                    tenant: tenant(),
                    device_pattern: "*".into(),
                    secret_hash: "h".into(),
                    max_uses: 10,
                    expires_at,
                    created_by: Username::new("alice").unwrap(),
                    certificate_validity_ms: None,
                },
                rec("bootstrap_token.create", id),
            )
            .await
            .unwrap();
    }
    let item = |d: &str, serial: &str, grant: EnrollmentGrant| IssueRequest {
        tenant: tenant(),
        device: dev(d),
        grant,
        cert: identity_fixtures::cert(serial, d, far),
        audit: rec("certificate.issue", d),
    };
    let token = |id: &str| EnrollmentGrant::Token { id: id.into() };
    // m-1 already holds a valid certificate.
    store
        .certificate_record_issue_batch(vec![item("m-1", "m1", token("tm"))])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let before = store.audit_verify().await.unwrap().verified;
    let results = store
        .certificate_record_issue_batch(vec![
            item("m-2", "m2", token("tm")),
            item("m-1", "m3", token("tm")), // a second identity for m-1: refused
            item("m-4", "m4", token("old")), // an expired token: refused
            item("m-5", "m1", token("tm")), // a serial already taken: a conflict, alone
            item(
                "m-1",
                "m6",
                EnrollmentGrant::Renewal {
                    serial: "m1".into(),
                },
            ),
            item("m-7", "m7", token("tm")),
        ])
        .await
        .unwrap();
    let outcome: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(
        outcome,
        [true, false, false, false, true, true],
        "{results:?}"
    );
    refused(results[1].as_ref(), "already has a valid certificate");
    refused(results[2].as_ref(), "bootstrap token is expired");
    assert!(
        matches!(results[3], Err(StoreError::Conflict { .. })),
        "{:?}",
        results[3]
    );
    let issued = results[5].as_ref().unwrap();
    assert_eq!(
        (
            issued.certificate.serial.as_str(),
            issued.certificate.subject.as_str()
        ),
        ("m7", "m-7")
    );
    assert_eq!(issued.superseded, None);
    let (tm, _) = store.bootstrap_token_auth("tm").await.unwrap().unwrap();
    assert_eq!(tm.uses, 3, "m-1's first identity, m-2 and m-7");
    for (device, serial) in [("m-2", "m2"), ("m-7", "m7"), ("m-1", "m6")] {
        let d = store
            .device_get(&tenant(), &dev(device))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.current_serial.as_deref(), Some(serial));
    }
    assert!(
        store
            .device_get(&tenant(), &dev("m-5"))
            .await
            .unwrap()
            .is_none()
    );
    let verification = store.audit_verify().await.unwrap();
    assert!(verification.first_break.is_none());
    assert_eq!(verification.verified, before + 3);
    // The audit entries say what each issuance was, in the batch's order for the tokens.
    let entries = store
        .audit_list(&tenant(), &PageRequest::first(3))
        .await
        .unwrap()
        .items;
    let after: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::from_str(e.after.as_deref().unwrap()).unwrap())
        .collect();
    let said: Vec<(&str, &str)> = after
        .iter()
        .map(|a| {
            (
                a["serial"].as_str().unwrap(),
                a["enrolled_via"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(said, [("m7", "token"), ("m2", "token"), ("m6", "renewal")]);

    // The same refusals when nothing makes the batch fall back to one by one.
    let results = store
        .certificate_record_issue_batch(vec![
            item("m-2", "m8", token("tm")),
            item("m-9", "m9", token("old")),
            item("m-10", "m10", token("tm")),
        ])
        .await
        .unwrap();
    refused(results[0].as_ref(), "already has a valid certificate");
    refused(results[1].as_ref(), "bootstrap token is expired");
    assert!(results[2].is_ok(), "{results:?}");
    let (tm, _) = store.bootstrap_token_auth("tm").await.unwrap().unwrap();
    assert_eq!(tm.uses, 4);
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}
