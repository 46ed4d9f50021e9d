//! The update half of the store suite, on both backends: trust root versions pinned once
//! each, artifacts recorded idempotently, releases unique per vendor, model and sequence;
//! campaigns with their devices, histories and maintenance windows.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

#[macro_use]
mod common;
use common::*;

use garrison_core::{
    DeviceId,
    audit::{Actor, AuditRecord},
};
use garrison_store::{
    PageRequest, Store, StoreError,
    campaigns::{
        CampaignDevice, CampaignDeviceChange, CampaignRecord, MaintenanceWindowRecord,
        UnpatchableDevice,
    },
    updates::{ArtifactRecord, Release, UpdateRoot},
};
use serde_json::json;

fn audit(action: &str, target: &str) -> AuditRecord {
    AuditRecord::new(&tenant(), Actor::operator("ann"), action, target)
}

fn release(id: &str, sequence: i64) -> Release {
    Release {
        id: id.into(),
        tenant: tenant(),
        vendor: "acme".into(),
        model: "AV-CAM-220".into(),
        sequence,
        version: format!("5.{sequence}.0"),
        signed_by: "k1".into(),
        artifacts: json!([{"name": "rootfs.swu", "sha256": "ab".repeat(32), "size": 10}]),
        expires_at: Some(5_000),
        manifest: vec![0xd2, 0x84, 0, 1, 2],
        created_at: 1_000,
        created_by: "ann".into(),
    }
}

