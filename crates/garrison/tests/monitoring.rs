//! Monitoring and response end to end: a simulated device (real EST, real MQTT) plays the Mirai
//! scenario; the built-in rules raise alerts within two seconds of the publish; the built-in
//! playbook quarantines the device; its next publishes (from stock `mosquitto_pub`, too) are
//! refused; the audit log shows alert → action → enforcement in that order; undo lifts it.
//! A second test drives playbooks from a file: dry run, an approval gate and a signed webhook.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod common;

use common::*;

fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sim(home: &Path, server: &Server, est: &Est<'_>, devices: u32, scenario: &str) -> Guard {
    sim_reporting_every(home, server, est, devices, scenario, "5s")
}

fn sim_reporting_every(
    home: &Path,
    server: &Server,
    est: &Est<'_>,
    devices: u32,
    scenario: &str,
    telemetry_interval: &str,
) -> Guard {
    let (status, token) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "sim-*", "max_uses": 100})),
    );
    assert_eq!(status, 201, "{token}");
    Guard(
        garrison(home)
            .args([
                "sim",
                "--devices",
                &devices.to_string(),
                "--server",
                &est.url,
            ])
            .args(["--mqtt", server.mqtt.as_deref().unwrap(), "--ca-cert"])
            .arg(est.ca)
            .args(["--token", token["token"].as_str().unwrap(), "--state-dir"])
            .arg(home.join("sim"))
            .args([
                "--telemetry-interval",
                telemetry_interval,
                "--weak-share",
                "0",
            ])
            .args(
                Some(scenario)
                    .filter(|s| !s.is_empty())
                    .map(|s| ["--scenario", s])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(home.join("sim.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    )
}

fn alerts(est: &Est<'_>, device: &str) -> Vec<Value> {
    let (status, page) = est.api(
        "GET",
        &format!("/api/v1/alerts?device={device}&limit=500"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn audit_entries(est: &Est<'_>) -> Vec<Value> {
    let (status, page) = est.api("GET", "/api/v1/audit?limit=500", None);
    assert_eq!(status, 200, "{page}");
    let mut items = page["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

fn rfc3339_ms(text: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", text, "+%s%3N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `mosquitto_pub` as `device` (MQTT 5, so a refusal is a reason code, not a dropped link).
fn publish(server: &Server, ca: &Path, dir: &Path, device: &str, channel: &str) -> (bool, String) {
    let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let out = Command::new("mosquitto_pub")
        .args(["-h", host, "-p", port, "-V", "mqttv5", "--cafile"])
        .arg(ca)
        .arg("--cert")
        .arg(dir.join(format!("{device}.pem")))
        .arg("--key")
        .arg(dir.join(format!("{device}.key")))
        .args(["-i", device, "-q", "1", "-t"])
        .arg(format!("garrison/v1/d/{device}/{channel}"))
        .args(["-m", r#"{"schema":1,"at":1,"interval_ms":1000}"#])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn mirai_is_alerted_quarantined_enforced_and_audited_in_order() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start_with_env(
        home,
        &[("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0")],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let victim = "sim-cam-0000";
    let _sim = sim(home, &server, &est, 3, &format!("mirai:{victim}@6s"));

    // The infection chain is a critical alert, tagged with ATT&CK (Enterprise and ICS).
    let chain = wait_for("the Mirai chain alert", Duration::from_secs(90), || {
        alerts(&est, victim).into_iter().find(|a| {
            a["title"]
                .as_str()
                .unwrap()
                .contains("Mirai-like infection chain")
        })
    });
    assert_eq!(chain["severity"], "critical", "{chain}");
    let techniques: Vec<&str> = chain["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(techniques.contains(&"T1105"), "{techniques:?}");
    assert!(
        techniques.iter().any(|t| t.starts_with("T08")),
        "ICS: {techniques:?}"
    );
    let titles: Vec<String> = alerts(&est, victim)
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect();
    for expected in ["Telnet brute force", "Outbound telnet scanning"] {
        assert!(
            titles.iter().any(|t| t.starts_with(expected)),
            "{expected} missing from {titles:?}"
        );
    }
    // Grouped, the infected device is one incident, the worst first, its techniques together.
    let (status, incidents) = est.api("GET", "/api/v1/incidents", None);
    assert_eq!(status, 200, "{incidents}");
    let first = &incidents[0];
    assert_eq!(first["device"], victim, "{incidents}");
    assert_eq!(first["severity"], "critical", "{first}");
    assert!(first["alerts"].as_u64().unwrap() >= 3, "{first}");
    assert!(
        first["techniques"]
            .as_array()
            .unwrap()
            .contains(&json!("T1105")),
        "{first}"
    );
    assert!(
        first["alert_ids"]
            .as_array()
            .unwrap()
            .contains(&chain["id"]),
        "{first}"
    );
    // Nothing fires on the devices that behave.
    for quiet in ["sim-cam-0001", "sim-cam-0002"] {
        let (status, device) = est.api("GET", &format!("/api/v1/devices/{quiet}"), None);
        assert_eq!(status, 200, "{quiet} is in the fleet: {device}");
        let noisy: Vec<Value> = alerts(&est, quiet)
            .into_iter()
            .filter(|a| a["severity"] != "info")
            .collect();
        assert!(noisy.is_empty(), "{quiet}: {noisy:?}");
    }

    // Alerted within two seconds of the broker receiving the publish.
    let (_, detail) = est.api(
        "GET",
        &format!("/api/v1/alerts/{}", chain["id"].as_str().unwrap()),
        None,
    );
    let received = detail["evidence"]["event"]["received_time"]
        .as_i64()
        .unwrap();
    let entries = audit_entries(&est);
    let opened = entries
        .iter()
        .find(|e| {
            e["action"] == "alert.open"
                && e["target"] == format!("alert:{}", chain["id"].as_str().unwrap())
        })
        .unwrap_or_else(|| panic!("no alert.open for {chain}"));
    let latency = rfc3339_ms(opened["at"].as_str().unwrap()) - received;
    eprintln!("publish → alert.open: {latency} ms");
    assert!(
        (0..=2000).contains(&latency),
        "publish → alert took {latency} ms"
    );

    // The built-in playbook quarantined the device, once, and saw the broker enforce it.
    let quarantine = wait_for("the enforced quarantine", Duration::from_secs(30), || {
        let (_, page) = est.api(
            "GET",
            &format!("/api/v1/responses?device={victim}&status=executed"),
            None,
        );
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["action"] == "quarantine"
                    && r["detail"].as_str().unwrap().starts_with("quarantined")
                    && !r["enforced_at"].is_null()
            })
            .cloned()
    });
    assert_eq!(quarantine["playbook"], "contain-compromised");
    assert!(quarantine["expires_at"].is_string(), "{quarantine}");
    let (_, device) = est.api("GET", &format!("/api/v1/devices/{victim}"), None);
    assert_eq!(device["quarantined"], true, "{device}");

    // A stock client with the device's own certificate is refused telemetry, allowed status.
    let (ok, out) = publish(&server, &ca, &home.join("sim"), victim, "telemetry");
    assert!(
        !ok || out.to_lowercase().contains("not authorized"),
        "{out}"
    );
    assert!(out.to_lowercase().contains("not authorized"), "{out}");

    // The audit log reads alert → action → effect → enforcement.
    let entries = audit_entries(&est);
    let response_id = quarantine["id"].as_str().unwrap();
    let alert_id = quarantine["alert"].as_str().unwrap();
    let position = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        entries
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no audit entry for {what}"))
    };
    let seq = |i: usize| entries[i]["seq"].as_i64().unwrap();
    let alert_at = position(
        &|e| e["action"] == "alert.open" && e["target"] == format!("alert:{alert_id}"),
        "alert.open",
    );
    let action_at = position(
        &|e| e["action"] == "response.quarantine" && e["after"].to_string().contains(response_id),
        "response.quarantine",
    );
    let effect_at = position(
        &|e| {
            e["action"] == "device.quarantine"
                && e["actor"] == "system:playbook:contain-compromised"
                && e["source"]
                    .as_str()
                    .is_some_and(|s| s.contains(response_id))
        },
        "device.quarantine by the playbook",
    );
    let enforced_at = position(
        &|e| e["action"] == "response.enforced" && e["after"].to_string().contains(response_id),
        "response.enforced",
    );
    assert!(
        seq(alert_at) < seq(action_at)
            && seq(action_at) < seq(effect_at)
            && seq(effect_at) < seq(enforced_at),
        "out of order: alert {} action {} effect {} enforced {}",
        seq(alert_at),
        seq(action_at),
        seq(effect_at),
        seq(enforced_at)
    );
    let (status, verify) = est.api("GET", "/api/v1/audit/verify", None);
    assert_eq!(status, 200);
    assert!(verify["first_break"].is_null(), "{verify}");

    // Triage and undo.
    let (status, acked) = est.api(
        "POST",
        &format!("/api/v1/alerts/{alert_id}"),
        Some(json!({"status": "acknowledged", "note": "isolating the camera"})),
    );
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    let (status, bad) = est.api(
        "POST",
        &format!("/api/v1/alerts/{alert_id}"),
        Some(json!({"status": "closed"})),
    );
    assert_eq!(status, 400, "{bad}");
    let (status, undone) = est.api(
        "POST",
        &format!("/api/v1/responses/{response_id}/undo"),
        None,
    );
    assert_eq!(status, 200, "{undone}");
    assert_eq!(undone["status"], "undone");
    let (_, device) = est.api("GET", &format!("/api/v1/devices/{victim}"), None);
    assert_eq!(device["quarantined"], false, "{device}");
    let (status, again) = est.api(
        "POST",
        &format!("/api/v1/responses/{response_id}/undo"),
        None,
    );
    assert_eq!(status, 409, "{again}");
    let (ok, out) = publish(&server, &ca, &home.join("sim"), victim, "telemetry");
    assert!(ok, "released, the device publishes again: {out}");
}

#[test]
fn a_reconnect_storm_stands_out_from_its_peers_with_an_explained_anomaly() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start_with_env(
        home,
        &[
            ("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0"),
            ("GARRISON_MONITOR__BASELINES__WINDOW", "3s"),
        ],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    // Twenty devices, seven of them cameras of one model and firmware: a peer group. None has
    // a baseline of its own yet: peers are all there is.
    let stormer = "sim-cam-0005";
    let _sim = sim_reporting_every(
        home,
        &server,
        &est,
        20,
        &format!("reconnect-storm:{stormer}@12s"),
        "1s",
    );

    let anomaly = wait_for("the connections anomaly", Duration::from_secs(90), || {
        alerts(&est, stormer)
            .into_iter()
            .find(|a| a["rule"] == "garrison.baseline.connects")
    });
    assert!(
        anomaly["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("garrison.anomaly")),
        "{anomaly}"
    );
    assert_eq!(anomaly["techniques"], json!(["T1499"]), "{anomaly}");
    let (_, detail) = est.api(
        "GET",
        &format!("/api/v1/alerts/{}", anomaly["id"].as_str().unwrap()),
        None,
    );
    let evidence = &detail["evidence"];
    assert_eq!(evidence["metric"], "connects", "{evidence}");
    assert_eq!(evidence["judged_by"], "peers", "{evidence}");
    assert!(evidence["baseline"].is_null(), "{evidence}");
    let peers = &evidence["peers"];
    assert_eq!(peers["model"], "AV-CAM-220", "{evidence}");
    assert!(peers["devices"].as_u64().unwrap() >= 5, "{evidence}");
    let observed = evidence["observed"].as_f64().unwrap();
    assert!(
        observed > peers["limit"].as_f64().unwrap() && observed > 5.0,
        "{evidence}"
    );
    let explanation = evidence["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with(&format!("{stormer} connections opened: ")),
        "{explanation}"
    );
    assert!(
        explanation.contains("peers (AV-CAM-220 firmware"),
        "{explanation}"
    );

    // The devices that kept their rhythm raised no anomaly at all.
    let (status, page) = est.api("GET", "/api/v1/alerts?limit=500", None);
    assert_eq!(status, 200, "{page}");
    let others: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["rule"]
                .as_str()
                .unwrap()
                .starts_with("garrison.baseline.")
                && a["device"] != stormer
        })
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

/// A webhook delivery: its headers (names lower-cased) and body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

/// A small HTTP server that hands back each request it receives.
fn webhook_receiver() -> (String, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(": ") {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.parse().unwrap_or(0);
                    }
                    headers.push((k.to_ascii_lowercase(), v.to_owned()));
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
            let _ = tx.send((headers, body));
        }
    });
    (url, rx)
}

#[test]
fn playbooks_from_a_file_dry_run_wait_for_approval_and_sign_webhooks() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (url, hooks) = webhook_receiver();
    let playbooks = home.join("playbooks.yml");
    std::fs::write(
        &playbooks,
        format!(
            r#"
playbooks:
  - name: rehearse
    mode: dry_run
    when: {{tags: [attack.t1110.001]}}
    actions:
      - action: quarantine
  - name: revoke-brute-forced
    when: {{rules: ["Telnet brute force against a device"]}}
    actions:
      - action: revoke
      - action: webhook
        url: {url}
        secret_env: TEST_HOOK_SECRET
"#
        ),
    )
    .unwrap();
    let server = start_with_env(
        home,
        &[
            ("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0"),
            ("GARRISON_MONITOR__PLAYBOOKS", playbooks.to_str().unwrap()),
            ("TEST_HOOK_SECRET", "s3cret"),
        ],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let (status, books) = est.api("GET", "/api/v1/playbooks", None);
    assert_eq!(status, 200);
    assert_eq!(books.as_array().unwrap().len(), 2, "{books}");
    let victim = "sim-cam-0000";
    let _sim = sim(home, &server, &est, 1, &format!("mirai:{victim}@4s"));

    // The webhook arrives signed: HMAC-SHA256 over "<timestamp>.<body>" with the secret.
    let (headers, body) = hooks.recv_timeout(Duration::from_secs(90)).unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
    };
    let timestamp = header("x-garrison-timestamp");
    let signed = home.join("signed");
    let mut data = format!("{timestamp}.").into_bytes();
    data.extend_from_slice(&body);
    std::fs::write(&signed, &data).unwrap();
    let (_, digest, _) = run(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "s3cret", "-r"])
            .arg(&signed),
        None,
    );
    let expected = digest.split_whitespace().next().unwrap();
    assert_eq!(header("x-garrison-signature"), format!("sha256={expected}"));
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["playbook"], "revoke-brute-forced");
    assert!(
        payload["alert"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Telnet brute force")
    );

    // Dry run: recorded, not done. Revocation: waits for approval.
    let responses = wait_for("the responses", Duration::from_secs(20), || {
        let (_, page) = est.api("GET", &format!("/api/v1/responses?device={victim}"), None);
        let items = page["items"].as_array().unwrap().clone();
        (items.iter().any(|r| r["status"] == "pending_approval")
            && items.iter().any(|r| r["status"] == "dry_run"))
        .then_some(items)
    });
    let (_, device) = est.api("GET", &format!("/api/v1/devices/{victim}"), None);
    assert_eq!(
        device["quarantined"], false,
        "a dry run quarantines nothing"
    );
    let pending = responses
        .iter()
        .find(|r| r["status"] == "pending_approval")
        .unwrap();
    assert_eq!(pending["action"], "revoke");
    let id = pending["id"].as_str().unwrap();

    // An operator approves; a second decision loses.
    let (status, approved) = est.api("POST", &format!("/api/v1/responses/{id}/approve"), None);
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "executed", "{approved}");
    assert!(
        approved["detail"].as_str().unwrap().contains("revoked"),
        "{approved}"
    );
    let (status, _) = est.api("POST", &format!("/api/v1/responses/{id}/reject"), None);
    assert_eq!(status, 409);
    let (_, certs) = est.api(
        "GET",
        &format!("/api/v1/certificates?subject={victim}"),
        None,
    );
    assert!(
        certs
            .as_array()
            .or_else(|| certs["items"].as_array())
            .unwrap()
            .iter()
            .any(|c| c["revoked_at"].is_string() && c["revocation_reason"] == "key-compromise"),
        "{certs}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn syslog_from_logger_over_udp_and_tcp_meets_sigma_rules() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (udp, tcp, tls) = (free_port(), free_port(), free_port());
    let rule = home.join("sshd.yml");
    std::fs::write(
        &rule,
        r#"title: SSH login attempt for an invalid user
id: 5d0f4c57-3a38-4d0e-9a7e-6f7f0c2b9c11
status: test
logsource:
    product: linux
    service: sshd
detection:
    selection:
        message|contains: 'Failed password for invalid user'
    condition: selection
level: high
tags:
    - attack.credential-access
    - attack.t1110.001
"#,
    )
    .unwrap();
    let config = home.join("garrison.toml");
    std::fs::write(
        &config,
        format!(
            "[monitor]\nrules = [{rule:?}]\n\n[syslog]\nudp = \"127.0.0.1:{udp}\"\ntcp = \"127.0.0.1:{tcp}\"\ntls = \"127.0.0.1:{tls}\"\n"
        ),
    )
    .unwrap();
    let server = start_with(home, &["--config", config.to_str().unwrap()], &[]);
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let message = "Failed password for invalid user admin from 203.0.113.9 port 4242 ssh2";
    for transport in [
        &["--udp", "--rfc5424"][..],
        &["--tcp", "--rfc3164", "--octet-count"][..],
        &["--tcp", "--rfc5424"][..],
    ] {
        let port = if transport[0] == "--udp" { udp } else { tcp };
        let (ok, out, err) = run(
            Command::new("logger")
                .args(["--server", "127.0.0.1", "--port", &port.to_string()])
                .args(transport)
                .args(["-t", "sshd", "-p", "authpriv.notice", message]),
            None,
        );
        assert!(ok, "logger {transport:?}: {out}{err}");
    }
    // RFC 5425: octet-counted frames over TLS, verified against Garrison's CA.
    let frame = format!("<86>1 2026-12-04T10:00:00Z gw-9 sshd 77 - - {message}");
    let (ok, out, err) = run(
        Command::new("openssl")
            .args([
                "s_client",
                "-brief",
                "-connect",
                &format!("127.0.0.1:{tls}"),
            ])
            .args(["-verify_return_error", "-CAfile"])
            .arg(&ca),
        Some(&format!("{} {frame}", frame.len())),
    );
    assert!(ok, "openssl s_client: {out}{err}");
    // Not syslog at all: kept and counted, not dropped.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(b"this is not syslog", ("127.0.0.1", udp))
        .unwrap();

    let alert = wait_for("the sshd alert", Duration::from_secs(20), || {
        let (_, page) = est.api("GET", "/api/v1/alerts?limit=50", None);
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["title"] == "SSH login attempt for an invalid user"
                    && a["occurrences"].as_i64() == Some(4)
            })
            .cloned()
    });
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["techniques"], json!(["T1110.001"]));
    let event = &alert["evidence"]["event"];
    assert_eq!(event["product"], "linux");
    assert_eq!(event["service"], "sshd");
    assert_eq!(event["syslog"]["appname"], "sshd");
    assert_eq!(event["syslog"]["facility"], "authpriv");
    assert_eq!(event["src_endpoint"]["ip"], "127.0.0.1");
    assert!(event["raw_data"].as_str().unwrap().contains(message));
    wait_for("the unparsed count", Duration::from_secs(10), || {
        (metric(&est, "garrison_syslog_unparsed_total{transport=\"udp\"}") >= 1.0).then_some(())
    });
    assert_eq!(
        metric(&est, "garrison_syslog_messages_total{transport=\"tcp\"}"),
        2.0
    );
    assert_eq!(
        metric(&est, "garrison_syslog_messages_total{transport=\"udp\"}"),
        2.0
    );
    assert_eq!(
        metric(&est, "garrison_syslog_messages_total{transport=\"tls\"}"),
        1.0
    );
}

