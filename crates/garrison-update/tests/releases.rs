//! Releases end to end without I/O: keys, a threshold-signed trust root and its rotation,
//! signed manifests, and every refusal a device must make.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use garrison_update::{
    Algorithm, Artifact, ArtifactCheck, DeviceState, Manifest, PublicKey, SignedManifest,
    SigningKey, TrustRoot, UpdateError, verify_manifest,
};

const NOW: i64 = 1_800_000_000_000;

fn key(algorithm: Algorithm) -> SigningKey {
    SigningKey::generate(algorithm).unwrap()
}

fn sha256(data: &[u8]) -> String {
    let mut s = garrison_update::Sha256Stream::default();
    s.update(data);
    s.finish().0
}

fn manifest(sequence: u64, image: &[u8]) -> Manifest {
    Manifest {
        manifest_version: 1,
        vendor: "acme".into(),
        class: "AV-CAM-220".into(),
        sequence,
        version: format!("5.{sequence}.0"),
        artifacts: vec![Artifact {
            name: "rootfs.swu".into(),
            sha256: sha256(image),
            size: image.len() as u64,
        }],
        created_at: NOW,
        expires_at: None,
        description: Some("fixes CVE-2026-0001".into()),
    }
}

fn root_with(
    roots: &[&SigningKey],
    threshold: u32,
    releases: &[&SigningKey],
    version: u64,
) -> TrustRoot {
    TrustRoot {
        root_version: version,
        root_keys: roots.iter().map(|k| k.public_key()).collect(),
        root_threshold: threshold,
        release_keys: releases.iter().map(|k| k.public_key()).collect(),
        created_at: NOW,
        expires_at: None,
    }
}

fn camera(installed: u64) -> DeviceState {
    DeviceState {
        vendor: "acme".into(),
        class: "AV-CAM-220".into(),
        installed_sequence: installed,
    }
}

#[test]
fn a_signed_release_verifies_and_every_forgery_or_rollback_is_refused() {
    for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
        let root_key = key(algorithm);
        let release = key(algorithm);
        let root = root_with(&[&root_key], 1, &[&release], 1);
        let pinned = TrustRoot::open(&root.sign(&[&root_key]).unwrap()).unwrap();
        assert_eq!(pinned, root);

        let image = b"firmware image 5.7.0".repeat(1000);
        let signed = SignedManifest::sign(&manifest(7, &image), &release).unwrap();
        let got = verify_manifest(&pinned, signed.as_bytes(), &camera(6), NOW).unwrap();
        assert_eq!(got, manifest(7, &image));
        assert_eq!(SignedManifest::parse(signed.as_bytes()).unwrap(), signed);
        assert_eq!(signed.key(), &release.public_key().id());

        // Anti-rollback: the same validly signed release once it (or newer) is installed.
        for installed in [7, 9] {
            assert_eq!(
                verify_manifest(&pinned, signed.as_bytes(), &camera(installed), NOW),
                Err(UpdateError::Rollback {
                    offered: 7,
                    installed
                })
            );
        }
        // Another model, another vendor.
        let mut plug = camera(0);
        plug.class = "SP-10".into();
        assert!(matches!(
            verify_manifest(&pinned, signed.as_bytes(), &plug, NOW),
            Err(UpdateError::WrongTarget { field: "class", .. })
        ));
        let mut other = camera(0);
        other.vendor = "globex".into();
        assert!(matches!(
            verify_manifest(&pinned, signed.as_bytes(), &other, NOW),
            Err(UpdateError::WrongTarget {
                field: "vendor",
                ..
            })
        ));
        // A key the root does not list, even with a valid signature of its own.
        let rogue = SignedManifest::sign(&manifest(8, &image), &key(algorithm)).unwrap();
        assert!(matches!(
            verify_manifest(&pinned, rogue.as_bytes(), &camera(0), NOW),
            Err(UpdateError::UnknownKey {
                role: "release",
                ..
            })
        ));
        // One flipped byte anywhere in the payload.
        let mut bytes = signed.as_bytes().to_vec();
        let at = bytes.windows(10).position(|w| w == b"AV-CAM-220").unwrap();
        bytes[at] = b'B';
        assert!(matches!(
            verify_manifest(&pinned, &bytes, &camera(0), NOW),
            Err(UpdateError::BadSignature { .. })
        ));
        // Expired manifests.
        let mut expiring = manifest(8, &image);
        expiring.expires_at = Some(NOW);
        let expiring = SignedManifest::sign(&expiring, &release).unwrap();
        assert!(verify_manifest(&pinned, expiring.as_bytes(), &camera(0), NOW - 1).is_ok());
        assert_eq!(
            verify_manifest(&pinned, expiring.as_bytes(), &camera(0), NOW),
            Err(UpdateError::Expired {
                what: "manifest",
                expired_at: NOW
            })
        );
        // An expired root installs nothing.
        let mut stale = root.clone();
        stale.expires_at = Some(NOW - 1);
        assert!(matches!(
            verify_manifest(&stale, signed.as_bytes(), &camera(0), NOW),
            Err(UpdateError::Expired {
                what: "trust root",
                ..
            })
        ));
        // Garbage and the wrong kind of document.
        assert!(matches!(
            verify_manifest(&pinned, b"\xd2\x84garbage", &camera(0), NOW),
            Err(UpdateError::Malformed { .. })
        ));
        let root_doc = root.sign(&[&root_key]).unwrap();
        assert!(matches!(
            verify_manifest(&pinned, &root_doc, &camera(0), NOW),
            Err(UpdateError::Malformed { .. })
        ));
        assert!(matches!(
            TrustRoot::open(signed.as_bytes()),
            Err(UpdateError::Malformed { .. })
        ));
    }
}

