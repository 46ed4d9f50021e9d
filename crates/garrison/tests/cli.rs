//! End-to-end tests of the real binary: `serve` on embedded defaults driven by the CLI and by
//! curl and openssl (third-party clients), refusal of a wrong master key, a used port, and
//! `audit verify` catching a row edited directly in the database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

mod common;

use common::*;

#[test]
fn serve_login_tokens_operators_and_graceful_shutdown() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start(h, &[]);
    let password = server
        .password
        .clone()
        .expect("first start prints the admin password");
    let url = format!("https://{}", server.addr);
    let ca = h.join("garrison-data/ca.pem");
    assert!(
        std::fs::read_to_string(h.join("cfg/garrison/master.key"))
            .unwrap()
            .trim()
            .len()
            == 44
    );

    // curl, trusting only Garrison's CA: probes are open, the API is not.
    let (ok, body, _) = run(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/healthz")),
        None,
    );
    assert!(ok && body.contains("ok"), "{body}");
    let (_, code, _) = run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/api/v1/operators")),
        None,
    );
    assert_eq!(code, "401");

    let (ok, out, err) = run(
        garrison(h)
            .args(["login", "--server", &url, "--password-stdin", "--ca-cert"])
            .arg(&ca),
        Some(&password),
    );
    assert!(ok, "login failed: {out}{err}");
    let (ok, out, err) = run(
        garrison(h).args([
            "token", "create", "--role", "analyst", "--name", "grafana", "-o", "json",
        ]),
        None,
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["info"]["role"], "analyst");

    // The new token works with curl and carries only analyst rights.
    assert_eq!(curl_status(&ca, &token, &format!("{url}/metrics")), "200");
    assert_eq!(
        curl_status(&ca, &token, &format!("{url}/api/v1/audit")),
        "403"
    );

    let (ok, out, err) = run(
        garrison(h).args(["operator", "add", "bob", "--role", "auditor"]),
        None,
    );
    assert!(ok && out.contains("Initial password"), "{out}{err}");
    let (ok, out, _) = run(garrison(h).args(["operator", "list", "-o", "json"]), None);
    assert!(ok);
    let ops: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ops.as_array().unwrap().len(), 2);
    let (ok, out, _) = run(garrison(h).args(["token", "list"]), None);
    assert!(ok && out.contains("grafana"), "{out}");
    let (ok, _, err) = run(garrison(h).args(["operator", "disable", "admin"]), None);
    assert!(
        !ok && err.contains("cannot disable your own account"),
        "{err}"
    );

    // TLS 1.1 is refused; TLS 1.2 works.
    let (ok, _, _) = run(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &server.addr,
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ]),
        Some(""),
    );
    assert!(!ok, "TLS 1.1 must be refused");
    let (ok, _, _) = run(
        Command::new("openssl")
            .args(["s_client", "-connect", &server.addr, "-tls1_2", "-CAfile"])
            .arg(&ca),
        Some(""),
    );
    assert!(ok, "TLS 1.2 must work");

    // A second server on the same port fails clearly (separate data directory).
    let other = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        garrison(other.path()).args(["serve", "--listen", &server.addr]),
        None,
    );
    assert!(!ok && err.contains("already in use"), "{err}");
    // A second server on the same data directory fails clearly too.
    let (ok, _, err) = run(garrison(h).args(["serve", "--listen", "127.0.0.1:0"]), None);
    assert!(
        !ok && err.contains("another garrison server is using the data directory"),
        "{err}"
    );

    // SIGTERM: graceful stop, exit 0, and the audit chain is intact afterwards.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_exit(&mut server.child);
    assert!(status.success(), "serve exited with {status:?}");
    let (ok, out, err) = run(garrison(h).args(["audit", "verify"]), None);
    assert!(ok && out.contains("Audit chain intact"), "{out}{err}");
}

#[test]
fn wrong_master_key_refuses_to_start_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key_a = "aa".repeat(32);
    let key_b = "bb".repeat(32);
    let (ok, out, err) = run(
        garrison(h)
            .env("GARRISON_MASTER_KEY", &key_a)
            .args(["admin", "init"]),
        None,
    );
    assert!(ok && out.contains("password:"), "{out}{err}");
    let db = h.join("garrison-data/garrison.db");
    let (_, before, _) = run(garrison(h).args(["audit", "verify"]), None);
    let snapshot = std::fs::read(&db).unwrap();

    let (ok, _, err) = run(
        garrison(h)
            .env("GARRISON_MASTER_KEY", &key_b)
            .args(["serve", "--listen", "127.0.0.1:0"]),
        None,
    );
    assert!(!ok, "serve must refuse a wrong key");
    assert!(
        err.contains("not the one this installation was created with")
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        snapshot,
        "the database file must be untouched"
    );
    let (_, after, _) = run(garrison(h).args(["audit", "verify"]), None);
    assert_eq!(before, after);

    // Without any key at all, the sealed installation refuses too.
    let (ok, _, err) = run(garrison(h).args(["admin", "reset-password"]), None);
    assert!(!ok && err.contains("no key file"), "{err}");
    // The right key works.
    let (ok, out, err) = run(
        garrison(h)
            .env("GARRISON_MASTER_KEY", &key_a)
            .args(["admin", "reset-password"]),
        None,
    );
    assert!(ok && out.contains("Password reset"), "{out}{err}");
}

