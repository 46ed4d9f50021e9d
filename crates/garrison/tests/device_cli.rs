//! The `device`, `cert` and `enroll` commands end to end: the real binary as the operator's
//! CLI against `garrison serve`, with devices enrolling over EST with openssl and curl.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use serde_json::Value;

mod common;

use common::*;

/// Runs `garrison ARGS` with the saved profile; panics with its output unless it succeeds.
fn cli(home: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(garrison(home).args(args), None);
    assert!(ok, "garrison {args:?} failed:\n{out}\n{err}");
    out
}

/// Runs `garrison ARGS -o json` and parses what it prints.
fn cli_json(home: &Path, args: &[&str]) -> Value {
    let out = cli(home, &[args, &["-o", "json"]].concat());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("garrison {args:?}: {e}:\n{out}"))
}

/// Runs `garrison ARGS`, which must fail; returns its standard error.
fn cli_fails(home: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(garrison(home).args(args), None);
    assert!(!ok, "garrison {args:?} should have failed:\n{out}\n{err}");
    err
}

fn login(server: &Server, home: &Path, ca: &Path) {
    let url = format!("https://{}", server.addr);
    let (ok, out, err) = run(
        garrison(home)
            .args(["login", "--server", &url, "--password-stdin", "--ca-cert"])
            .arg(ca),
        server.password.as_deref(),
    );
    assert!(ok, "login failed: {out}{err}");
}

