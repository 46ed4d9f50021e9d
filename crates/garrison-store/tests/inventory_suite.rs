//! The inventory half of the store suite, on both backends: reports with history and drift,
//! presence, the fleet view, tags, groups, findings and their lifecycle, runs, policies,
//! events and unmanaged sightings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{collections::BTreeMap, sync::Arc};

#[macro_use]
mod common;
use common::*;

use garrison_contract::{Component, ComponentType, Hardware, Inventory, Sbom, Telemetry};
use garrison_core::{DeviceId, Impact, Severity, Username, now_ms};
use garrison_store::{
    PageRequest, Store, StoreError,
    identity::{EnrollmentGrant, NewBootstrapToken, NewCertificate},
    inventory::{
        DestinationSeen, DeviceSummary, FactChange, FindingFilter, FindingStatus, FindingsSync,
        Group, InventoryWrite, NewDeviceEvent, NewDrift, Observation, PostureRun, PresenceUpdate,
        Sighting, SightingKind, Suppression,
    },
};
use serde_json::json;

fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

/// Enrolls `ids` through a bootstrap token, as EST would.
async fn enroll(store: &Arc<dyn Store>, ids: &[&str]) {
    let far = now_ms() + 86_400_000;
    store
        .bootstrap_token_create(
            NewBootstrapToken {
                id: "tok".into(),
                tenant: tenant(),
                device_pattern: "*".into(),
                secret_hash: "h".into(),
                max_uses: 100,
                expires_at: far,
                created_by: Username::new("alice").unwrap(),
                certificate_validity_ms: None,
            },
            rec("bootstrap_token.create", "tok"),
        )
        .await
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        store
            .certificate_record_issue(
                &tenant(),
                &dev(id),
                EnrollmentGrant::Token { id: "tok".into() },
                NewCertificate {
                    serial: format!("{:02x}aa", i + 16),
                    kind: garrison_core::device::CertificateKind::Device,
                    subject: (*id).into(),
                    fingerprint: format!("FP{i}"),
                    pem: "pem".into(),
                    not_before: now_ms() - 1000,
                    not_after: far,
                },
                rec("certificate.issue", id),
            )
            .await
            .unwrap();
    }
}

fn report(model: &str, packages: &[(&str, &str)]) -> Inventory {
    Inventory {
        schema: 1,
        collected_at: 1_764_633_600_000,
        hardware: Hardware {
            model: Some(model.into()),
            ..Hardware::default()
        },
        software: Some(Sbom::new(
            packages
                .iter()
                .map(|(n, v)| Component {
                    component_type: ComponentType::Library,
                    name: (*n).into(),
                    version: Some((*v).into()),
                    purl: None,
                })
                .collect(),
        )),
        ..Inventory::default()
    }
}

