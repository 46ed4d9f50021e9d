//! The device's whole check of a release, per manifest: COSE_Sign1 decoding, the release key
//! looked up in the pinned root, the signature (Ed25519 and ECDSA P-256), the manifest's CBOR
//! and its fields, vendor, class and anti-rollback. `bench/manifests.sh` runs this beside
//! pycose verifying the same kind of COSE_Sign1 in the same run.
//!
//! Run: `cargo bench -p garrison-update --bench verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use garrison_update::{
    Algorithm, Artifact, DeviceState, Manifest, SignedManifest, SigningKey, TrustRoot,
    verify_manifest,
};

const NOW: i64 = 1_800_000_000_000;

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_manifest");
    group.throughput(Throughput::Elements(1));
    for (name, algorithm) in [
        ("ed25519", Algorithm::Ed25519),
        ("p256", Algorithm::EcdsaP256),
    ] {
        let root_key = SigningKey::generate(algorithm).unwrap();
        let release = SigningKey::generate(algorithm).unwrap();
        let root = TrustRoot {
            root_version: 1,
            root_keys: vec![root_key.public_key()],
            root_threshold: 1,
            release_keys: vec![release.public_key()],
            created_at: NOW,
            expires_at: None,
        };
        let manifest = Manifest {
            manifest_version: 1,
            vendor: "acme".into(),
            class: "AV-CAM-220".into(),
            sequence: 58,
            version: "5.8.0".into(),
            artifacts: vec![Artifact {
                name: "rootfs.swu".into(),
                sha256: "ab".repeat(32),
                size: 64 << 20,
            }],
            created_at: NOW,
            expires_at: None,
            description: Some("fixes CVE-2026-0001".into()),
        };
        let signed = SignedManifest::sign(&manifest, &release).unwrap();
        let bytes = signed.as_bytes().to_vec();
        let device = DeviceState {
            vendor: "acme".into(),
            class: "AV-CAM-220".into(),
            installed_sequence: 57,
        };
        assert!(verify_manifest(&root, &bytes, &device, NOW).is_ok());
        group.bench_function(name, |b| {
            b.iter(|| verify_manifest(black_box(&root), black_box(&bytes), &device, NOW).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