fn field<'a>(items: &'a Value, key: &str, value: &str) -> Vec<&'a Value> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .filter(|i| i[key] == value)
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn device_cert_and_enroll_commands() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(
        h,
        &[("GARRISON_ENROLLMENT__DEVICE_CERT_VALIDITY", "90days")],
    );
    let ca = h.join("garrison-data/ca.pem");
    login(&server, h, &ca);
    let est = est_for(&server, h, &ca);

    // Nothing yet, in either format.
    assert_eq!(cli_json(h, &["device", "list"]), Value::Array(vec![]));
    assert!(cli(h, &["device", "list"]).contains("(none)"));

    // A bootstrap token for dev-*, two uses; the table form says how a device uses it.
    let created = cli_json(
        h,
        &[
            "enroll",
            "token",
            "create",
            "dev-*",
            "--uses",
            "2",
            "--expires-in",
            "1h",
        ],
    );
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gbt_"), "{created}");
    assert_eq!(created["info"]["device_pattern"], "dev-*");
    assert_eq!(created["info"]["max_uses"], 2);
    let token_id = created["info"]["id"].as_str().unwrap().to_owned();
    let shown = cli(h, &["enroll", "token", "create", "solo-1"]);
    let solo = shown
        .split_whitespace()
        .find(|w| w.starts_with("gbt_"))
        .unwrap_or_else(|| panic!("no token printed:\n{shown}"));
    assert!(
        shown.contains(&format!("-u solo-1:{solo}"))
            && shown.contains(&format!(
                "https://{}/.well-known/est/simpleenroll",
                server.addr
            ))
            && shown.contains("not shown again"),
        "{shown}"
    );
    // Refused by clap before any request: a bad duration.
    let err = cli_fails(
        h,
        &["enroll", "token", "create", "dev-*", "--expires-in", "soon"],
    );
    assert!(err.contains("--expires-in"), "{err}");

    // dev-1 enrolls over EST with the token.
    let csr = est.csr("dev1", "dev-1");
    let (status, text) = est.enroll("simpleenroll", &csr, &["-u", &format!("dev-1:{token}")]);
    assert_eq!(status, 200, "{text}");

    // The CLI sees the device and its certificate.
    let devices = cli_json(h, &["device", "list"]);
    let dev = field(&devices, "id", "dev-1");
    assert_eq!(dev.len(), 1, "{devices}");
    assert_eq!(dev[0]["enrolled_via"], "token");
    assert_eq!(dev[0]["quarantined"], false);
    let serial = dev[0]["current_serial"].as_str().unwrap().to_owned();
    let table = cli(h, &["device", "list"]);
    assert!(
        table.contains("dev-1") && table.contains("RISK") && table.contains("ONLINE"),
        "{table}"
    );
    let certs = cli_json(h, &["cert", "list", "--device", "dev-1"]);
    assert_eq!(certs.as_array().unwrap().len(), 1, "{certs}");
    assert_eq!(certs[0]["serial"], serial.as_str());
    assert_eq!(certs[0]["kind"], "device");
    assert_eq!(certs[0]["status"], "valid");
    let table = cli(h, &["cert", "list"]);
    for column in ["SERIAL", "SUBJECT", "KIND", "STATUS", "NOT_AFTER"] {
        assert!(table.contains(column), "{table}");
    }
    assert!(
        table.contains(&serial) && table.contains("dev-1"),
        "{table}"
    );
    assert!(
        cli_json(h, &["cert", "list", "--kind", "claim"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Expiry filter: a 90-day certificate expires within 100 days, not within one.
    let soon = cli_json(h, &["cert", "list", "--expiring-within", "100d"]);
    assert_eq!(field(&soon, "serial", &serial).len(), 1, "{soon}");
    let not_soon = cli_json(h, &["cert", "list", "--expiring-within", "1d"]);
    assert!(field(&not_soon, "serial", &serial).is_empty(), "{not_soon}");

    // `device show` includes the broker's view of its session.
    let shown = cli_json(h, &["device", "show", "dev-1"]);
    assert_eq!(shown["id"], "dev-1");
    assert_eq!(shown["session"]["connected"], false, "{shown}");
    let shown = cli(h, &["device", "show", "dev-1"]);
    assert!(
        shown.contains("MQTT session:") && shown.contains("connected"),
        "{shown}"
    );
    let err = cli_fails(h, &["device", "show", "dev-404"]);
    assert!(err.contains("404"), "{err}");
    let err = cli_fails(h, &["device", "show", "bad/id"]);
    assert!(err.contains("device id"), "{err}");

    // Quarantine and release.
    let out = cli(h, &["device", "quarantine", "dev-1"]);
    assert!(out.contains("quarantined"), "{out}");
    assert_eq!(
        cli_json(h, &["device", "show", "dev-1"])["quarantined"],
        true
    );
    cli(h, &["device", "release", "dev-1"]);
    assert_eq!(
        cli_json(h, &["device", "show", "dev-1"])["quarantined"],
        false
    );
    let out = cli(h, &["device", "rotate", "dev-1"]);
    assert!(out.contains("rotate its key"), "{out}");
    assert!(
        cli_json(h, &["device", "show", "dev-1"])["rotation_requested_at"].is_string(),
        "rotation is recorded"
    );

    // A message to a device: the payload must be JSON, the channel cmd or update.
    let err = cli_fails(
        h,
        &[
            "device",
            "send",
            "dev-1",
            "--channel",
            "cmd",
            "--payload",
            "{oops",
        ],
    );
    assert!(err.contains("not valid JSON"), "{err}");
    let err = cli_fails(
        h,
        &[
            "device",
            "send",
            "dev-1",
            "--channel",
            "telemetry",
            "--payload",
            "{}",
        ],
    );
    assert!(err.contains("possible values"), "{err}");
    let out = cli(
        h,
        &[
            "device",
            "send",
            "dev-1",
            "--channel",
            "cmd",
            "--payload",
            r#"{"schema":"reboot/1"}"#,
        ],
    );
    assert!(out.contains("dev-1") && out.contains("cmd"), "{out}");

    // cert show: details without the PEM; --pem prints only the certificate.
    let shown = cli_json(h, &["cert", "show", &serial]);
    assert_eq!(shown["subject"], "dev-1");
    assert!(shown.get("pem").is_none(), "{shown}");
    let pem = cli(h, &["cert", "show", &serial, "--pem"]);
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----")
            && pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
    std::fs::write(h.join("dev1.pem"), &pem).unwrap();
    assert!(subject(&h.join("dev1.pem")).contains("dev-1"));

    // Revocation with a reason; an unknown reason is refused with the list.
    let err = cli_fails(h, &["cert", "revoke", &serial, "--reason", "bored"]);
    assert!(
        err.contains("key-compromise") && err.contains("cessation-of-operation"),
        "{err}"
    );
    let out = cli(
        h,
        &["cert", "revoke", &serial, "--reason", "key-compromise"],
    );
    assert!(out.contains(&serial), "{out}");
    let shown = cli_json(h, &["cert", "show", &serial]);
    assert_eq!(shown["status"], "revoked", "{shown}");
    assert_eq!(shown["revocation_reason"], "key-compromise", "{shown}");
    let table = cli(h, &["cert", "show", &serial]);
    assert!(table.contains("revoked"), "{table}");
    let err = cli_fails(h, &["cert", "revoke", &serial]);
    assert!(err.contains("409"), "{err}");

    // Bootstrap tokens: listed with their use count, then revoked.
    let tokens = cli_json(h, &["enroll", "token", "list"]);
    let t = field(&tokens, "id", &token_id);
    assert_eq!(t.len(), 1, "{tokens}");
    assert_eq!(t[0]["uses"], 1);
    assert_eq!(t[0]["status"], "active");
    assert!(
        !tokens.to_string().contains(&token),
        "secrets are never listed"
    );
    cli(h, &["enroll", "token", "revoke", &token_id]);
    let tokens = cli_json(h, &["enroll", "token", "list"]);
    assert_eq!(field(&tokens, "id", &token_id)[0]["status"], "revoked");
    let csr2 = est.csr("dev2", "dev-2");
    let (status, text) = est.enroll("simpleenroll", &csr2, &["-u", &format!("dev-2:{token}")]);
    assert_eq!(status, 403, "a revoked token enrolls nothing: {text}");
    assert!(text.contains("revoked"), "{text}");

    // Claims: certificate and key written once, the key 0600; never overwritten.
    let out_dir = h.join("claims");
    let out = cli(
        h,
        &[
            "enroll",
            "claim",
            "create",
            "factory-a",
            "--uses",
            "5",
            "--valid-for",
            "30d",
            "--out-dir",
        ]
        .into_iter()
        .chain([out_dir.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    let key_path = out_dir.join("factory-a.key");
    let cert_path = out_dir.join("factory-a.pem");
    assert!(
        out.contains(key_path.to_str().unwrap()) && out.contains(cert_path.to_str().unwrap()),
        "{out}"
    );
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(key.contains("PRIVATE KEY"), "{key}");
    assert!(
        std::fs::read_to_string(&cert_path)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    #[cfg(unix)]
    assert_eq!(mode(&key_path), 0o600);
    assert!(subject(&cert_path).contains("claim:factory-a"));
    let err = cli_fails(
        h,
        &["enroll", "claim", "create", "factory-a", "--out-dir"]
            .into_iter()
            .chain([out_dir.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains("already exists") && err.contains("not overwriting"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&key_path).unwrap(),
        key,
        "key untouched"
    );
    // Refused before the server is asked: no claim is created whose key would be lost.
    std::fs::write(out_dir.join("factory-b.pem"), "keep me").unwrap();
    let err = cli_fails(
        h,
        &["enroll", "claim", "create", "factory-b", "--out-dir"]
            .into_iter()
            .chain([out_dir.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains("factory-b.pem") && err.contains("not overwriting"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("factory-b.pem")).unwrap(),
        "keep me"
    );
    assert!(!out_dir.join("factory-b.key").exists());
    let claims = cli_json(h, &["enroll", "claim", "list"]);
    assert_eq!(claims.as_array().unwrap().len(), 1, "{claims}");
    assert_eq!(claims[0]["name"], "factory-a");
    assert_eq!(claims[0]["max_uses"], 5);
    let claim_certs = cli_json(h, &["cert", "list", "--kind", "claim"]);
    assert_eq!(claim_certs[0]["subject"], "factory-a", "{claim_certs}");
    // The claim enrolls a device with its certificate as the TLS client certificate.
    let csr3 = est.csr("dev3", "dev-3");
    let (status, text) = est.enroll(
        "simpleenroll",
        &csr3,
        &[
            "--cert",
            cert_path.to_str().unwrap(),
            "--key",
            key_path.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 200, "{text}");
    let devices = cli_json(h, &["device", "list"]);
    assert_eq!(field(&devices, "id", "dev-3")[0]["enrolled_via"], "claim");

    // The approval queue: a request with no credential waits until approved.
    let cam = est.csr("cam1", "cam-1");
    let (status, text) = est.enroll("simpleenroll", &cam, &[]);
    assert_eq!(status, 202, "{text}");
    let pending = cli_json(h, &["enroll", "requests", "--status", "pending"]);
    assert_eq!(field(&pending, "device_id", "cam-1").len(), 1, "{pending}");
    let table = cli(h, &["enroll", "requests"]);
    assert!(
        table.contains("cam-1") && table.contains("pending"),
        "{table}"
    );
    let out = cli(h, &["enroll", "approve", "cam-1"]);
    assert!(out.contains("Approved"), "{out}");
    let approved = cli_json(h, &["enroll", "requests", "--status", "approved"]);
    assert_eq!(
        field(&approved, "device_id", "cam-1").len(),
        1,
        "{approved}"
    );
    assert!(
        field(
            &cli_json(h, &["enroll", "requests", "--status", "pending"]),
            "device_id",
            "cam-1"
        )
        .is_empty()
    );
    let (status, text) = est.enroll("simpleenroll", &cam, &[]);
    assert_eq!(status, 200, "approved, so issued: {text}");
    let issued = cli_json(h, &["enroll", "requests", "--status", "issued"]);
    assert_eq!(field(&issued, "device_id", "cam-1").len(), 1, "{issued}");
    let err = cli_fails(h, &["enroll", "approve", "cam-1"]);
    assert!(err.contains("409"), "approving twice: {err}");

    // Rejection, and pre-authorisation.
    let cam2 = est.csr("cam2", "cam-2");
    let (status, text) = est.enroll("simpleenroll", &cam2, &[]);
    assert_eq!(status, 202, "{text}");
    cli(h, &["enroll", "reject", "cam-2"]);
    let rejected = cli_json(h, &["enroll", "requests", "--status", "rejected"]);
    assert_eq!(
        field(&rejected, "device_id", "cam-2").len(),
        1,
        "{rejected}"
    );
    let (status, text) = est.enroll("simpleenroll", &cam2, &[]);
    assert_eq!(status, 403, "rejected: {text}");
    let out = cli(h, &["enroll", "preauthorize", "cam-3"]);
    assert!(out.contains("cam-3"), "{out}");
    let cam3 = est.csr("cam3", "cam-3");
    let (status, text) = est.enroll("simpleenroll", &cam3, &[]);
    assert_eq!(status, 200, "pre-authorised: {text}");
    let err = cli_fails(
        h,
        &[
            "enroll",
            "preauthorize",
            "cam-4",
            "--public-key-sha256",
            "xyz",
        ],
    );
    assert!(err.contains("public_key_sha256"), "{err}");

    // Every change went through the audit log as the logged-in admin.
    let (_, audit) = est.api("GET", "/api/v1/audit?limit=500", None);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "enrollment.approve",
        "enrollment.reject",
        "enrollment.preauthorize",
        "bootstrap_token.revoke",
        "device.message",
    ] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}

#[test]
fn device_show_without_broker_shows_the_device() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(h, &[("GARRISON_BROKER__ENABLED", "false")]);
    let ca = h.join("garrison-data/ca.pem");
    login(&server, h, &ca);
    let est = est_for(&server, h, &ca);

    cli(h, &["enroll", "preauthorize", "lonely-1"]);
    let csr = est.csr("lonely", "lonely-1");
    let (status, text) = est.enroll("simpleenroll", &csr, &[]);
    assert_eq!(status, 200, "{text}");

    let shown = cli_json(h, &["device", "show", "lonely-1"]);
    assert_eq!(shown["id"], "lonely-1");
    assert_eq!(shown["enrolled_via"], "approval", "{shown}");
    assert!(shown["session"].is_null(), "{shown}");
    let table = cli(h, &["device", "show", "lonely-1"]);
    assert!(
        table.contains("lonely-1") && table.contains("does not run the broker"),
        "{table}"
    );
    // Sending needs the broker: a clear error, not a crash.
    let err = cli_fails(
        h,
        &[
            "device",
            "send",
            "lonely-1",
            "--channel",
            "update",
            "--payload",
            "{}",
        ],
    );
    assert!(err.contains("503") && err.contains("broker"), "{err}");
    // Without a profile, a clear hint.
    let (ok, _, err) = run(
        garrison(h).args(["device", "list", "--profile", "nope"]),
        None,
    );
    assert!(!ok && err.contains("garrison login"), "{err}");
}
