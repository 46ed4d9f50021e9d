//! Device enrollment end to end with stock tools only: `openssl req` makes the keys and CSRs
//! (the private keys never leave this test's directory), `curl` speaks EST (RFC 7030) to
//! `garrison serve`, and `openssl` decodes and verifies what comes back — certificates, the CA
//! set, and the CRL after a revocation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{ops::Not, process::Command};

use serde_json::json;

mod common;

use common::*;

#[test]
fn est_enrollment_with_tokens_approval_claims_renewal_and_revocation() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start(h, &[]);
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let url = est.url.clone();

    // /cacerts: the issuing and root CA as PKCS#7, which openssl decodes.
    let (_, out, _) = run(
        Command::new("curl")
            .args(["-sS", "-i", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/.well-known/est/cacerts")),
        None,
    );
    assert!(
        out.to_lowercase()
            .contains("content-type: application/pkcs7-mime"),
        "{out}"
    );
    let chain = est.certs_from(&out, "cacerts");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    assert!(chain.contains("Issuing CA") && chain.contains("Root CA"));
    std::fs::write(h.join("chain.pem"), &chain).unwrap();

    // A bootstrap token for one device, used once.
    let (status, created) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "dev-*", "max_uses": 1, "expires_in": "1h"})),
    );
    assert_eq!(status, 201, "{created}");
    let bootstrap = created["token"].as_str().unwrap().to_owned();
    let basic = format!("dev-1:{bootstrap}");

    // Bad input first: each refused with a reason, the token untouched.
    let garbage = h.join("garbage.b64");
    std::fs::write(&garbage, "bm90IGEgY3Ny\n").unwrap();
    let (status, text) = est.enroll("simpleenroll", &garbage, &["-u", &basic]);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a PKCS#10"), "{text}");
    let huge = h.join("huge.b64");
    std::fs::write(&huge, "A".repeat(40_000)).unwrap();
    let (status, text) = est.enroll("simpleenroll", &huge, &["-u", &basic]);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("larger than"), "{text}");
    let other = est.csr("other", "cam-9");
    let (status, text) = est.enroll("simpleenroll", &other, &["-u", &basic]);
    assert_eq!(status, 403, "CSR CN outside the token's pattern: {text}");
    assert!(text.contains("dev-*"), "{text}");
    let dev1 = est.csr("dev1", "dev-1");
    let (status, text) = est.enroll(
        "simpleenroll",
        &dev1,
        &["-u", "dev-1:gbt_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000"],
    );
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_lowercase().contains("www-authenticate: basic"),
        "{text}"
    );

    // The real enrollment: a certificate for dev-1 chaining to the root.
    let (status, text) = est.enroll("simpleenroll", &dev1, &["-u", &basic]);
    assert_eq!(status, 200, "{text}");
    std::fs::write(h.join("dev1.pem"), est.certs_from(&text, "dev1-cert")).unwrap();
    assert!(
        est.verify("dev1.pem").contains("OK"),
        "{}",
        est.verify("dev1.pem")
    );
    let dev1_subject = subject(&h.join("dev1.pem"));
    assert!(dev1_subject.contains("CN=dev-1") || dev1_subject.contains("CN = dev-1"));
    let serial = dev1_subject
        .split("serial=")
        .nth(1)
        .unwrap()
        .trim()
        .to_lowercase();

    // The token is spent.
    let dev2 = est.csr("dev2", "dev-2");
    let (status, text) = est.enroll(
        "simpleenroll",
        &dev2,
        &["-u", &format!("dev-2:{bootstrap}")],
    );
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("used up"), "{text}");

    // A token may shorten the certificates it enrolls, never lengthen them.
    let (status, body) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "trial-1", "certificate_validity": "100d"})),
    );
    assert_eq!(status, 400, "longer than pki.device_validity: {body}");
    assert_eq!(body["field"], "certificate_validity", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("pki.device_validity"),
        "{body}"
    );
    let (status, body) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "trial-1", "certificate_validity": "10m"})),
    );
    assert_eq!(status, 400, "shorter than an hour: {body}");
    let (status, created) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "trial-1", "certificate_validity": "2h"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["info"]["certificate_validity"], "2h", "{created}");
    let trial = est.csr("trial1", "trial-1");
    let basic_trial = format!("trial-1:{}", created["token"].as_str().unwrap());
    let (status, text) = est.enroll("simpleenroll", &trial, &["-u", &basic_trial]);
    assert_eq!(status, 200, "{text}");
    std::fs::write(h.join("trial1.pem"), est.certs_from(&text, "trial1-cert")).unwrap();
    let expires_within = |seconds: u32| {
        Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &seconds.to_string(), "-in"])
            .arg(h.join("trial1.pem"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
            .not()
    };
    assert!(expires_within(2 * 3600 + 120), "valid for about two hours");
    assert!(!expires_within(2 * 3600 - 120), "valid for about two hours");

    // Renewal with the current certificate as the TLS client certificate.
    let renew = est.csr("dev1b", "dev-1");
    let cert_args = [
        "--cert",
        h.join("dev1.pem").to_str().unwrap(),
        "--key",
        h.join("dev1.key").to_str().unwrap(),
    ]
    .map(str::to_owned);
    let cert_args: Vec<&str> = cert_args.iter().map(String::as_str).collect();
    let (status, text_renewed) = est.enroll("simplereenroll", &renew, &cert_args);
    assert_eq!(status, 200, "{text_renewed}");
    let (status, text) = est.enroll("simplereenroll", &dev2, &cert_args);
    assert_eq!(
        status, 403,
        "dev-1's certificate cannot renew dev-2: {text}"
    );
    let (status, text) = est.enroll("simplereenroll", &renew, &[]);
    assert_eq!(status, 401, "renewal without a certificate: {text}");

    // Rotation: after an operator asks, the next renewal retires the certificate it used.
    std::fs::write(
        h.join("dev1b.pem"),
        est.certs_from(&text_renewed, "dev1b-cert"),
    )
    .unwrap();
    let (status, device) = est.api("POST", "/api/v1/devices/dev-1/rotate", Some(json!({})));
    assert_eq!(status, 200, "{device}");
    assert!(device["rotation_requested_at"].is_string(), "{device}");
    let renewed_args = [
        "--cert",
        h.join("dev1b.pem").to_str().unwrap(),
        "--key",
        h.join("dev1b.key").to_str().unwrap(),
    ]
    .map(str::to_owned);
    let renewed_args: Vec<&str> = renewed_args.iter().map(String::as_str).collect();
    let rotated = est.csr("dev1r", "dev-1");
    let (status, text) = est.enroll("simplereenroll", &rotated, &renewed_args);
    assert_eq!(status, 200, "{text}");
    let dev1b_serial = subject(&h.join("dev1b.pem"))
        .split("serial=")
        .nth(1)
        .unwrap()
        .trim()
        .to_lowercase();
    let (_, old) = est.api("GET", &format!("/api/v1/certificates/{dev1b_serial}"), None);
    assert_eq!(old["status"], "revoked", "{old}");
    assert_eq!(old["revocation_reason"], "superseded", "{old}");
    let (_, device) = est.api("GET", "/api/v1/devices/dev-1", None);
    assert!(device["rotation_requested_at"].is_null(), "{device}");
    let (status, text) = est.enroll("simplereenroll", &rotated, &renewed_args);
    assert_eq!(
        status, 403,
        "the superseded certificate cannot renew again: {text}"
    );

    // The approval queue: 202 + Retry-After until an operator approves.
    let cam = est.csr("cam1", "cam-1");
    let (status, text) = est.enroll("simpleenroll", &cam, &[]);
    assert_eq!(status, 202, "{text}");
    assert!(text.to_lowercase().contains("retry-after: 60"), "{text}");
    let (status, queue) = est.api("GET", "/api/v1/enrollment/requests?status=pending", None);
    assert_eq!(status, 200);
    assert_eq!(queue["items"][0]["device_id"], "cam-1", "{queue}");
    let (status, _) = est.api(
        "POST",
        "/api/v1/enrollment/requests/cam-1/approve",
        Some(json!({})),
    );
    assert_eq!(status, 200);
    let (status, text) = est.enroll("simpleenroll", &cam, &[]);
    assert_eq!(status, 200, "{text}");

    // A claim certificate enrolls a new device, within its allowance.
    let claim_args = est.claim("factory-a", 1);
    let claim_args: Vec<&str> = claim_args.iter().map(String::as_str).collect();
    let plug = est.csr("plug1", "plug-1");
    let (status, text) = est.enroll("simpleenroll", &plug, &claim_args);
    assert_eq!(status, 200, "{text}");
    let plug2 = est.csr("plug2", "plug-2");
    let (status, text) = est.enroll("simpleenroll", &plug2, &claim_args);
    assert_eq!(status, 403, "{text}");

    // Revocation: listed in the CRL at once, and the certificate can no longer renew.
    let (status, revoked) = est.api(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(json!({"reason": "key-compromise"})),
    );
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let crl = h.join("crl.der");
    let (ok, _, err) = run(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .arg("-o")
            .arg(&crl)
            .arg(format!("{url}/pki/crl")),
        None,
    );
    assert!(ok, "{err}");
    let (ok, text, err) = run(
        Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&crl),
        None,
    );
    assert!(ok, "{err}");
    assert!(
        text.to_lowercase().replace(':', "").contains(&serial),
        "{serial} not in {text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    let again = est.csr("dev1c", "dev-1");
    let (status, text) = est.enroll("simplereenroll", &again, &cert_args);
    assert_eq!(status, 403, "{text}");

    let (status, expiring) = est.api(
        "GET",
        "/api/v1/certificates?expiring_within=100d&kind=device",
        None,
    );
    assert_eq!(status, 200);
    let subjects: Vec<&str> = expiring["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects.len(),
        4,
        "dev-1 (rotated), cam-1, plug-1, trial-1: {expiring}"
    );
    let (status, soon) = est.api(
        "GET",
        "/api/v1/certificates?expiring_within=1d&kind=device",
        None,
    );
    assert_eq!(status, 200);
    let soon: Vec<&str> = soon["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        soon,
        ["trial-1"],
        "only the trial token's short certificate"
    );
    let (status, _) = est.api("GET", "/api/v1/certificates?expiring_within=30d", None);
    assert_eq!(status, 200);
    let (status, audit) = est.api("GET", "/api/v1/audit?limit=100", None);
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for needed in [
        "certificate.issue",
        "certificate.revoke",
        "bootstrap_token.create",
        "claim.create",
        "enrollment.request",
        "enrollment.approve",
    ] {
        assert!(
            actions.contains(&needed),
            "{needed} not audited: {actions:?}"
        );
    }
}

