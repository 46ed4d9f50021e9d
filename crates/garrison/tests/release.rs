//! `garrison release` end to end, as a vendor would use it on an offline machine: keys (one
//! encrypted), a threshold trust root and its rotation, a signed release of a multi-megabyte
//! image, and verification — by our CLI as a device would, and independently by pycose.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{path::Path, process::Command};

use serde_json::Value;

mod common;

use common::*;

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

fn sha256_hex(data: &[u8]) -> String {
    let mut s = garrison_update::Sha256Stream::default();
    s.update(data);
    s.finish().0
}

/// Downloads `path` with curl, optionally a byte range; returns (status, body).
fn download(est: &Est<'_>, path: &str, range: Option<&str>, out: &Path) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o"])
        .arg(out)
        .args(["-w", "%{http_code}", "--cacert"])
        .arg(est.ca)
        .args(["-H", &format!("Authorization: Bearer {}", est.token)]);
    if let Some(r) = range {
        cmd.args(["-r", r]);
    }
    let (_, code, err) = run(cmd.arg(format!("{}{path}", est.url)), None);
    (
        code.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{code}{err}")),
        std::fs::read(out).unwrap_or_default(),
    )
}

#[test]
fn the_server_publishes_only_verified_releases_and_serves_their_artifacts_with_ranges() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(h, &[("GARRISON_UPDATES__MAX_ARTIFACT_BYTES", "4000000")]);
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let token = est.token.clone();

    // Offline: keys, a root, a release of a 3 MB image.
    release_root(h);
    ok(h, &["release", "keygen", "rogue"]);
    let image: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
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
                "dist/rootfs.swu",
                "--out",
                out,
            ],
        );
    };
    sign("release.key", "57", "cam-57.cose");
    sign("rogue.key", "58", "rogue.cose");
    let digest = sha256_hex(&image);

    // Nothing is published before a root is pinned.
    let (status, body) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("cam-57.cose"),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("no trust root"),
        "{body}"
    );
    let (status, root) = est.send_file(
        "PUT",
        "/api/v1/updates/root",
        &token,
        "application/cose",
        &h.join("root.cose"),
    );
    assert_eq!(status, 200, "{root}");
    assert_eq!(root["version"], 1);
    let (status, body) = est.send_file(
        "PUT",
        "/api/v1/updates/root",
        &token,
        "application/cose",
        &h.join("cam-57.cose"),
    );
    assert_eq!(status, 400, "a manifest is not a root: {body}");

    // The artifact must be uploaded first, under its own digest.
    let (status, body) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("cam-57.cose"),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not uploaded"),
        "{body}"
    );
    let wrong = "0".repeat(64);
    let (status, body) = est.send_file(
        "PUT",
        &format!("/api/v1/updates/artifacts/{wrong}"),
        &token,
        "application/octet-stream",
        &h.join("dist/rootfs.swu"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(&digest),
        "{body}"
    );
    let (status, _) = download(
        &est,
        &format!("/api/v1/updates/artifacts/{wrong}"),
        None,
        &h.join("none"),
    );
    assert_eq!(status, 404, "nothing kept from a refused upload");
    std::fs::write(h.join("big.bin"), vec![1u8; 4_000_001]).unwrap();
    let (status, body) = est.send_file(
        "PUT",
        &format!(
            "/api/v1/updates/artifacts/{}",
            sha256_hex(&vec![1u8; 4_000_001])
        ),
        &token,
        "application/octet-stream",
        &h.join("big.bin"),
    );
    assert_eq!(status, 413, "{body}");
    let artifact = format!("/api/v1/updates/artifacts/{digest}");
    let (status, body) = est.send_file(
        "PUT",
        &artifact,
        &token,
        "application/octet-stream",
        &h.join("dist/rootfs.swu"),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], 3_000_000);
    let (status, _) = est.send_file(
        "PUT",
        &artifact,
        &token,
        "application/octet-stream",
        &h.join("dist/rootfs.swu"),
    );
    assert_eq!(status, 200, "the same content again is a no-op");
    let leftovers: Vec<_> = std::fs::read_dir(h.join("garrison-data/artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from(&digest)],
        "no temporary files left"
    );

    // Publish: once; forgeries and unknown keys refused.
    let (status, release) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("cam-57.cose"),
    );
    assert_eq!(status, 201, "{release}");
    assert_eq!(
        (release["model"].as_str(), release["sequence"].as_i64()),
        (Some("AV-CAM-220"), Some(57))
    );
    let (status, body) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("cam-57.cose"),
    );
    assert_eq!(status, 409, "{body}");
    let (status, body) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("rogue.cose"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("does not list"),
        "{body}"
    );
    let mut forged = std::fs::read(h.join("cam-57.cose")).unwrap();
    let at = forged.windows(5).position(|w| w == b"5.7.0").unwrap();
    forged[at] = b'6';
    std::fs::write(h.join("forged.cose"), &forged).unwrap();
    let (status, body) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("forged.cose"),
    );
    assert_eq!(status, 400, "{body}");

    // Served: the list, the manifest exactly as signed, the artifact whole and in ranges.
    let (status, list) = est.api("GET", "/api/v1/updates/releases", None);
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let id = release["id"].as_str().unwrap();
    let (status, manifest) = download(
        &est,
        &format!("/api/v1/updates/releases/{id}/manifest"),
        None,
        &h.join("got.cose"),
    );
    assert_eq!(status, 200);
    assert_eq!(manifest, std::fs::read(h.join("cam-57.cose")).unwrap());
    let report = ok(h, &["release", "verify", "--root", "root.cose", "got.cose"]);
    assert!(report.contains("verified"), "{report}");
    let (status, whole) = download(&est, &artifact, None, &h.join("whole.bin"));
    assert_eq!((status, whole.len()), (200, image.len()));
    assert_eq!(sha256_hex(&whole), digest);
    let (status, part) = download(
        &est,
        &artifact,
        Some("1000000-1999999"),
        &h.join("part.bin"),
    );
    assert_eq!(status, 206);
    assert_eq!(part, image[1_000_000..2_000_000]);
    let (status, _) = download(&est, &artifact, Some("5000000-5000001"), &h.join("bad.bin"));
    assert_eq!(status, 416);

    // Rotation through the API: the next version with both thresholds; never twice.
    ok(h, &["release", "keygen", "root-2"]);
    ok(
        h,
        &[
            "release",
            "root",
            "--previous",
            "root.cose",
            "--root-key",
            "root-2.pub",
            "--release-key",
            "release.pub",
            "--sign-with",
            "root.key",
            "--sign-with",
            "root-2.key",
            "--out",
            "root-v2.cose",
        ],
    );
    let (status, root) = est.send_file(
        "PUT",
        "/api/v1/updates/root",
        &token,
        "application/cose",
        &h.join("root-v2.cose"),
    );
    assert_eq!(status, 200, "{root}");
    assert_eq!(root["version"], 2);
    let (status, body) = est.send_file(
        "PUT",
        "/api/v1/updates/root",
        &token,
        "application/cose",
        &h.join("root-v2.cose"),
    );
    assert_eq!(status, 400, "v2 does not follow v2: {body}");
    let (status, _) = download(
        &est,
        "/api/v1/updates/root/document",
        None,
        &h.join("pinned.cose"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        std::fs::read(h.join("pinned.cose")).unwrap(),
        std::fs::read(h.join("root-v2.cose")).unwrap()
    );

    // Roles: an operator publishes but cannot pin the root; a read-only token changes nothing.
    let role_token = |role: &str| {
        let (status, created) = est.api(
            "POST",
            "/api/v1/tokens",
            Some(serde_json::json!({"name": role, "role": role})),
        );
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_owned()
    };
    let operator = role_token("operator");
    let reader = role_token("read-only");
    let (status, _) = est.send_file(
        "PUT",
        &artifact,
        "not-a-token",
        "application/octet-stream",
        &h.join("dist/rootfs.swu"),
    );
    assert_eq!(status, 401, "a refused upload is answered, not reset");
    let (status, _) = est.send_file(
        "PUT",
        "/api/v1/updates/root",
        &operator,
        "application/cose",
        &h.join("root-v2.cose"),
    );
    assert_eq!(status, 403);
    let (status, _) = est.send_file(
        "PUT",
        &artifact,
        &reader,
        "application/octet-stream",
        &h.join("dist/rootfs.swu"),
    );
    assert_eq!(status, 403);

    // The CLI publishes as an operator: it uploads the new image (streamed, checked against
    // the manifest first), then the manifest.
    std::fs::create_dir(h.join("dist2")).unwrap();
    let image2: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(h.join("dist2/rootfs.swu"), &image2).unwrap();
    ok(
        h,
        &[
            "release",
            "sign",
            "--key",
            "release.key",
            "--vendor",
            "acme",
            "--model",
            "AV-CAM-220",
            "--sequence",
            "58",
            "--version",
            "5.8.0",
            "dist2/rootfs.swu",
            "--out",
            "cam-58.cose",
        ],
    );
    let publish = |manifest: &str, dir: &str| {
        let mut cmd = garrison(h);
        cmd.args(["release", "publish", manifest, "--artifacts", dir])
            .env("GARRISON_TOKEN", &operator)
            .env("GARRISON_SERVER", &est.url)
            .env("GARRISON_CA_CERT", &ca);
        run(&mut cmd, None)
    };
    let (success, _, err) = publish("cam-58.cose", "dist");
    assert!(
        !success && err.contains("does not match the manifest"),
        "the wrong file is caught before upload: {err}"
    );
    let (success, out, err) = publish("cam-58.cose", "dist2");
    assert!(success, "{out}{err}");
    assert!(
        out.contains("uploaded rootfs.swu") && out.contains("sequence 58"),
        "{out}"
    );
    let (status, whole) = download(
        &est,
        &format!("/api/v1/updates/artifacts/{}", sha256_hex(&image2)),
        None,
        &h.join("whole2.bin"),
    );
    assert_eq!((status, whole == image2), (200, true));
    let mut cmd = garrison(h);
    cmd.args(["release", "list", "-o", "json"])
        .env("GARRISON_TOKEN", &reader)
        .env("GARRISON_SERVER", &est.url)
        .env("GARRISON_CA_CERT", &ca);
    let (success, out, err) = run(&mut cmd, None);
    assert!(success, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let sequences: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [58, 57], "newest first");

    // Every change is in the audit log.
    let (_, audit) = est.api("GET", "/api/v1/audit?limit=100", None);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "update.root.pin",
        "update.artifact.upload",
        "update.release.publish",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}