#[test]
fn a_beacon_to_a_listed_address_is_an_alert() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let list = home.join("feodo.txt");
    // The simulator's C2 server (TEST-NET-2) is on the list; a neighbouring network is not.
    std::fs::write(&list, "# C2 servers\n198.51.100.23\n192.0.2.0/24\n").unwrap();
    let config = home.join("garrison.toml");
    std::fs::write(&config, format!("[monitor]\nintel = [{list:?}]\n")).unwrap();
    let server = start_with(
        home,
        &["--config", config.to_str().unwrap()],
        &[("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0")],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let victim = "sim-cam-0000";
    let _sim = sim(home, &server, &est, 2, &format!("c2-beacon:{victim}@3s"));
    let alert = wait_for("the threat-intel alert", Duration::from_secs(60), || {
        alerts(&est, victim)
            .into_iter()
            .find(|a| a["title"] == "Device connected to a threat-intelligence listed address")
    });
    assert_eq!(alert["severity"], "high", "{alert}");
    let threat = &alert["evidence"]["event"]["threat"];
    assert_eq!(threat["indicator"], "198.51.100.23", "{alert}");
    assert_eq!(threat["source"], "feodo");
    assert_eq!(threat["confidence"], 75);
    assert_eq!(threat["field"], "dst_endpoint.ip");
    // The other device talks only to its usual peers.
    let (status, other) = est.api("GET", "/api/v1/devices/sim-cam-0001", None);
    assert_eq!(status, 200, "the other device is in the fleet: {other}");
    assert!(
        alerts(&est, "sim-cam-0001")
            .iter()
            .all(|a| a["evidence"]["event"]["threat"].is_null()),
        "an unlisted device was flagged"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Enrolls `device` over EST with an `openssl req` CSR and curl, with a fresh bootstrap token.
fn enroll_with_curl(est: &Est<'_>, device: &str) {
    let (status, token) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": device})),
    );
    assert_eq!(status, 201, "{token}");
    let csr = est.csr(device, device);
    let (status, text) = est.enroll(
        "simpleenroll",
        &csr,
        &[
            "-u",
            &format!("{device}:{}", token["token"].as_str().unwrap()),
        ],
    );
    assert_eq!(status, 200, "{text}");
}

/// An API token with the `forwarder` role, as a gateway would hold.
fn forwarder_token(est: &Est<'_>) -> String {
    let (status, forwarder) = est.api(
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "gateway-berlin", "role": "forwarder"})),
    );
    assert_eq!(status, 201, "{forwarder}");
    forwarder["token"].as_str().unwrap().to_owned()
}