both!(roots_artifacts_and_releases);
async fn roots_artifacts_and_releases(store: Arc<dyn Store>, _t: Tamper) {
    let t = tenant();
    assert_eq!(store.update_root_current(&t).await.unwrap(), None);
    let root = |version: i64| UpdateRoot {
        tenant: t.clone(),
        version,
        document: vec![0xd8, 0x62, version as u8, 0],
        uploaded_at: 100 * version,
        uploaded_by: "admin".into(),
    };
    store
        .update_root_record(&root(1), audit("update.root.pin", "root:1"))
        .await
        .unwrap();
    store
        .update_root_record(&root(2), audit("update.root.pin", "root:2"))
        .await
        .unwrap();
    assert_eq!(store.update_root_current(&t).await.unwrap(), Some(root(2)));
    assert_eq!(
        store.update_root_version(&t, 1).await.unwrap(),
        Some(root(1))
    );
    assert_eq!(store.update_root_version(&t, 3).await.unwrap(), None);
    assert!(matches!(
        store
            .update_root_record(&root(2), audit("update.root.pin", "root:2"))
            .await,
        Err(StoreError::Conflict { .. })
    ));

    let artifact = ArtifactRecord {
        tenant: t.clone(),
        sha256: "ab".repeat(32),
        size: 10,
        uploaded_at: 500,
        uploaded_by: "ann".into(),
    };
    assert_eq!(
        store
            .artifact_record(&artifact, audit("update.artifact.upload", "a"))
            .await
            .unwrap(),
        artifact
    );
    let again = ArtifactRecord {
        uploaded_at: 900,
        uploaded_by: "bob".into(),
        ..artifact.clone()
    };
    assert_eq!(
        store
            .artifact_record(&again, audit("update.artifact.upload", "a"))
            .await
            .unwrap(),
        artifact,
        "the first upload stands"
    );
    assert_eq!(
        store.artifact_get(&t, &"ab".repeat(32)).await.unwrap(),
        Some(artifact)
    );
    assert_eq!(
        store.artifact_get(&t, &"cd".repeat(32)).await.unwrap(),
        None
    );

    store
        .release_create(&release("r1", 57), audit("update.release.publish", "r1"))
        .await
        .unwrap();
    store
        .release_create(&release("r2", 58), audit("update.release.publish", "r2"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .release_create(&release("r3", 57), audit("update.release.publish", "r3"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.release_get(&t, "r1").await.unwrap(),
        Some(release("r1", 57))
    );
    let first = store
        .releases_list(&t, &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(first.items, vec![release("r2", 58)]);
    let next = PageRequest {
        after: first.next.clone(),
        ..PageRequest::first(1)
    };
    let second = store.releases_list(&t, &next).await.unwrap();
    assert_eq!(second.items, vec![release("r1", 57)]);
    assert!(second.next.is_none());
    // Two roots, an artifact and two releases: five audit entries, chain intact.
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}

fn campaign_record(id: &str) -> CampaignRecord {
    CampaignRecord {
        id: id.into(),
        tenant: tenant(),
        number: 1,
        name: "cam fleet 5.57".into(),
        release_id: "r1".into(),
        target: json!({"group": "cameras"}),
        spec: json!({"phases": [{"percent": 10}, {"percent": 100}]}),
        state: "running".into(),
        phase: 0,
        reason: None,
        devices: 3,
        created_at: 2_000,
        created_by: "ann".into(),
        updated_at: 2_000,
    }
}

fn campaign_device(id: &str, phase: i64) -> CampaignDevice {
    CampaignDevice {
        device: DeviceId::new(id).unwrap(),
        phase,
        stage: "pending".into(),
        attempts: 0,
        next_attempt_at: None,
        updated_at: 2_000,
        reason: None,
    }
}

both!(campaigns_devices_history_and_windows);
async fn campaigns_devices_history_and_windows(store: Arc<dyn Store>, _t: Tamper) {
    let t = tenant();
    store
        .release_create(&release("r1", 57), audit("update.release.publish", "r1"))
        .await
        .unwrap();
    let devices = vec![
        campaign_device("cam-1", 0),
        campaign_device("cam-2", 1),
        campaign_device("cam-3", 1),
    ];
    let c = campaign_record("c1");
    assert_eq!(
        store
            .campaign_create(&c, &devices, audit("update.campaign.create", "c1"))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store
            .campaign_create(&c, &[], audit("update.campaign.create", "c1"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    // Numbers go up per tenant (they are hawkBit action ids).
    let finished = CampaignRecord {
        state: "completed".into(),
        ..campaign_record("c0")
    };
    assert_eq!(
        store
            .campaign_create(&finished, &[], audit("update.campaign.create", "c0"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.campaign_get(&t, "c1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.campaign_devices(&t, "c1").await.unwrap(), devices);
    // Another tenant sees nothing of it.
    let other = garrison_core::TenantId::new("other").unwrap();
    assert_eq!(store.campaign_get(&other, "c1").await.unwrap(), None);
    assert!(
        store
            .campaign_devices(&other, "c1")
            .await
            .unwrap()
            .is_empty()
    );

    // Devices move; each change lands in the row and in the history.
    let moved = |stage: &str, attempts: i64, at: i64, reason: Option<&str>| CampaignDeviceChange {
        campaign: "c1".into(),
        device: CampaignDevice {
            stage: stage.into(),
            attempts,
            updated_at: at,
            reason: reason.map(str::to_owned),
            ..campaign_device("cam-1", 0)
        },
        reported: None,
    };
    store
        .campaign_devices_record(&t, &[moved("notified", 1, 3_000, None)])
        .await
        .unwrap();
    let mut failed = moved("retrying", 1, 4_000, Some("disk full"));
    failed.reported = Some("failed".into());
    failed.device.next_attempt_at = Some(64_000);
    store
        .campaign_devices_record(&t, &[failed.clone()])
        .await
        .unwrap();
    let history = store
        .campaign_device_history(&t, "c1", &DeviceId::new("cam-1").unwrap())
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].stage, "retrying");
    assert_eq!(history[1].reported.as_deref(), Some("failed"));
    assert_eq!(history[1].reason.as_deref(), Some("disk full"));
    // A device that is not in the campaign is refused, and nothing of the batch is kept.
    let mut stranger = moved("notified", 1, 5_000, None);
    stranger.device.device = DeviceId::new("cam-9").unwrap();
    assert!(matches!(
        store
            .campaign_devices_record(&t, &[moved("succeeded", 2, 5_000, None), stranger])
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let page = store
        .campaign_devices_page(&t, "c1", Some("retrying"), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items, vec![failed.device.clone()]);
    let page = store
        .campaign_devices_page(&t, "c1", None, &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.next.as_deref(), Some("cam-2"));

    store
        .campaign_set_state(
            &t,
            "c1",
            &garrison_store::campaigns::CampaignStateChange {
                state: "aborted",
                phase: 1,
                reason: Some("phase 2 failed"),
                at: 6_000,
            },
            audit("update.campaign.abort", "c1"),
        )
        .await
        .unwrap();
    let c1 = store.campaign_get(&t, "c1").await.unwrap().unwrap();
    assert_eq!((c1.state.as_str(), c1.phase), ("aborted", 1));
    assert_eq!(c1.reason.as_deref(), Some("phase 2 failed"));
    assert!(
        store
            .campaigns_in_states(&t, &["running", "waiting-approval"])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.campaigns_in_states(&t, &["aborted"]).await.unwrap(),
        vec![c1]
    );
    assert!(matches!(
        store
            .campaign_set_state(
                &t,
                "nope",
                &garrison_store::campaigns::CampaignStateChange {
                    state: "aborted",
                    phase: 0,
                    reason: None,
                    at: 1
                },
                audit("x", "nope")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let window = MaintenanceWindowRecord {
        tenant: t.clone(),
        group: "cameras".into(),
        window: json!({"start": "02:00", "duration_minutes": 120}),
        updated_at: 7_000,
        updated_by: "ann".into(),
    };
    store
        .maintenance_window_put(&window, audit("update.window.set", "cameras"))
        .await
        .unwrap();
    let replaced = MaintenanceWindowRecord {
        window: json!({"start": "03:00", "duration_minutes": 60}),
        ..window
    };
    store
        .maintenance_window_put(&replaced, audit("update.window.set", "cameras"))
        .await
        .unwrap();
    assert_eq!(store.maintenance_windows(&t).await.unwrap(), vec![replaced]);
    assert!(
        store
            .maintenance_window_delete(&t, "cameras", audit("update.window.delete", "cameras"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .maintenance_window_delete(&t, "cameras", audit("update.window.delete", "cameras"))
            .await
            .unwrap()
    );
    // hawkBit target tokens: one per device, found by hash, replaced, withdrawn.
    let cam = DeviceId::new("cam-1").unwrap();
    store
        .ddi_token_set(
            &t,
            &cam,
            "h1",
            8_000,
            "ann",
            audit("device.ddi_token.issue", "cam-1"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.ddi_token_device(&t, "h1").await.unwrap(),
        Some(cam.clone())
    );
    store
        .ddi_token_set(
            &t,
            &cam,
            "h2",
            9_000,
            "ann",
            audit("device.ddi_token.issue", "cam-1"),
        )
        .await
        .unwrap();
    assert_eq!(store.ddi_token_device(&t, "h1").await.unwrap(), None);
    assert_eq!(store.ddi_token_device(&other, "h2").await.unwrap(), None);
    assert!(
        store
            .ddi_token_delete(&t, &cam, audit("device.ddi_token.withdraw", "cam-1"))
            .await
            .unwrap()
    );
    assert_eq!(store.ddi_token_device(&t, "h2").await.unwrap(), None);

    // Unpatchable devices: marked, changed, listed per tenant, unmarked.
    let entry = UnpatchableDevice {
        tenant: t.clone(),
        device: cam.clone(),
        reason: "end-of-support".into(),
        control: "quarantine".into(),
        note: Some("vendor gone".into()),
        marked_at: 10_000,
        marked_by: "ann".into(),
    };
    store
        .unpatchable_put(&entry, audit("device.unpatchable.mark", "cam-1"))
        .await
        .unwrap();
    let changed = UnpatchableDevice {
        control: "none".into(),
        ..entry
    };
    store
        .unpatchable_put(&changed, audit("device.unpatchable.mark", "cam-1"))
        .await
        .unwrap();
    assert_eq!(store.unpatchable_list(&t).await.unwrap(), vec![changed]);
    assert!(store.unpatchable_list(&other).await.unwrap().is_empty());
    assert!(
        store
            .unpatchable_delete(&t, &cam, audit("device.unpatchable.unmark", "cam-1"))
            .await
            .unwrap()
    );
    assert!(store.unpatchable_list(&t).await.unwrap().is_empty());
    assert!(store.audit_verify().await.unwrap().first_break.is_none());
}
