//! The update half of the store suite, on both backends: trust root versions pinned once
//! each, artifacts recorded idempotently, releases unique per vendor, model and sequence.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

#[macro_use]
mod common;
use common::*;

use garrison_core::audit::{Actor, AuditRecord};
use garrison_store::{
    PageRequest, Store, StoreError,
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