both!(reports_history_and_drift);
async fn reports_history_and_drift(store: Arc<dyn Store>, _t: Tamper) {
    enroll(&store, &["cam-1", "cam-2"]).await;
    let summary = DeviceSummary {
        model: Some("cam-x".into()),
        tcp_ports: vec![23, 554],
        ..DeviceSummary::default()
    };
    let change = |fact: &str, at, before: Option<serde_json::Value>, after| FactChange {
        fact: fact.into(),
        at,
        before,
        after: Some(after),
    };
    store
        .inventory_record_batch(&[
            InventoryWrite {
                tenant: tenant(),
                device: dev("cam-1"),
                received_at: 1000,
                inventory: report("cam-x", &[("busybox", "1.31")]),
                summary: summary.clone(),
                changes: vec![change("hardware.model", 1000, None, json!("cam-x"))],
                drift: vec![],
            },
            InventoryWrite {
                tenant: tenant(),
                device: dev("cam-2"),
                received_at: 1001,
                inventory: report("cam-y", &[]),
                summary: DeviceSummary::default(),
                changes: vec![],
                drift: vec![],
            },
        ])
        .await
        .unwrap();
    store
        .inventory_record_batch(&[InventoryWrite {
            tenant: tenant(),
            device: dev("cam-1"),
            received_at: 2000,
            inventory: report("cam-x", &[("busybox", "1.36")]),
            summary: summary.clone(),
            changes: vec![
                change("firmware.version", 2000, Some(json!("2.1")), json!("2.0")),
                change("package:busybox", 2000, Some(json!("1.31")), json!("1.36")),
            ],
            drift: vec![NewDrift {
                kind: "firmware_downgrade".into(),
                fact: "firmware.version".into(),
                severity: Severity::High,
                before: Some(json!("2.1")),
                after: Some(json!("2.0")),
                detail: "firmware.version went down from 2.1 to 2.0".into(),
            }],
        }])
        .await
        .unwrap();

    let with = store
        .inventory_get(&tenant(), &dev("cam-1"), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(with.received_at, 2000);
    assert_eq!(with.summary, summary);
    assert_eq!(
        with.inventory.software.unwrap().components[0]
            .version
            .as_deref(),
        Some("1.36")
    );
    let without = store
        .inventory_get(&tenant(), &dev("cam-1"), false)
        .await
        .unwrap()
        .unwrap();
    assert!(
        without.inventory.software.is_none(),
        "the SBOM is loaded only on request"
    );
    assert!(
        store
            .inventory_get(&tenant(), &dev("nobody"), true)
            .await
            .unwrap()
            .is_none()
    );

    let page = store
        .fact_history(&tenant(), &dev("cam-1"), None, &PageRequest::first(2))
        .await
        .unwrap();
    let facts: Vec<&str> = page.items.iter().map(|c| c.fact.as_str()).collect();
    assert_eq!(
        facts,
        ["package:busybox", "firmware.version"],
        "newest first"
    );
    let rest = store
        .fact_history(
            &tenant(),
            &dev("cam-1"),
            None,
            &PageRequest {
                limit: 2,
                after: page.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].before, None);
    assert!(rest.next.is_none());
    let only = store
        .fact_history(
            &tenant(),
            &dev("cam-1"),
            Some("firmware.version"),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(only.items.len(), 1);

    let drift = store
        .drift_list(&tenant(), None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(drift.items.len(), 1);
    assert_eq!(drift.items[0].drift.kind, "firmware_downgrade");
    assert_eq!(drift.items[0].drift.severity, Severity::High);
    assert!(
        store
            .drift_list(&tenant(), Some(&dev("cam-2")), &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let page = store.inventories_page(&tenant(), None, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].device.as_str(), "cam-1");
    assert!(page[0].inventory.software.is_none());
    let page = store
        .inventories_page(&tenant(), Some(&dev("cam-1")), 10)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|s| s.device.as_str()).collect::<Vec<_>>(),
        ["cam-2"]
    );
}

both!(telemetry_destinations_are_kept_per_device_and_address);
async fn telemetry_destinations_are_kept_per_device_and_address(store: Arc<dyn Store>, _t: Tamper) {
    enroll(&store, &["a-1", "b-1"]).await;
    let update = |device: &str, at, addresses: &[(&str, i64, i64, u64)]| PresenceUpdate {
        tenant: tenant(),
        device: dev(device),
        at,
        online: None,
        address: None,
        agent: None,
        telemetry: None,
        destinations: addresses
            .iter()
            .map(|(a, first_seen, last_seen, reports)| {
                (
                    (*a).to_owned(),
                    DestinationSeen {
                        first_seen: *first_seen,
                        last_seen: *last_seen,
                        reports: *reports,
                    },
                )
            })
            .collect(),
    };
    store
        .presence_record_batch(&[
            update(
                "a-1",
                200,
                &[("198.51.100.7", 100, 200, 2), ("10.0.0.9", 150, 150, 1)],
            ),
            update("b-1", 120, &[("198.51.100.7", 120, 120, 1)]),
        ])
        .await
        .unwrap();
    // A later flush, and one that arrives late: first_seen only goes back, last_seen only
    // forward, and every report counts.
    store
        .presence_record_batch(&[
            update("a-1", 900, &[("198.51.100.7", 800, 900, 3)]),
            update("a-1", 90, &[("198.51.100.7", 50, 90, 1)]),
        ])
        .await
        .unwrap();

    let mut all = Vec::new();
    let mut page = PageRequest::first(1);
    loop {
        let got = store
            .device_destinations_list(&tenant(), None, 0, &page)
            .await
            .unwrap();
        assert!(got.items.len() <= 1);
        all.extend(got.items);
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let rows: Vec<(&str, &str, i64, i64, u64)> = all
        .iter()
        .map(|d| {
            (
                d.device.as_str(),
                d.address.as_str(),
                d.seen.first_seen,
                d.seen.last_seen,
                d.seen.reports,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("a-1", "10.0.0.9", 150, 150, 1),
            ("a-1", "198.51.100.7", 50, 900, 6),
            ("b-1", "198.51.100.7", 120, 120, 1),
        ]
    );
    // Only rows last seen since the hunt's lookback.
    let recent = store
        .device_destinations_list(&tenant(), None, 151, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(recent.items.len(), 1);
    assert_eq!(recent.items[0].address, "198.51.100.7");
    assert!(
        store
            .device_destinations_list(
                &tenant(),
                None,
                0,
                &PageRequest {
                    limit: 10,
                    after: Some("no-separator".into()),
                }
            )
            .await
            .is_err(),
        "a malformed cursor is refused"
    );
    let one = store
        .device_destinations_list(&tenant(), Some(&dev("b-1")), 0, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].device.as_str(), "b-1");
    // Retention removes what was last seen before the cut.
    store.inventory_prune(&tenant(), 151).await.unwrap();
    let kept = store
        .device_destinations_list(&tenant(), None, 0, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(kept.items.len(), 1);
    assert_eq!(kept.items[0].seen.last_seen, 900);
}

both!(presence_tags_groups_and_the_fleet);
async fn presence_tags_groups_and_the_fleet(store: Arc<dyn Store>, _t: Tamper) {
    enroll(&store, &["a-1", "b-1"]).await;
    let seen = |device: &str, at, online| PresenceUpdate {
        tenant: tenant(),
        device: dev(device),
        at,
        online,
        address: online.filter(|o| *o).map(|_| "10.0.0.1".to_owned()),
        agent: None,
        telemetry: None,
        destinations: BTreeMap::new(),
    };
    store
        .presence_record_batch(&[seen("a-1", 100, Some(true))])
        .await
        .unwrap();
    let telemetry = Telemetry {
        schema: 1,
        at: 1_764_633_600_000,
        interval_ms: 60_000,
        bytes_in: Some(5),
        ..Telemetry::default()
    };
    store
        .presence_record_batch(&[
            PresenceUpdate {
                telemetry: Some(telemetry.clone()),
                agent: Some(("garrison-agent".into(), "0.1.0".into())),
                ..seen("a-1", 300, None)
            },
            // Out of order: last_seen must not go back.
            seen("a-1", 200, None),
        ])
        .await
        .unwrap();

    let tags = store
        .device_tags_update(
            &tenant(),
            &dev("a-1"),
            BTreeMap::from([
                ("site".into(), "berlin".into()),
                ("floor".into(), "2".into()),
            ]),
            vec![],
            rec("device.tags", "a-1"),
        )
        .await
        .unwrap();
    assert_eq!(tags.len(), 2);
    let tags = store
        .device_tags_update(
            &tenant(),
            &dev("a-1"),
            BTreeMap::new(),
            vec!["floor".into()],
            rec("device.tags", "a-1"),
        )
        .await
        .unwrap();
    assert_eq!(tags, BTreeMap::from([("site".into(), "berlin".into())]));
    assert!(matches!(
        store
            .device_tags_update(
                &tenant(),
                &dev("ghost"),
                BTreeMap::new(),
                vec![],
                rec("device.tags", "ghost")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let group = |name: &str, query: Option<&str>| Group {
        tenant: tenant(),
        name: name.into(),
        description: "d".into(),
        query: query.map(str::to_owned),
        impact: Some(Impact::High),
        allowed_services: Some(vec!["tcp/443".into()]),
        created_by: "alice".into(),
        created_at: 1,
        updated_at: 1,
    };
    store
        .group_create(group("lab", None), rec("group.create", "lab"))
        .await
        .unwrap();
    store
        .group_create(
            group("cams", Some("model = cam-x")),
            rec("group.create", "cams"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .group_create(group("lab", None), rec("group.create", "lab"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .group_members_change(
                &tenant(),
                "lab",
                vec![dev("a-1"), dev("b-1")],
                true,
                rec("group.members", "lab")
            )
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .group_members_change(
                &tenant(),
                "lab",
                vec![dev("a-1")],
                true,
                rec("group.members", "lab")
            )
            .await
            .unwrap(),
        0,
        "already a member"
    );
    assert!(matches!(
        store
            .group_members_change(&tenant(), "cams", vec![dev("a-1")], true, rec("g", "cams"))
            .await,
        Err(StoreError::Refused { .. })
    ));
    assert!(matches!(
        store
            .group_members_change(&tenant(), "lab", vec![dev("ghost")], true, rec("g", "lab"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let mut updated = group("cams", Some("model = cam-y"));
    updated.impact = None;
    updated.updated_at = 5;
    let updated = store
        .group_update(updated, rec("group.update", "cams"))
        .await
        .unwrap();
    assert_eq!(updated.query.as_deref(), Some("model = cam-y"));
    assert_eq!(updated.impact, None);
    assert_eq!(updated.created_at, 1);
    assert!(matches!(
        store
            .group_update(group("cams", None), rec("group.update", "cams"))
            .await,
        Err(StoreError::Refused { .. })
    ));

    let fleet = store.fleet_entries(&tenant()).await.unwrap();
    assert_eq!(fleet.len(), 2);
    let a = &fleet[0];
    assert_eq!(a.device.id.as_str(), "a-1");
    let p = a.presence.as_ref().unwrap();
    assert_eq!((p.first_seen, p.last_seen, p.online), (100, 300, true));
    assert_eq!(p.last_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(p.agent.as_deref(), Some("garrison-agent"));
    assert_eq!(p.telemetry.as_ref(), Some(&telemetry));
    assert_eq!(a.tags.get("site").map(String::as_str), Some("berlin"));
    assert_eq!(a.groups, ["lab"]);
    assert!(fleet[1].presence.is_none() && fleet[1].summary.is_none());

    store
        .presence_record_batch(&[seen("a-1", 400, Some(false))])
        .await
        .unwrap();
    let fleet = store.fleet_entries(&tenant()).await.unwrap();
    let p = fleet[0].presence.as_ref().unwrap();
    assert!(!p.online);
    assert_eq!(
        p.last_address.as_deref(),
        Some("10.0.0.1"),
        "kept when not reported"
    );

    store
        .group_delete(&tenant(), "lab", rec("group.delete", "lab"))
        .await
        .unwrap();
    assert!(
        store.fleet_entries(&tenant()).await.unwrap()[0]
            .groups
            .is_empty()
    );
    assert_eq!(store.groups_list(&tenant()).await.unwrap().len(), 1);
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

fn observe(check: &str, device: &str, severity: Severity) -> Observation {
    Observation {
        check: check.into(),
        subject: device.into(),
        device: Some(dev(device)),
        severity,
        evidence: json!({"seen": check}),
    }
}

both!(findings_open_resolve_reopen_and_suppress);
async fn findings_open_resolve_reopen_and_suppress(store: Arc<dyn Store>, _t: Tamper) {
    let checks = vec!["telnet".to_owned(), "ssh".to_owned()];
    let sync =
        |observations: Vec<Observation>, at: i64, devices: Option<Vec<DeviceId>>| FindingsSync {
            tenant: tenant(),
            checks: checks.clone(),
            devices,
            observations,
            at,
        };
    let d = store
        .findings_sync(sync(
            vec![
                observe("telnet", "a-1", Severity::High),
                observe("ssh", "a-1", Severity::Medium),
                observe("telnet", "b-1", Severity::High),
            ],
            100,
            None,
        ))
        .await
        .unwrap();
    assert_eq!((d.opened, d.resolved, d.still_open), (3, 0, 0));

    // b-1 fixed telnet; a-1 still fails both.
    let d = store
        .findings_sync(sync(
            vec![
                observe("telnet", "a-1", Severity::High),
                observe("ssh", "a-1", Severity::Medium),
            ],
            200,
            None,
        ))
        .await
        .unwrap();
    assert_eq!((d.opened, d.resolved, d.still_open), (0, 1, 2));
    let open = FindingFilter {
        status: Some(FindingStatus::Open),
        ..FindingFilter::default()
    };
    let list = store
        .findings_list(&tenant(), &open, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(
        list.items
            .iter()
            .all(|f| f.first_seen == 100 && f.last_seen == 200)
    );

    // A device-scoped sync of b-1 leaves a-1's findings alone; telnet on b-1 comes back.
    let d = store
        .findings_sync(sync(
            vec![observe("telnet", "b-1", Severity::High)],
            300,
            Some(vec![dev("b-1")]),
        ))
        .await
        .unwrap();
    assert_eq!((d.opened, d.reopened, d.resolved), (0, 1, 0));
    let b = store
        .findings_list(
            &tenant(),
            &FindingFilter {
                device: Some(dev("b-1")),
                ..FindingFilter::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(b.items.len(), 1);
    assert_eq!(
        (
            b.items[0].status,
            b.items[0].reopened,
            b.items[0].resolved_at
        ),
        (FindingStatus::Open, 1, None)
    );

    // Suppress a-1's ssh finding until t=1000.
    let ssh = store
        .findings_list(
            &tenant(),
            &FindingFilter {
                check: Some("ssh".into()),
                ..FindingFilter::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    let suppressed = store
        .finding_suppress(
            &tenant(),
            &ssh.id,
            Some(Suppression {
                reason: "lab device".into(),
                by: "alice".into(),
                at: 350,
                until: Some(1000),
            }),
            rec("finding.suppress", &ssh.id),
        )
        .await
        .unwrap();
    assert_eq!(suppressed.status, FindingStatus::Suppressed);
    let all = vec![
        observe("telnet", "a-1", Severity::High),
        observe("ssh", "a-1", Severity::Medium),
        observe("telnet", "b-1", Severity::High),
    ];
    let d = store
        .findings_sync(sync(all.clone(), 400, None))
        .await
        .unwrap();
    assert_eq!(d.unsuppressed, 0);
    assert_eq!(
        store
            .finding_get(&tenant(), &ssh.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        FindingStatus::Suppressed,
        "still within the suppression"
    );
    let by_device = store.findings_open_by_device(&tenant()).await.unwrap();
    assert_eq!(by_device.len(), 2);
    assert_eq!(
        by_device[0].1,
        [("telnet".to_owned(), Severity::High)],
        "suppressed ones do not count"
    );
    let d = store.findings_sync(sync(all, 1500, None)).await.unwrap();
    assert_eq!(d.unsuppressed, 1, "the suppression lapsed");
    assert_eq!(
        store
            .finding_get(&tenant(), &ssh.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        FindingStatus::Open
    );

    // Lifting a suppression that is not there, or suppressing a resolved finding, is refused.
    assert!(matches!(
        store
            .finding_suppress(&tenant(), &ssh.id, None, rec("finding.unsuppress", "x"))
            .await,
        Err(StoreError::Refused { .. })
    ));
    store.findings_sync(sync(vec![], 2000, None)).await.unwrap();
    assert!(matches!(
        store
            .finding_suppress(
                &tenant(),
                &ssh.id,
                Some(Suppression {
                    reason: "r".into(),
                    by: "a".into(),
                    at: 1,
                    until: None
                }),
                rec("finding.suppress", "x"),
            )
            .await,
        Err(StoreError::Refused { .. })
    ));
    let severe = FindingFilter {
        min_severity: Some(Severity::High),
        ..FindingFilter::default()
    };
    assert_eq!(
        store
            .findings_list(&tenant(), &severe, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

both!(runs_policies_events_and_sightings);
async fn runs_policies_events_and_sightings(store: Arc<dyn Store>, _t: Tamper) {
    for (i, id) in [
        "0190aaaa-0000-7000-8000-000000000001",
        "0190aaaa-0000-7000-8000-000000000002",
    ]
    .iter()
    .enumerate()
    {
        store
            .posture_run_record(
                PostureRun {
                    id: (*id).into(),
                    tenant: tenant(),
                    trigger: "schedule".into(),
                    started_at: i as i64,
                    finished_at: 10,
                    devices: 5,
                    checks: 18,
                    opened: 2,
                    resolved: 1,
                    open: 7,
                },
                (i == 1).then(|| rec("posture.run", "posture")),
            )
            .await
            .unwrap();
    }
    let runs = store
        .posture_runs_list(&tenant(), &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(
        runs.items[0].id, "0190aaaa-0000-7000-8000-000000000002",
        "newest first"
    );
    let older = store
        .posture_runs_list(
            &tenant(),
            &PageRequest {
                limit: 1,
                after: runs.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(older.items[0].devices, 5);

    let set = store
        .firmware_policy_set(
            &tenant(),
            "cam-x",
            Some("2.1"),
            "alice",
            rec("policy.set", "cam-x"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.minimum_version, "2.1");
    store
        .firmware_policy_set(
            &tenant(),
            "cam-x",
            Some("2.2"),
            "bob",
            rec("policy.set", "cam-x"),
        )
        .await
        .unwrap();
    let policies = store.firmware_policies(&tenant()).await.unwrap();
    assert_eq!(
        (
            policies.len(),
            policies[0].minimum_version.as_str(),
            policies[0].updated_by.as_str()
        ),
        (1, "2.2", "bob")
    );
    assert!(
        store
            .firmware_policy_set(
                &tenant(),
                "cam-x",
                None,
                "bob",
                rec("policy.delete", "cam-x")
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .firmware_policy_set(
                &tenant(),
                "cam-x",
                None,
                "bob",
                rec("policy.delete", "cam-x")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let event = |device: &str, kind: &str, at| NewDeviceEvent {
        tenant: tenant(),
        device: dev(device),
        received_at: at,
        at,
        kind: kind.into(),
        body: json!({"kind": kind}),
    };
    store
        .device_events_append(&[
            event("a-1", "login_failed", 1),
            event("b-1", "file_changed", 2),
            event("a-1", "login_succeeded", 3),
        ])
        .await
        .unwrap();
    let a = store
        .device_events_list(&tenant(), Some(&dev("a-1")), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        a.items
            .iter()
            .map(|e| e.event.kind.as_str())
            .collect::<Vec<_>>(),
        ["login_succeeded", "login_failed"]
    );
    assert_eq!(
        store
            .device_events_list(&tenant(), None, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    let sight = |identity: &str, address: &str, at| Sighting {
        tenant: tenant(),
        kind: SightingKind::BrokerConnect,
        identity: identity.into(),
        address: address.into(),
        at,
        detail: format!("refused at {at}"),
    };
    store
        .unmanaged_record_batch(&[
            sight("rogue", "10.1.1.1", 5),
            sight("rogue", "10.1.1.1", 9),
            sight("other", "10.1.1.2", 7),
        ])
        .await
        .unwrap();
    let list = store
        .unmanaged_list(&tenant(), &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(
        (
            list.items[0].identity.as_str(),
            list.items[0].count,
            list.items[0].first_seen,
            list.items[0].last_seen
        ),
        ("rogue", 2, 5, 9)
    );
    let next = store
        .unmanaged_list(
            &tenant(),
            &PageRequest {
                limit: 1,
                after: list.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(next.items[0].identity, "other");
    assert!(next.next.is_none());
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

both!(findings_merge_duplicates_and_resolution_ends_a_suppression);
async fn findings_merge_duplicates_and_resolution_ends_a_suppression(
    store: Arc<dyn Store>,
    _t: Tamper,
) {
    let sync = |observations: Vec<Observation>, at: i64| FindingsSync {
        tenant: tenant(),
        checks: vec!["telnet".into()],
        devices: Some(vec![dev("a-1")]),
        observations,
        at,
    };
    // A device evaluated twice in one batch: one finding, the worse severity.
    let d = store
        .findings_sync(sync(
            vec![
                observe("telnet", "a-1", Severity::Medium),
                observe("telnet", "a-1", Severity::High),
            ],
            10,
        ))
        .await
        .unwrap();
    assert_eq!(d.opened, 1);
    let all = store
        .findings_list(
            &tenant(),
            &FindingFilter::default(),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);
    assert_eq!(all.items[0].severity, Severity::High);
    let id = all.items[0].id.clone();
    store
        .finding_suppress(
            &tenant(),
            &id,
            Some(Suppression {
                reason: "accepted".into(),
                by: "alice".into(),
                at: 11,
                until: None,
            }),
            rec("finding.suppress", &id),
        )
        .await
        .unwrap();
    // Fixed, then broken again: the comeback is new risk, not the accepted one.
    store.findings_sync(sync(vec![], 20)).await.unwrap();
    let resolved = store.finding_get(&tenant(), &id).await.unwrap().unwrap();
    assert_eq!(
        (resolved.status, resolved.suppression),
        (FindingStatus::Resolved, None)
    );
    let d = store
        .findings_sync(sync(vec![observe("telnet", "a-1", Severity::High)], 30))
        .await
        .unwrap();
    assert_eq!((d.opened, d.reopened), (0, 1));
    let back = store.finding_get(&tenant(), &id).await.unwrap().unwrap();
    assert_eq!(
        (back.status, back.reopened, back.last_seen, back.first_seen),
        (FindingStatus::Open, 1, 30, 10)
    );
    // Seen again unchanged: only last_seen moves.
    let d = store
        .findings_sync(sync(vec![observe("telnet", "a-1", Severity::High)], 40))
        .await
        .unwrap();
    assert_eq!(
        (d.opened, d.reopened, d.still_open, d.resolved),
        (0, 0, 1, 0)
    );
    assert_eq!(
        store
            .finding_get(&tenant(), &id)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        40
    );
}

both!(history_past_its_retention_is_pruned);
async fn history_past_its_retention_is_pruned(store: Arc<dyn Store>, _t: Tamper) {
    enroll(&store, &["old-1"]).await;
    let write = |at: i64| InventoryWrite {
        tenant: tenant(),
        device: dev("old-1"),
        received_at: at,
        inventory: report("cam-x", &[]),
        summary: DeviceSummary::default(),
        changes: vec![FactChange {
            fact: "hardware.model".into(),
            at,
            before: None,
            after: Some(json!(at)),
        }],
        drift: vec![NewDrift {
            kind: "k".into(),
            fact: "f".into(),
            severity: Severity::Low,
            before: None,
            after: None,
            detail: "d".into(),
        }],
    };
    store.inventory_record_batch(&[write(100)]).await.unwrap();
    store.inventory_record_batch(&[write(5000)]).await.unwrap();
    assert_eq!(
        store.inventory_prune(&tenant(), 1000).await.unwrap(),
        2,
        "one history row, one drift event"
    );
    let history = store
        .fact_history(&tenant(), &dev("old-1"), None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        history.items.iter().map(|c| c.at).collect::<Vec<_>>(),
        [5000]
    );
    assert!(
        store
            .inventory_get(&tenant(), &dev("old-1"), false)
            .await
            .unwrap()
            .is_some(),
        "the latest report stays"
    );
}

both!(large_event_batches_are_written_whole_and_in_order);
async fn large_event_batches_are_written_whole_and_in_order(store: Arc<dyn Store>, _t: Tamper) {
    enroll(&store, &["ev-1", "ev-2"]).await;
    // More than two multi-row statements' worth, the last one partial.
    let events: Vec<NewDeviceEvent> = (0..2_345i64)
        .map(|i| NewDeviceEvent {
            tenant: tenant(),
            device: dev(if i % 3 == 0 { "ev-2" } else { "ev-1" }),
            received_at: 1_000 + i,
            at: 500 + i,
            kind: format!("kind-{}", i % 7),
            body: json!({"n": i, "text": "ünïcode 'quoted'"}),
        })
        .collect();
    store.device_events_append(&events).await.unwrap();
    let mut stored = Vec::new();
    let mut page = PageRequest::first(1000);
    loop {
        let got = store
            .device_events_list(&tenant(), None, &page)
            .await
            .unwrap();
        stored.extend(got.items);
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    // Listed newest first, with increasing ids in the order appended.
    stored.reverse();
    assert_eq!(stored.len(), events.len());
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    for (stored, sent) in stored.iter().zip(&events) {
        assert_eq!(&stored.event, sent);
    }
    let second = store
        .device_events_list(&tenant(), Some(&dev("ev-2")), &PageRequest::first(1000))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 782);
}