#[test]
fn audit_verify_names_the_row_edited_in_the_database() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = "cc".repeat(32);
    for command in ["init", "reset-password", "reset-password"] {
        let (ok, _, err) = run(
            garrison(h)
                .env("GARRISON_MASTER_KEY", &key)
                .args(["admin", command]),
            None,
        );
        assert!(ok, "{err}");
    }
    let (ok, out, _) = run(garrison(h).args(["audit", "verify"]), None);
    assert!(ok && out.contains("intact"), "{out}");
    let head = out.split("head ").nth(1).unwrap().trim().to_owned();
    let (ok, _, _) = run(
        garrison(h).args(["audit", "verify", "--expect-head", &head]),
        None,
    );
    assert!(ok);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", h.join("garrison-data/garrison.db").display());
        let store = garrison_store::SqliteStore::open(&url).await.unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'operator:mallory' WHERE seq = 2")
            .execute(store.pool())
            .await
            .unwrap();
    });
    let (ok, out, _) = run(garrison(h).args(["audit", "verify"]), None);
    assert!(!ok, "verify must fail on a tampered chain");
    assert!(out.contains("BROKEN at entry 2"), "{out}");
}

#[test]
fn config_defaults_and_bad_config() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (ok, out, _) = run(garrison(h).args(["config", "defaults"]), None);
    assert!(ok && out.contains("listen = \"127.0.0.1:8443\""));
    std::fs::write(h.join("g.toml"), "[api]\nlisten = \"everywhere\"\n").unwrap();
    let (ok, _, err) = run(
        garrison(h).args(["config", "show", "--config", "g.toml"]),
        None,
    );
    assert!(!ok && err.contains("api.listen"), "{err}");
    let (ok, _, err) = run(
        garrison(h)
            .env("GARRISON_API__MAX_BODY_BYTES", "lots")
            .args(["config", "show"]),
        None,
    );
    assert!(
        !ok && err.to_lowercase().contains("api.max_body_bytes"),
        "{err}"
    );
}

#[test]
fn operator_supplied_server_certificate_is_served() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (ok, _, err) = run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .args([
                "-subj",
                "/CN=own.example",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .args(["-keyout", "own.key", "-out", "own.crt"])
            .current_dir(h),
        None,
    );
    assert!(ok, "{err}");
    let server = start_with_env(
        h,
        &[
            ("GARRISON_API__TLS_CERT_FILE", "own.crt"),
            ("GARRISON_API__TLS_KEY_FILE", "own.key"),
        ],
    );
    let url = format!("https://{}/healthz", server.addr);
    let (ok, body, err) = run(
        Command::new("curl")
            .args(["-sS", "--cacert", "own.crt", &url])
            .current_dir(h),
        None,
    );
    assert!(ok && body.contains("ok"), "{body}{err}");
    // Garrison's own CA did not issue this certificate, so trusting it alone fails.
    let (ok, _, _) = run(
        Command::new("curl")
            .args(["-sS", "--cacert", "garrison-data/ca.pem", &url])
            .current_dir(h),
        None,
    );
    assert!(!ok);
}

#[test]
fn a_request_in_flight_at_sigterm_completes() {
    use std::io::Read;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut server = start(h, &[]);
    let password = server.password.clone().unwrap();
    let body = format!("{{\"username\":\"admin\",\"password\":\"{password}\"}}");
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-no_ign_eof",
            "-connect",
            &server.addr,
            "-CAfile",
        ])
        .arg(h.join("garrison-data/ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let (first, rest) = body.split_at(10);
    write!(
        stdin,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The request is half sent: now ask the server to stop.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(rest.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut response = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut response)
        .unwrap();
    let _ = client.wait();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request was cut off: {response:?}"
    );
    assert!(response.contains("\"token\""));
    assert!(wait_exit(&mut server.child).success());
}
