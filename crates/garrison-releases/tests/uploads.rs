//! Uploads that fail leave nothing behind, and leftovers of a crash are swept at start.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use bytes::Bytes;
use garrison_core::{TenantId, audit::Actor as AuditActor};
use garrison_releases::{Actor, ReleaseError, Releases};
use garrison_store::{SqliteStore, Store};

async fn repo(dir: &std::path::Path) -> Releases {
    let store = SqliteStore::open(&format!("sqlite://{}", dir.join("g.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    Releases::open(store, TenantId::default(), dir.join("artifacts"), 1000).unwrap()
}

fn ann() -> Actor {
    Actor {
        username: "ann".into(),
        actor: AuditActor::operator("ann"),
        source: None,
    }
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn failed_uploads_leave_nothing_and_leftovers_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("artifacts")).unwrap();
    std::fs::write(dir.path().join("artifacts/.upload-crashed"), b"partial").unwrap();
    let releases = repo(dir.path()).await;
    assert!(files(dir.path()).is_empty(), "swept at open");

    let chunks = |parts: Vec<&'static [u8]>| {
        futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        )
    };
    // Over the limit, a stream error, a wrong digest: each refused, no file kept.
    let digest_of_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let too_big = releases
        .upload(
            digest_of_abc,
            chunks(vec![&[0u8; 600], &[0u8; 600]]),
            &ann(),
        )
        .await;
    assert!(matches!(too_big, Err(ReleaseError::TooLarge { max: 1000 })));
    let broken = futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"ab")),
        Err(std::io::Error::other("client went away")),
    ]);
    assert!(matches!(
        releases.upload(digest_of_abc, broken, &ann()).await,
        Err(ReleaseError::Upload(_))
    ));
    assert!(matches!(
        releases
            .upload(digest_of_abc, chunks(vec![b"abd"]), &ann())
            .await,
        Err(ReleaseError::DigestMismatch { .. })
    ));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    let (record, created) = releases
        .upload(digest_of_abc, chunks(vec![b"a", b"bc"]), &ann())
        .await
        .unwrap();
    assert!(created);
    assert_eq!(record.size, 3);
    assert_eq!(files(dir.path()), [digest_of_abc]);
    assert!(matches!(
        releases
            .upload("../etc/passwd", chunks(vec![b"x"]), &ann())
            .await,
        Err(ReleaseError::BadDigest(_))
    ));
}