/// `n` failed telnet logins from one address, a millisecond apart from `now`.
fn telnet_failures(now: i64, n: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"at": now + i, "kind": "login_failed", "user": "root",
                   "service": "telnetd", "source": "203.0.113.50"})
        })
        .collect()
}

/// POSTs `body` to the HTTP intake with curl and `token`; returns (status, JSON).
fn intake(est: &Est<'_>, token: &str, body: &str) -> (u16, Value) {
    let file = est.dir.join("batch.json");
    std::fs::write(&file, body).unwrap();
    est.send_file(
        "POST",
        "/api/v1/intake/messages",
        token,
        "application/json",
        &file,
    )
}

#[test]
fn a_gateway_forwards_events_over_http_which_are_checked_kept_and_detected() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start(home, &[]);
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    // A device behind the gateway: enrolled over EST, never connected to the broker.
    let device = "meter-7";
    enroll_with_curl(&est, device);
    // The gateway's token can feed the intake and nothing else.
    let forwarder = forwarder_token(&est);
    let url = |path: &str| format!("{}{path}", est.url);
    assert_eq!(curl_status(&ca, &forwarder, &url("/api/v1/devices")), "403");
    assert_eq!(curl_status(&ca, &forwarder, &url("/api/v1/alerts")), "403");
    let (status, _) = intake(&est, "gar_nonsense", r#"{"messages": []}"#);
    assert_eq!(status, 401);

    let now = now_ms();
    let failures = telnet_failures(now, 8);
    let batch = json!({"messages": [
        {"device": device, "channel": "events", "payload": {"schema": 1, "events": failures}},
        {"device": "meter-404", "channel": "events", "payload": {"schema": 1, "events": []}},
        {"device": device, "channel": "events", "payload": {"schema": 99, "events": []}},
        {"device": device, "channel": "birth", "payload": {"schema": 1}},
        {"device": device, "channel": "telemetry",
         "payload": {"schema": 1, "device_id": "meter-8", "at": now, "interval_ms": 1000}},
        {"device": device, "channel": "telemetry",
         "payload": {"schema": 1, "at": now, "interval_ms": 60000, "bytes_out": 4096}},
    ]});
    let (status, result) = intake(&est, &forwarder, &batch.to_string());
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["accepted"], 2, "{result}");
    let refused: Vec<(u64, &str)> = result["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refused,
        [
            (1, "unknown_device"),
            (2, "unsupported_schema"),
            (3, "unknown_channel"),
            (4, "device_mismatch"),
        ],
        "{result}"
    );
    assert!(
        result["refused"][0]["message"]
            .as_str()
            .unwrap()
            .contains("enroll it first"),
        "{result}"
    );

    // Kept as the device's own events, and detected like any other: five failures in a
    // minute are a brute force.
    let alert = wait_for("the brute-force alert", Duration::from_secs(30), || {
        alerts(&est, device).into_iter().find(|a| {
            a["title"]
                .as_str()
                .unwrap()
                .starts_with("Telnet brute force")
        })
    });
    assert_eq!(alert["device"], device, "{alert}");
    let (status, events) = est.api("GET", &format!("/api/v1/events?device={device}"), None);
    assert_eq!(status, 200, "{events}");
    assert_eq!(events["items"].as_array().unwrap().len(), 8, "{events}");

    // Batch-level mistakes are refused whole, with the field named.
    let (status, bad) = intake(&est, &forwarder, r#"{"messages": [{"device": 7}]}"#);
    assert_eq!(status, 400, "{bad}");
    assert!(bad["field"].as_str().unwrap().contains("device"), "{bad}");
    let many: Vec<Value> = (0..5001)
        .map(|_| json!({"device": device, "channel": "events", "payload": {}}))
        .collect();
    let (status, bad) = intake(&est, &forwarder, &json!({"messages": many}).to_string());
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["field"], "messages", "{bad}");
    // Quarantine holds over HTTP as over MQTT.
    let (status, q) = est.api(
        "POST",
        &format!("/api/v1/devices/{device}/quarantine"),
        None,
    );
    assert_eq!(status, 200, "{q}");
    let telemetry = json!({"messages": [{"device": device, "channel": "telemetry",
        "payload": {"schema": 1, "at": now, "interval_ms": 60000}}]})
    .to_string();
    // The quarantine reaches the fleet index within moments of the API's answer.
    let result = wait_for(
        "the quarantine at the intake",
        Duration::from_secs(10),
        || {
            let (status, result) = intake(&est, &forwarder, &telemetry);
            assert_eq!(status, 200, "{result}");
            (result["accepted"] == 0).then_some(result)
        },
    );
    assert_eq!(result["refused"][0]["reason"], "quarantined", "{result}");
}

