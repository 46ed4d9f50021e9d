//! `garrison release` end to end, as a vendor would use it on an offline machine: keys (one
//! encrypted), a threshold trust root and its rotation, a signed release of a multi-megabyte
//! image, and verification — by our CLI as a device would, and independently by pycose.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{path::Path, process::Command};

use serde_json::Value;

mod common;

use common::*;

fn ok(home: &Path, args: &[&str]) -> String {
    let (success, out, err) = run(garrison(home).args(args), None);
    assert!(success, "garrison {args:?} failed:\n{out}\n{err}");
    out
}

fn refused(home: &Path, args: &[&str]) -> String {
    let (success, out, err) = run(garrison(home).args(args), None);
    assert!(!success, "garrison {args:?} should fail:\n{out}");
    err
}

/// pycose's verdict on a COSE document with the given public keys.
fn pycose(home: &Path, kind: &str, doc: &str, keys: &[&str]) -> (bool, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/cose_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .args([kind, doc])
        .args(keys)
        .current_dir(home)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "pycose printed no verdict (is it installed? .ci/run installs it):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

#[test]
fn releases_are_signed_offline_verified_by_devices_and_by_pycose() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Two root keys, one of them encrypted; a release key of each algorithm.
    ok(h, &["release", "keygen", "root-a"]);
    let (success, _, err) = run(
        garrison(h).args([
            "release",
            "keygen",
            "root-b",
            "--algorithm",
            "ecdsa-p256",
            "--encrypt",
            "--passphrase-stdin",
        ]),
        Some("correct horse battery staple\n"),
    );
    assert!(success, "{err}");
    assert!(
        std::fs::read_to_string(h.join("root-b.key"))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    ok(h, &["release", "keygen", "release-1"]);
    ok(
        h,
        &[
            "release",
            "keygen",
            "release-2",
            "--algorithm",
            "ecdsa-p256",
        ],
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(h.join("release-1.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let err = refused(h, &["release", "keygen", "release-1"]);
    assert!(
        err.contains("release-1.key"),
        "never overwrites a key: {err}"
    );

    // A 2-of-2 root: one signature is not enough.
    let root_v1 = [
        "release",
        "root",
        "--root-key",
        "root-a.pub",
        "--root-key",
        "root-b.pub",
        "--threshold",
        "2",
        "--release-key",
        "release-1.pub",
        "--sign-with",
        "root-a.key",
    ];
    let err = refused(h, &[&root_v1[..], &["--out", "root.cose"]].concat());
    assert!(err.contains("requires 2"), "{err}");
    let mut cmd = garrison(h);
    cmd.args(root_v1)
        .args(["--sign-with", "root-b.key", "--out", "root.cose"])
        .env(
            "GARRISON_RELEASE_KEY_PASSPHRASE",
            "correct horse battery staple",
        );
    let (success, out, err) = run(&mut cmd, None);
    assert!(success, "{out}{err}");
    let (verified, root) = pycose(h, "sign", "root.cose", &["root-a.pub", "root-b.pub"]);
    assert!(verified, "{root}");
    assert_eq!(root["payload"]["root_threshold"], 2);

    // A 3 MB image, signed with release-1.
    let image: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir(h.join("dist")).unwrap();
    std::fs::write(h.join("dist/rootfs.swu"), &image).unwrap();
    let sign = |key: &str, sequence: &str, out: &str| {
        ok(
            h,
            &[
                "release",
                "sign",
                "--key",
                key,
                "--vendor",
                "acme",
                "--model",
                "AV-CAM-220",
                "--sequence",
                sequence,
                "--version",
                "5.7.0",
                "--expires-in",
                "180d",
                "dist/rootfs.swu",
                "--out",
                out,
            ],
        )
    };
    sign("release-1.key", "57", "cam-57.cose");
    let report: Value = serde_json::from_str(&ok(
        h,
        &[
            "release",
            "verify",
            "--root",
            "root.cose",
            "cam-57.cose",
            "--artifacts",
            "dist",
            "--installed-sequence",
            "56",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(report["verdict"], "verified", "{report}");
    assert_eq!(report["artifacts"][0]["size"], 3_000_000);
    let (verified, manifest) = pycose(h, "sign1", "cam-57.cose", &["release-1.pub"]);
    assert!(verified, "{manifest}");
    assert_eq!(manifest["payload"]["sequence"], 57);
    assert_eq!(manifest["payload"]["class"], "AV-CAM-220");
    let (verified, _) = pycose(h, "sign1", "cam-57.cose", &["release-2.pub"]);
    assert!(!verified, "pycose: another key does not verify it");

    // What a device refuses: a rollback, another model, a tampered manifest, a tampered image,
    // a release key the root does not list.
    let verify = |extra: &[&str]| {
        let mut args = vec!["release", "verify", "--root", "root.cose"];
        args.extend_from_slice(extra);
        let (success, out, err) = run(garrison(h).args(&args), None);
        (success, format!("{out}{err}"))
    };
    let (success, text) = verify(&["cam-57.cose", "--installed-sequence", "57"]);
    assert!(!success && text.contains("rollback"), "{text}");
    let (success, text) = verify(&["cam-57.cose", "--model", "SP-10"]);
    assert!(!success && text.contains("SP-10"), "{text}");
    let mut bytes = std::fs::read(h.join("cam-57.cose")).unwrap();
    let at = bytes.windows(5).position(|w| w == b"5.7.0").unwrap();
    bytes[at] = b'9';
    std::fs::write(h.join("tampered.cose"), &bytes).unwrap();
    let (success, text) = verify(&["tampered.cose"]);
    assert!(!success && text.contains("altered or forged"), "{text}");
    let (verified, _) = pycose(h, "sign1", "tampered.cose", &["release-1.pub"]);
    assert!(
        !verified,
        "pycose agrees the tampered manifest does not verify"
    );
    let mut evil = image.clone();
    evil[1_500_000] ^= 0x01;
    std::fs::create_dir(h.join("evil")).unwrap();
    std::fs::write(h.join("evil/rootfs.swu"), &evil).unwrap();
    let (success, text) = verify(&["cam-57.cose", "--artifacts", "evil"]);
    assert!(!success && text.contains("SHA-256"), "{text}");
    sign("release-2.key", "58", "cam-58.cose");
    let (success, text) = verify(&["cam-58.cose"]);
    assert!(!success && text.contains("does not list"), "{text}");

    // Rotation to root v2: root-b and a new root-c, adding release-2. Signed by the new keys
    // only, devices pinning v1 would refuse it, so the CLI refuses to write it.
    ok(h, &["release", "keygen", "root-c"]);
    let root_v2 = [
        "release",
        "root",
        "--previous",
        "root.cose",
        "--root-key",
        "root-b.pub",
        "--root-key",
        "root-c.pub",
        "--threshold",
        "2",
        "--release-key",
        "release-1.pub",
        "--release-key",
        "release-2.pub",
        "--sign-with",
        "root-b.key",
        "--sign-with",
        "root-c.key",
    ];
    let mut cmd = garrison(h);
    cmd.args(root_v2).args(["--out", "root-v2.cose"]).env(
        "GARRISON_RELEASE_KEY_PASSPHRASE",
        "correct horse battery staple",
    );
    let (success, _, err) = run(&mut cmd, None);
    assert!(
        !success && err.contains("pinning the previous root"),
        "{err}"
    );
    let mut cmd = garrison(h);
    cmd.args(root_v2)
        .args(["--sign-with", "root-a.key", "--out", "root-v2.cose"])
        .env(
            "GARRISON_RELEASE_KEY_PASSPHRASE",
            "correct horse battery staple",
        );
    let (success, out, err) = run(&mut cmd, None);
    assert!(success && out.contains("version 2"), "{out}{err}");
    let (success, out, err) = run(
        garrison(h).args(["release", "verify", "--root", "root-v2.cose", "cam-58.cose"]),
        None,
    );
    assert!(success, "release-2 is trusted under root v2: {out}{err}");
}