#[test]
fn offline_root_ed25519_ca_issues_devices_that_connect() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let root_key = h.join("root.key");
    let passphrase = "a long root passphrase";
    let (ok, out, err) = run(
        garrison(h).args([
            "ca",
            "init",
            "--offline-root",
            root_key.to_str().unwrap(),
            "--passphrase-stdin",
            "--algorithm",
            "ed25519",
        ]),
        Some(passphrase),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("NOT stored"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&root_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&root_key).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    // openssl opens it with the passphrase, and it is the key of the root in ca.pem.
    let ca = h.join("garrison-data/ca.pem");
    let (ok, key_pub, err) = run(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-passin"])
            .arg(format!("pass:{passphrase}"))
            .arg("-in")
            .arg(&root_key),
        None,
    );
    assert!(ok, "{err}");
    let (_, cert_pub, _) = run(
        Command::new("openssl")
            .args(["x509", "-pubkey", "-noout", "-in"])
            .arg(&ca),
        None,
    );
    assert_eq!(key_pub, cert_pub);
    let (ok, _, _) = run(
        Command::new("openssl")
            .args(["pkey", "-passin", "pass:wrong-passphrase", "-in"])
            .arg(&root_key),
        None,
    );
    assert!(!ok, "a wrong passphrase opens nothing");
    let (_, cert_text, _) = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&ca),
        None,
    );
    assert!(cert_text.contains("ED25519"), "{cert_text}");
    let (ok, _, err) = run(garrison(h).args(["ca", "init"]), None);
    assert!(!ok && err.contains("already has a CA"), "{err}");

    // The server runs on that CA: a device enrolls and speaks MQTT with stock clients.
    let server = start(h, &[]);
    let est = est_for(&server, h, &ca);
    let (status, created) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "ed-1"})),
    );
    assert_eq!(status, 201, "{created}");
    let csr = est.csr("ed-1", "ed-1");
    let (status, text) = est.enroll(
        "simpleenroll",
        &csr,
        &[
            "-u",
            &format!("ed-1:{}", created["token"].as_str().unwrap()),
        ],
    );
    assert_eq!(status, 200, "{text}");
    std::fs::write(h.join("ed-1.pem"), est.certs_from(&text, "ed-1-cert")).unwrap();
    let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let out = Command::new("mosquitto_pub")
        .args(["-h", host, "-p", port, "--cafile"])
        .arg(&ca)
        .arg("--cert")
        .arg(h.join("ed-1.pem"))
        .arg("--key")
        .arg(h.join("ed-1.key"))
        .args([
            "-i",
            "ed-1",
            "-t",
            "garrison/v1/d/ed-1/birth",
            "-m",
            "{}",
            "-q",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, audit) = est.api("GET", "/api/v1/audit?limit=200", None);
    let created_ca = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pki.ca_create")
        .unwrap()
        .clone();
    assert!(
        created_ca.to_string().contains("root_key_offline"),
        "{created_ca}"
    );
}

#[test]
fn a_full_approval_queue_turns_new_devices_away_but_not_known_ones() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(h, &[("GARRISON_ENROLLMENT__MAX_PENDING_REQUESTS", "1")]);
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let first = est.csr("cam-a", "cam-a");
    let (status, text) = est.enroll("simpleenroll", &first, &[]);
    assert_eq!(status, 202, "{text}");
    let second = est.csr("cam-b", "cam-b");
    let (status, text) = est.enroll("simpleenroll", &second, &[]);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("approval queue is full"), "{text}");
    assert!(text.to_lowercase().contains("retry-after: 300"), "{text}");
    let (status, text) = est.enroll("simpleenroll", &first, &[]);
    assert_eq!(
        status, 202,
        "a device already waiting may ask again: {text}"
    );
    let (_, queue) = est.api("GET", "/api/v1/enrollment/requests", None);
    assert_eq!(queue["items"].as_array().unwrap().len(), 1, "{queue}");
}