#[test]
fn an_imported_stix_feed_is_in_force_at_once_and_hunted_for_in_stored_events() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start_with_env(
        home,
        &[("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0")],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let victim = "sim-cam-0000";
    let _sim = sim(home, &server, &est, 2, &format!("c2-beacon:{victim}@2s"));

    // The beacon is stored as the device's event; no list names its address yet.
    wait_for("the stored beacon", Duration::from_secs(60), || {
        let (_, events) = est.api("GET", &format!("/api/v1/events?device={victim}"), None);
        events.to_string().contains("198.51.100.23").then_some(())
    });
    let flagged = |a: &Value| !a["evidence"]["event"]["threat"].is_null();
    assert!(!alerts(&est, victim).iter().any(flagged));

    // A CERT's STIX bundle arrives, imported with curl.
    let bundle = json!({"type": "bundle", "id": "bundle--5", "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--c2",
         "pattern": "[ipv4-addr:value = '198.51.100.23']", "pattern_type": "stix",
         "valid_from": "2026-01-01T00:00:00Z", "confidence": 85},
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--url",
         "pattern": "[url:value = 'http://198.51.100.23/bins/x86']", "pattern_type": "stix",
         "valid_from": "2026-01-01T00:00:00Z"},
    ]});
    let file = home.join("cert.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    let put = |token: &str, name: &str, content_type: &str, file: &Path| {
        est.send_file(
            "PUT",
            &format!("/api/v1/intel/sources/{name}"),
            token,
            content_type,
            file,
        )
    };
    let (status, imported) = put(&est.token, "cert-feed", "application/json", &file);
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["format"], "stix", "{imported}");
    assert_eq!(imported["indicators"], 1, "{imported}");
    assert_eq!(
        imported["skipped"][0]["entry"], "indicator--url",
        "{imported}"
    );

    // The retro-hunt finds the beacon that was already stored.
    let hunted = wait_for("the retro-hunt alert", Duration::from_secs(30), || {
        alerts(&est, victim)
            .into_iter()
            .find(|a| a["rule"] == "garrison.intel.retro_hunt")
    });
    assert_eq!(hunted["severity"], "high", "{hunted}");
    let threat = &hunted["evidence"]["event"]["threat"];
    assert_eq!(threat["indicator"], "198.51.100.23", "{hunted}");
    assert_eq!(threat["source"], "cert-feed", "{hunted}");
    assert_eq!(threat["confidence"], 85, "{hunted}");
    assert_eq!(threat["reference"], "indicator--c2", "{hunted}");
    assert_eq!(hunted["evidence"]["retro_hunt"]["source"], "cert-feed");
    // And it is in force for what arrives from now on: the live rules flag the beacon too.
    wait_for(
        "the live threat-intel alert",
        Duration::from_secs(60),
        || {
            alerts(&est, victim)
                .into_iter()
                .find(|a| a["rule"] != "garrison.intel.retro_hunt" && flagged(a))
        },
    );
    assert!(
        !alerts(&est, "sim-cam-0001").iter().any(flagged),
        "the device that never beaconed is not flagged"
    );

    // Telemetry is not kept report by report, but the addresses it lists are, per device: a
    // list naming the cameras' LAN peer, which appears in telemetry and in no event, is hunted
    // for there.
    wait_for(
        "the stored telemetry destination",
        Duration::from_secs(30),
        || {
            let (status, page) = est.api("GET", "/api/v1/destinations?device=sim-cam-0001", None);
            assert_eq!(status, 200, "{page}");
            page["items"]
                .as_array()?
                .iter()
                .any(|d| d["address"] == "10.20.0.5" && d["reports"].as_u64() >= Some(1))
                .then_some(())
        },
    );
    assert!(
        !alerts(&est, "sim-cam-0001")
            .iter()
            .any(|a| a["rule"] == "garrison.intel.retro_hunt")
    );
    let list = home.join("lan-peers.txt");
    std::fs::write(&list, "# the cameras' recorder\n10.20.0.5\n").unwrap();
    let (status, imported) = put(&est.token, "lan-peers", "text/plain", &list);
    assert_eq!(status, 201, "{imported}");
    let hunted = wait_for(
        "the retro-hunt alert from telemetry",
        Duration::from_secs(30),
        || {
            alerts(&est, "sim-cam-0001")
                .into_iter()
                .find(|a| a["rule"] == "garrison.intel.retro_hunt")
        },
    );
    let destination = &hunted["evidence"]["destination"];
    assert_eq!(destination["address"], "10.20.0.5", "{hunted}");
    assert_eq!(destination["threat"]["source"], "lan-peers", "{hunted}");
    assert_eq!(
        destination["threat"]["field"], "telemetry.destinations",
        "{hunted}"
    );
    assert!(destination["reports"].as_u64() >= Some(1), "{hunted}");
    let entries = audit_entries(&est);
    let import_at = entries
        .iter()
        .position(|e| e["action"] == "intel.import" && e["target"] == "intel:cert-feed")
        .expect("intel.import audited");
    let hunt_at = entries
        .iter()
        .position(|e| e["action"] == "intel.retro_hunt")
        .expect("intel.retro_hunt audited");
    assert!(import_at < hunt_at);
    assert!(
        entries[hunt_at]["after"]
            .to_string()
            .contains("\"matches\""),
        "{}",
        entries[hunt_at]
    );

    // The CLI lists and removes sources; a list with a bad line is refused whole.
    let cli = |args: &[&str]| {
        run(
            garrison(home)
                .env("GARRISON_TOKEN", &est.token)
                .env("GARRISON_SERVER", &est.url)
                .env("GARRISON_CA_CERT", &ca)
                .args(args),
            None,
        )
    };
    let bad = home.join("bad.txt");
    std::fs::write(&bad, "203.0.113.9\nnot an indicator\n").unwrap();
    let (ok, _, err) = cli(&["intel", "import", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("line 2"), "{err}");
    let good = home.join("abuse.txt");
    std::fs::write(&good, "# abuse.ch\n203.0.113.0/24\n").unwrap();
    let (ok, out, err) = cli(&["intel", "import", good.to_str().unwrap()]);
    assert!(
        ok && out.contains("imported abuse: 1 indicators"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&["intel", "list", "-o", "json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["abuse", "cert-feed", "lan-peers"]);
    let (ok, _, err) = cli(&["intel", "delete", "abuse"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["intel", "delete", "abuse"]);
    assert!(!ok && err.contains("not found"), "{err}");

    // Only roles that may change intelligence may import it.
    let (status, viewer) = est.api(
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "viewer", "role": "read-only"})),
    );
    assert_eq!(status, 201, "{viewer}");
    let (status, _) = put(
        viewer["token"].as_str().unwrap(),
        "sneaky",
        "text/plain",
        &good,
    );
    assert_eq!(status, 403);
}

/// A SIEM stand-in: `openssl s_server` with a certificate from a throwaway CA, writing what it
/// receives to a file. Returns its port, the process, that file and the CA certificate.
fn siem_receiver(dir: &Path, name: &str) -> (u16, Guard, std::path::PathBuf, std::path::PathBuf) {
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let openssl = |args: &[&str]| {
        let (ok, out, err) = run(Command::new("openssl").args(args), None);
        assert!(ok, "openssl {args:?}: {out}{err}");
    };
    let path = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    let (ca, ca_key) = (file("-ca.pem"), file("-ca.key"));
    let (cert, key, csr, ext) = (file(".pem"), file(".key"), file(".csr"), file(".ext"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path(&ca_key),
        "-out",
        &path(&ca),
        "-subj",
        "/CN=Test SIEM CA",
        "-days",
        "1",
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path(&key),
        "-out",
        &path(&csr),
        "-subj",
        "/CN=siem",
    ]);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-CA",
        &path(&ca),
        "-CAkey",
        &path(&ca_key),
        "-CAcreateserial",
        "-out",
        &path(&cert),
        "-days",
        "1",
        "-extfile",
        &path(&ext),
    ]);
    let port = free_port();
    let received = file(".received");
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&received).unwrap())
        .stderr(std::fs::File::create(file(".log")).unwrap())
        .spawn()
        .unwrap();
    wait_for("openssl s_server", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (port, Guard(child), received, ca)
}