#[test]
fn artifacts_are_checked_as_they_stream() {
    let image = vec![7u8; 100_000];
    let m = manifest(1, &image);
    let check = |data: &[u8]| {
        let mut c = ArtifactCheck::new(&m, "rootfs.swu")?;
        for chunk in data.chunks(4096) {
            c.update(chunk)?;
        }
        c.finish()
    };
    assert_eq!(check(&image), Ok(()));
    let mut longer = image.clone();
    longer.push(0);
    assert!(matches!(
        check(&longer),
        Err(UpdateError::TooLong { size: 100_000, .. })
    ));
    assert!(matches!(
        check(&image[..99_999]),
        Err(UpdateError::TooShort { got: 99_999, .. })
    ));
    let mut flipped = image.clone();
    flipped[50_000] ^= 1;
    assert!(matches!(
        check(&flipped),
        Err(UpdateError::DigestMismatch { .. })
    ));
    assert!(matches!(
        ArtifactCheck::new(&m, "other.bin"),
        Err(UpdateError::NoSuchArtifact(_))
    ));
}

#[test]
fn manifests_that_break_their_own_rules_are_not_signed() {
    let release = key(Algorithm::Ed25519);
    let good = manifest(1, b"x");
    let mut cases: Vec<(&str, Manifest)> = Vec::new();
    let mut m = good.clone();
    m.artifacts.clear();
    cases.push(("1 to 256 artifacts", m));
    let mut m = good.clone();
    m.artifacts.push(m.artifacts[0].clone());
    cases.push(("listed twice", m));
    let mut m = good.clone();
    m.artifacts[0].name = "../etc/passwd".into();
    cases.push(("plain file name", m));
    let mut m = good.clone();
    m.artifacts[0].sha256 = "ABC".into();
    cases.push(("malformed SHA-256", m));
    let mut m = good.clone();
    m.class = " ".into();
    cases.push(("class", m));
    let mut m = good;
    m.manifest_version = 2;
    cases.push(("not supported", m));
    for (why, m) in cases {
        let err = SignedManifest::sign(&m, &release).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

#[test]
fn the_root_needs_its_threshold_and_rotates_only_with_both_thresholds() {
    let [a, b, c, d, e] = [(); 5].map(|_| key(Algorithm::Ed25519));
    let release = key(Algorithm::EcdsaP256);
    let v1 = root_with(&[&a, &b, &c], 2, &[&release], 1);
    assert!(matches!(
        v1.sign(&[&a]),
        Err(UpdateError::BelowThreshold {
            valid: 1,
            threshold: 2,
            ..
        })
    ));
    assert!(
        matches!(
            v1.sign(&[&a, &d]),
            Err(UpdateError::BelowThreshold { valid: 1, .. })
        ),
        "a key outside the root does not count"
    );
    let pinned = TrustRoot::open(&v1.sign(&[&a, &c]).unwrap()).unwrap();

    // v2 replaces the root keys with c, d, e and adds a release key.
    let release2 = key(Algorithm::Ed25519);
    let v2 = root_with(&[&c, &d, &e], 2, &[&release, &release2], 2);
    let both = v2.sign(&[&a, &b, &d, &e]).unwrap();
    let rotated = pinned.rotate(&both).unwrap();
    assert_eq!(rotated, v2);
    // Only the new keys: a thief who made their own root is refused.
    let new_only = v2.sign(&[&d, &e]).unwrap();
    assert!(matches!(
        pinned.rotate(&new_only),
        Err(UpdateError::BelowThreshold { valid: 0, .. })
    ));
    // A root that could not sign itself is never produced (the device-side half of this is
    // a unit test of `rotate`).
    let mut unsignable = v2.clone();
    unsignable.root_threshold = 3;
    assert!(matches!(
        unsignable.sign(&[&a, &b, &c, &d]),
        Err(UpdateError::BelowThreshold {
            valid: 2,
            threshold: 3,
            ..
        })
    ));
    // Versions must follow one another.
    let v3 = root_with(&[&c, &d, &e], 2, &[&release], 3);
    assert_eq!(
        pinned.rotate(&v3.sign(&[&a, &b, &c, &d]).unwrap()),
        Err(UpdateError::RootVersion {
            offered: 3,
            pinned: 1
        })
    );
    // A release signed by the added key verifies under v2, not under v1.
    let image = b"image";
    let signed = SignedManifest::sign(&manifest(2, image), &release2).unwrap();
    assert!(verify_manifest(&rotated, signed.as_bytes(), &camera(1), NOW).is_ok());
    assert!(matches!(
        verify_manifest(&pinned, signed.as_bytes(), &camera(1), NOW),
        Err(UpdateError::UnknownKey { .. })
    ));
    // Invalid roots.
    assert!(root_with(&[&a], 2, &[&release], 1).sign(&[&a]).is_err());
    assert!(root_with(&[&a, &a], 1, &[&release], 1).sign(&[&a]).is_err());
    assert!(root_with(&[&a], 1, &[], 1).sign(&[&a]).is_err());
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("ed", &["-algorithm", "ed25519"][..]),
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
    ] {
        let private = dir.path().join(format!("{name}.key"));
        let public = dir.path().join(format!("{name}.pub"));
        let ok = Command::new("openssl")
            .arg("genpkey")
            .args(args)
            .arg("-out")
            .arg(&private)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl genpkey {name}");
        let ok = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl pkey -pubout {name}");
        let signing = SigningKey::from_pem(&std::fs::read_to_string(&private).unwrap()).unwrap();
        let verifying = PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
        assert_eq!(signing.public_key(), verifying, "{name}");
        let root = root_with(&[&signing], 1, &[&signing], 1);
        let pinned = TrustRoot::open(&root.sign(&[&signing]).unwrap()).unwrap();
        let signed = SignedManifest::sign(&manifest(1, b"x"), &signing).unwrap();
        verify_manifest(&pinned, signed.as_bytes(), &camera(0), NOW).unwrap();
        // Our public key PEM is what openssl reads.
        std::fs::write(dir.path().join("ours.pub"), verifying.to_pem()).unwrap();
        let out = Command::new("openssl")
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(dir.path().join("ours.pub"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
