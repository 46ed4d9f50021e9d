//! The monitoring half of the store suite, on both backends: alerts deduplicated while open,
//! their lifecycle and notes, and response actions recorded once, decided once, and expiring.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

#[macro_use]
mod common;
use common::*;

use garrison_core::{
    DeviceId, Severity,
    audit::{Actor, AuditRecord},
};
use garrison_store::{
    PageRequest, Store, StoreError,
    monitor::{
        AlertFilter, AlertStatus, IntelSource, NewAlert, NewResponse, ResponseChange,
        ResponseFilter, ResponseStatus,
    },
};
use serde_json::json;

fn alert(key: &str, device: &str, severity: Severity, at: i64) -> NewAlert {
    NewAlert {
        tenant: tenant(),
        dedup_key: key.into(),
        rule_id: key.split('|').next().unwrap().into(),
        title: format!("rule {key}"),
        severity,
        device: Some(DeviceId::new(device).unwrap()),
        techniques: vec!["T1110.001".into()],
        tags: vec!["attack.credential-access".into()],
        at,
        evidence: json!({"at": at}),
    }
}

async fn actions(store: &Arc<dyn Store>) -> Vec<String> {
    let page = store
        .audit_list(&tenant(), &PageRequest::first(500))
        .await
        .unwrap();
    page.items.into_iter().rev().map(|e| e.action).collect()
}