/// The messages of an RFC 6587 octet-counted stream.
fn octet_counted(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(space) = bytes.iter().position(|b| *b == b' ') {
        let Ok(len) = std::str::from_utf8(&bytes[..space])
            .unwrap()
            .trim()
            .parse::<usize>()
        else {
            break;
        };
        let end = space + 1 + len;
        if end > bytes.len() {
            break;
        }
        out.push(String::from_utf8(bytes[space + 1..end].to_vec()).unwrap());
        bytes = &bytes[end..];
    }
    out
}

#[test]
fn alerts_are_forwarded_to_a_siem_as_cef_and_ocsf_over_syslog_tls() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (cef_port, _cef, cef_received, siem_ca) = siem_receiver(home, "cef");
    let (ocsf_port, _ocsf, ocsf_received, ocsf_ca) = siem_receiver(home, "ocsf");
    let closed = free_port();
    let playbooks = home.join("playbooks.yml");
    std::fs::write(
        &playbooks,
        format!(
            r#"
playbooks:
  - name: to-the-soc
    when: {{rules: ["Telnet brute force against a device"]}}
    actions:
      - action: forward
        url: syslog+tls://127.0.0.1:{cef_port}
        ca_file: {siem_ca:?}
  - name: to-the-data-lake
    when: {{rules: ["Telnet brute force against a device"]}}
    actions:
      - action: forward
        url: syslog+tls://127.0.0.1:{ocsf_port}
        format: ocsf
        ca_file: {ocsf_ca:?}
  - name: to-a-dead-siem
    when: {{rules: ["Telnet brute force against a device"]}}
    actions:
      - action: forward
        url: syslog+tls://127.0.0.1:{closed}
        ca_file: {siem_ca:?}
"#
        ),
    )
    .unwrap();
    let server = start_with_env(
        home,
        &[("GARRISON_MONITOR__PLAYBOOKS", playbooks.to_str().unwrap())],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let device = "meter-9";
    enroll_with_curl(&est, device);
    let forwarder = forwarder_token(&est);
    let batch = json!({"messages": [{"device": device, "channel": "events",
        "payload": {"schema": 1, "events": telnet_failures(now_ms(), 6)}}]});
    let (status, result) = intake(&est, &forwarder, &batch.to_string());
    assert_eq!((status, &result["accepted"]), (200, &json!(1)), "{result}");

    let alert = wait_for("the brute-force alert", Duration::from_secs(30), || {
        alerts(&est, device)
            .into_iter()
            .find(|a| a["title"] == "Telnet brute force against a device")
    });
    let responses = wait_for("three forward actions", Duration::from_secs(30), || {
        let (_, page) = est.api(
            "GET",
            &format!("/api/v1/responses?alert={}", alert["id"].as_str().unwrap()),
            None,
        );
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 3 && items.iter().all(|r| r["status"] != "started")).then_some(items)
    });
    let by_url = |port: u16| {
        responses
            .iter()
            .find(|r| {
                r["params"]["url"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{port}"))
            })
            .unwrap()
            .clone()
    };
    assert_eq!(by_url(cef_port)["status"], "executed", "{responses:?}");
    assert_eq!(by_url(ocsf_port)["status"], "executed", "{responses:?}");
    let failed = by_url(closed);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "the failure names the SIEM: {failed}"
    );

    // What the SIEMs received: one octet-counted RFC 5424 message each.
    let cef_lines = wait_for("the CEF message", Duration::from_secs(10), || {
        let lines = octet_counted(&std::fs::read(&cef_received).unwrap());
        (!lines.is_empty()).then_some(lines)
    });
    assert_eq!(cef_lines.len(), 1, "{cef_lines:?}");
    let line = &cef_lines[0];
    assert!(line.starts_with("<10"), "PRI of facility 13: {line}");
    assert!(
        line.contains(" garrison - CEF - CEF:0|Garrison|Garrison|"),
        "{line}"
    );
    let cef = line.split(" - CEF - ").nth(1).unwrap();
    let fields: Vec<&str> = cef.splitn(8, '|').collect();
    assert_eq!(fields[5], "Telnet brute force against a device", "{cef}");
    assert_eq!(fields[4], alert["rule"].as_str().unwrap(), "{cef}");
    assert!(fields[7].contains(&format!("dvchost={device}")), "{cef}");
    assert!(
        fields[7].contains(&format!("externalId={}", alert["id"].as_str().unwrap())),
        "{cef}"
    );
    assert!(fields[7].contains("cs1=T1110"), "{cef}");

    let ocsf_lines = wait_for("the OCSF message", Duration::from_secs(10), || {
        let lines = octet_counted(&std::fs::read(&ocsf_received).unwrap());
        (!lines.is_empty()).then_some(lines)
    });
    let json_text = ocsf_lines[0].split(" - OCSF - ").nth(1).unwrap();
    let finding: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(finding["class_uid"], 2004, "{finding}");
    assert_eq!(finding["finding_info"]["uid"], alert["id"], "{finding}");
    assert_eq!(finding["device"]["uid"], device, "{finding}");

    // Each forward is audited with the alert that caused it.
    let entries = audit_entries(&est);
    let forwards = entries
        .iter()
        .filter(|e| e["action"] == "response.forward")
        .count();
    assert!(forwards >= 3, "{forwards} response.forward entries");
}

#[test]
fn rsyslog_relays_a_gateways_logs_into_the_syslog_intake_without_loss() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let tcp = free_port();
    let config = home.join("garrison.toml");
    std::fs::write(
        &config,
        format!("[monitor]\nrules = [{:?}]\n\n[syslog]\ntcp = \"127.0.0.1:{tcp}\"\n", {
            let rule = home.join("sshd.yml");
            std::fs::write(
                &rule,
                "title: SSH password guessing\nid: 9f1d2c4e-1b7a-4c35-8f55-2a1f3e4d5c6b\nstatus: test\n\
                 logsource:\n    product: linux\n    service: sshd\n\
                 detection:\n    selection:\n        message|contains: 'Failed password for'\n    condition: selection\n\
                 level: medium\n",
            )
            .unwrap();
            rule
        }),
    )
    .unwrap();
    let server = start_with(home, &["--config", config.to_str().unwrap()], &[]);
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);

    // A gateway's rsyslogd: local programs log to its socket, it relays everything to Garrison
    // over TCP with RFC 6587 octet counting, in RFC 5424, queueing while the link is down.
    let socket = home.join("log.sock");
    let rsyslog_conf = home.join("rsyslog.conf");
    std::fs::write(
        &rsyslog_conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" CreatePath="on")
action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
       queue.type="LinkedList" action.resumeRetryCount="-1")