both!(alerts_deduplicate_while_open);
async fn alerts_deduplicate_while_open(store: Arc<dyn Store>, _t: Tamper) {
    let raised = store
        .alerts_raise(&[
            alert("brute|cam-1", "cam-1", Severity::Medium, 1_000),
            alert("brute|cam-1", "cam-1", Severity::High, 3_000),
            alert("brute|cam-2", "cam-2", Severity::Low, 2_000),
            alert("brute|cam-1", "cam-1", Severity::Low, 2_000),
        ])
        .await
        .unwrap();
    assert_eq!(
        raised.iter().map(|r| r.opened).collect::<Vec<_>>(),
        [true, false, true, false]
    );
    let first = &raised[3].alert;
    assert_eq!(first.id, raised[0].alert.id);
    assert_eq!(first.occurrences, 3);
    assert_eq!(
        first.severity,
        Severity::High,
        "the highest occurrence wins"
    );
    assert_eq!((first.first_seen, first.last_seen), (1_000, 3_000));
    assert_eq!(first.evidence, json!({"at": 2_000}), "latest evidence kept");
    assert_eq!(first.status, AlertStatus::New);
    // Only openings are audited.
    let audited = actions(&store).await;
    assert_eq!(audited.iter().filter(|a| *a == "alert.open").count(), 2);

    let open = store
        .alerts_list(
            &tenant(),
            &AlertFilter {
                open: true,
                min_severity: Some(Severity::Medium),
                ..AlertFilter::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].device.as_ref().unwrap().as_str(), "cam-1");
    // Newest first, paginated.
    let page1 = store
        .alerts_list(&tenant(), &AlertFilter::default(), &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(page1.items[0].id, raised[2].alert.id);
    let page2 = store
        .alerts_list(
            &tenant(),
            &AlertFilter::default(),
            &PageRequest {
                limit: 1,
                after: page1.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(page2.items[0].id, raised[0].alert.id);
    assert!(page2.next.is_none());
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

both!(alert_lifecycle_and_notes);
async fn alert_lifecycle_and_notes(store: Arc<dyn Store>, _t: Tamper) {
    let id = store
        .alerts_raise(&[alert("scan|cam-1", "cam-1", Severity::High, 1)])
        .await
        .unwrap()[0]
        .alert
        .id
        .clone();
    let audit = |action: &str| AuditRecord::new(&tenant(), Actor::operator("ann"), action, &id);
    let err = store
        .alert_update(&tenant(), &id, None, "", "ann", audit("alert.update"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused { .. }), "{err}");
    let acked = store
        .alert_update(
            &tenant(),
            &id,
            Some(AlertStatus::Acknowledged),
            "looking",
            "ann",
            audit("alert.update"),
        )
        .await
        .unwrap();
    assert_eq!(acked.status, AlertStatus::Acknowledged);
    // Still open: occurrences join it.
    let again = store
        .alerts_raise(&[alert("scan|cam-1", "cam-1", Severity::High, 2)])
        .await
        .unwrap();
    assert!(!again[0].opened);
    assert_eq!(again[0].alert.status, AlertStatus::Acknowledged);
    store
        .alert_update(
            &tenant(),
            &id,
            Some(AlertStatus::FalsePositive),
            "lab scanner",
            "ann",
            audit("alert.update"),
        )
        .await
        .unwrap();
    // Closed: the next occurrence opens a new alert.
    let fresh = store
        .alerts_raise(&[alert("scan|cam-1", "cam-1", Severity::High, 3)])
        .await
        .unwrap();
    assert!(fresh[0].opened);
    assert_ne!(fresh[0].alert.id, id);
    // …so the old one cannot be reopened beside it.
    let err = store
        .alert_update(
            &tenant(),
            &id,
            Some(AlertStatus::New),
            "",
            "ann",
            audit("alert.update"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&fresh[0].alert.id), "{err}");
    let notes = store.alert_notes(&tenant(), &id).await.unwrap();
    assert_eq!(
        notes
            .iter()
            .map(|n| (n.from_status, n.to_status, n.note.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                Some(AlertStatus::New),
                Some(AlertStatus::Acknowledged),
                "looking"
            ),
            (
                Some(AlertStatus::Acknowledged),
                Some(AlertStatus::FalsePositive),
                "lab scanner"
            ),
        ]
    );
    let err = store
        .alert_update(
            &tenant(),
            "nope",
            Some(AlertStatus::Resolved),
            "",
            "ann",
            audit("alert.update"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
}

both!(responses_act_once_and_expire);
async fn responses_act_once_and_expire(store: Arc<dyn Store>, _t: Tamper) {
    let alert_id = store
        .alerts_raise(&[alert("mirai|cam-1", "cam-1", Severity::Critical, 1)])
        .await
        .unwrap()[0]
        .alert
        .id
        .clone();
    let new = NewResponse {
        tenant: tenant(),
        alert_id: alert_id.clone(),
        playbook: "contain-mirai".into(),
        action: "quarantine".into(),
        device: Some(DeviceId::new("cam-1").unwrap()),
        params: json!({"expires": "1h"}),
        status: ResponseStatus::Executed,
        detail: "quarantined".into(),
        expires_at: Some(5_000),
    };
    let record = || {
        AuditRecord::new(
            &tenant(),
            Actor::system("monitor"),
            "response.quarantine",
            "device:cam-1",
        )
    };
    let created = store
        .response_create(&new, record())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.status, ResponseStatus::Executed);
    assert!(
        store
            .response_create(&new, record())
            .await
            .unwrap()
            .is_none(),
        "one action per alert, playbook and action"
    );
    let pending = store
        .response_create(
            &NewResponse {
                action: "revoke".into(),
                status: ResponseStatus::PendingApproval,
                expires_at: None,
                ..new.clone()
            },
            record(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .responses_expired(&tenant(), 4_999)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.responses_expired(&tenant(), 5_000).await.unwrap();
    assert_eq!(
        due.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [created.id.as_str()]
    );
    let enforced = store
        .response_update(
            &tenant(),
            &created.id,
            &ResponseChange {
                status: None,
                detail: None,
                decided_by: None,
                enforced_at: Some(4_000),
                expires_at: None,
                expect: None,
            },
            record(),
        )
        .await
        .unwrap();
    assert_eq!(enforced.enforced_at, Some(4_000));
    assert_eq!(enforced.status, ResponseStatus::Executed);
    let decide = |expect| ResponseChange {
        status: Some(ResponseStatus::Rejected),
        detail: Some("not this one".into()),
        decided_by: Some("ann".into()),
        enforced_at: None,
        expires_at: None,
        expect: Some(expect),
    };
    let rejected = store
        .response_update(
            &tenant(),
            &pending.id,
            &decide(ResponseStatus::PendingApproval),
            record(),
        )
        .await
        .unwrap();
    assert_eq!(rejected.status, ResponseStatus::Rejected);
    assert_eq!(rejected.decided_by.as_deref(), Some("ann"));
    // A second decision loses.
    let err = store
        .response_update(
            &tenant(),
            &pending.id,
            &decide(ResponseStatus::PendingApproval),
            record(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused { .. }), "{err}");
    let listed = store
        .responses_list(
            &tenant(),
            &ResponseFilter {
                alert: Some(alert_id),
                ..ResponseFilter::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(listed.items[0].id, pending.id, "newest first");
    let audited = actions(&store).await;
    let tail: Vec<&str> = audited
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "alert.open",
            "response.quarantine",
            "response.quarantine",
            "response.quarantine",
            "response.quarantine"
        ]
    );
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

both!(intel_sources_are_kept_replaced_and_removed);
async fn intel_sources_are_kept_replaced_and_removed(store: Arc<dyn Store>, _t: Tamper) {
    let audit = |action: &str, name: &str| {
        AuditRecord::new(
            &tenant(),
            Actor::operator("ann"),
            action,
            format!("intel:{name}"),
        )
    };
    let source = |name: &str, content: &str, indicators: i64| IntelSource {
        tenant: tenant(),
        name: name.into(),
        format: "list".into(),
        indicators,
        skipped: 1,
        content: content.into(),
        imported_at: 1_000,
        imported_by: "operator:ann".into(),
    };
    store
        .intel_source_put(
            &source("feodo", "198.51.100.23\n", 1),
            audit("intel.import", "feodo"),
        )
        .await
        .unwrap();
    store
        .intel_source_put(
            &source("abuse", "203.0.113.0/24\n", 1),
            audit("intel.import", "abuse"),
        )
        .await
        .unwrap();
    // A second import under the same name replaces the first.
    let replaced = source("feodo", "198.51.100.23\n198.51.100.24\n", 2);
    store
        .intel_source_put(&replaced, audit("intel.import", "feodo"))
        .await
        .unwrap();
    let all = store.intel_sources(&tenant(), true).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["abuse", "feodo"]
    );
    assert_eq!(all[1], replaced);
    let light = store.intel_sources(&tenant(), false).await.unwrap();
    assert_eq!((light[1].indicators, light[1].content.as_str()), (2, ""));

    assert!(
        store
            .intel_source_delete(&tenant(), "abuse", audit("intel.delete", "abuse"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .intel_source_delete(&tenant(), "abuse", audit("intel.delete", "abuse"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.intel_sources(&tenant(), false).await.unwrap().len(),
        1
    );
    // Every change is audited; the content is not copied into the audit log.
    let audited = actions(&store).await;
    assert_eq!(
        audited,
        [
            "intel.import",
            "intel.import",
            "intel.import",
            "intel.delete"
        ]
    );
    let page = store
        .audit_list(&tenant(), &PageRequest::first(10))
        .await
        .unwrap();
    let replace = &page.items[1];
    let json = |text: &Option<String>| -> serde_json::Value {
        serde_json::from_str(text.as_deref().unwrap()).unwrap()
    };
    assert_eq!(replace.action, "intel.import");
    assert_eq!(json(&replace.before)["indicators"], 1);
    assert_eq!(json(&replace.after)["indicators"], 2);
    assert!(!replace.after.as_deref().unwrap().contains("198.51"));
}

both!(monitor_state_is_replaced_whole_per_tenant_and_name);
async fn monitor_state_is_replaced_whole_per_tenant_and_name(store: Arc<dyn Store>, _t: Tamper) {
    let other = garrison_core::TenantId::new("other").unwrap();
    assert_eq!(
        store
            .monitor_state_get(&tenant(), "baselines")
            .await
            .unwrap(),
        None
    );
    // Binary state, including bytes that are not text and a NUL.
    let first: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    store
        .monitor_state_put(&tenant(), "baselines", &first, 1_000)
        .await
        .unwrap();
    store
        .monitor_state_put(&other, "baselines", b"\0other", 1_500)
        .await
        .unwrap();
    assert_eq!(
        store
            .monitor_state_get(&tenant(), "baselines")
            .await
            .unwrap(),
        Some((first, 1_000))
    );
    store
        .monitor_state_put(&tenant(), "baselines", b"second", 2_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .monitor_state_get(&tenant(), "baselines")
            .await
            .unwrap(),
        Some((b"second".to_vec(), 2_000))
    );
    assert_eq!(
        store.monitor_state_get(&other, "baselines").await.unwrap(),
        Some((b"\0other".to_vec(), 1_500))
    );
    assert_eq!(
        store.monitor_state_get(&tenant(), "other").await.unwrap(),
        None
    );
    // A slower, older save finishing late does not undo the newer one.
    store
        .monitor_state_put(&tenant(), "baselines", b"older", 1_500)
        .await
        .unwrap();
    assert_eq!(
        store
            .monitor_state_get(&tenant(), "baselines")
            .await
            .unwrap(),
        Some((b"second".to_vec(), 2_000))
    );
}