"#,
            dir = home.display(),
            socket = socket.display(),
        ),
    )
    .unwrap();
    let (ok, out, err) = run(
        Command::new("rsyslogd")
            .args(["-N1", "-f"])
            .arg(&rsyslog_conf),
        None,
    );
    assert!(ok, "rsyslogd -N1: {out}{err}");
    let _rsyslogd = Guard(
        Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&rsyslog_conf)
            .arg("-i")
            .arg(home.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(home.join("rsyslogd.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    wait_for("rsyslogd's socket", Duration::from_secs(10), || {
        socket.exists().then_some(())
    });
    // 500 lines through the relay: 3 password failures among ordinary messages.
    let lines: Vec<String> = (0..500)
        .map(|i| match i {
            100 | 250 | 400 => {
                format!("Failed password for root from 203.0.113.{i} port 4242 ssh2")
            }
            _ => format!(
                "Accepted publickey for deploy from 10.0.0.{} port 22 ssh2 #{i}",
                i % 250
            ),
        })
        .collect();
    let file = home.join("lines.txt");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, out, err) = run(
        Command::new("logger")
            .arg("-u")
            .arg(&socket)
            .args(["-t", "sshd", "-p", "authpriv.info", "-f"])
            .arg(&file),
        None,
    );
    assert!(ok, "logger: {out}{err}");

    wait_for("all 500 relayed messages", Duration::from_secs(30), || {
        (metric(&est, "garrison_syslog_messages_total{transport=\"tcp\"}") >= 500.0).then_some(())
    });
    assert_eq!(
        metric(&est, "garrison_syslog_messages_total{transport=\"tcp\"}"),
        500.0,
        "each line once"
    );
    let alert = wait_for("the sshd alert", Duration::from_secs(20), || {
        let (_, page) = est.api("GET", "/api/v1/alerts?limit=50", None);
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["title"] == "SSH password guessing" && a["occurrences"].as_i64() == Some(3))
            .cloned()
    });
    let event = &alert["evidence"]["event"];
    assert_eq!(event["service"], "sshd", "{event}");
    assert_eq!(event["syslog"]["appname"], "sshd", "{event}");
    assert_eq!(event["syslog"]["facility"], "authpriv", "{event}");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("Failed password for root from 203.0.113.400"),
        "the last failure is the evidence: {event}"
    );
}

/// A gauge from `/metrics` (Prometheus text), read with curl.
fn gauge(est: &Est<'_>, name: &str) -> Option<f64> {
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(est.ca)
        .args(["-H", &format!("Authorization: Bearer {}", est.token)])
        .arg(format!("{}/metrics", est.url))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let value = l.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[test]
fn baselines_learnt_before_a_restart_are_there_after_it() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let env = [
        ("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0"),
        ("GARRISON_MONITOR__BASELINES__WINDOW", "1s"),
        ("GARRISON_MONITOR__BASELINES__MIN_HISTORY", "3"),
        // Only the save at shutdown: what comes back can have come from nowhere else.
        ("GARRISON_MONITOR__BASELINES__SAVE_INTERVAL", "0s"),
    ];
    let server = start_with_env(home, &env);
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let sim = sim_reporting_every(home, &server, &est, 6, "", "1s");
    wait_for(
        "six devices with a baseline",
        Duration::from_secs(60),
        || (gauge(&est, "garrison_monitor_baseline_mature_devices")? >= 6.0).then_some(()),
    );
    drop(sim);

    // A graceful stop saves; the next start restores. No device connects after the restart,
    // so without the saved history the monitor would know none.
    let mut server = server;
    let password = server.password.clone();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(wait_exit(&mut server.child).success());
    drop(server);
    let mut server = start_with_env(home, &env);
    server.password = password;
    let est = est_for(&server, home, &ca);
    let mature = wait_for(
        "the first window after the restart",
        Duration::from_secs(30),
        || gauge(&est, "garrison_monitor_baseline_mature_devices"),
    );
    assert!(mature >= 6.0, "restored {mature} mature devices");
    let log = std::fs::read_to_string(home.join("server.log")).unwrap_or_default();
    assert!(log.contains("Restored behaviour baselines"), "{log}");
}
