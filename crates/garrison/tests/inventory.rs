//! The inventory and posture audit end to end: a simulated fleet (`garrison sim`, real EST and
//! MQTT) reaches the inventory through the real broker; the audit finds exactly what the
//! fleet's ground truth says; the agent reports a fixture machine; stock `mosquitto_pub`
//! delivers bad reports (refused and counted, nothing changed), a fix (the finding resolves
//! itself) and a weakening (a drift event).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod common;

use common::*;

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn all_pages(est: &Est<'_>, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
            None => format!("{path}{sep}limit=500"),
        };
        let (status, page) = est.api("GET", &url, None);
        assert_eq!(status, 200, "{url}: {page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

fn open_findings(est: &Est<'_>) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all_pages(est, "/api/v1/findings?status=open") {
        map.entry(f["device"].as_str().unwrap().to_owned())
            .or_default()
            .insert(f["check"].as_str().unwrap().to_owned());
    }
    map
}

/// `mosquitto_pub` of `payload` (a file) as `device`, whose key and certificate are in `dir`.
fn publish_as(server: &Server, ca: &Path, dir: &Path, device: &str, channel: &str, payload: &Path) {
    let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let out = Command::new("mosquitto_pub")
        .args(["-h", host, "-p", port, "--cafile"])
        .arg(ca)
        .arg("--cert")
        .arg(dir.join(format!("{device}.pem")))
        .arg("--key")
        .arg(dir.join(format!("{device}.key")))
        .args([
            "-i",
            device,
            "-q",
            "1",
            "-t",
            &format!("garrison/v1/d/{device}/{channel}"),
            "-f",
        ])
        .arg(payload)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_simulated_fleet_is_inventoried_and_audited_exactly() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start_with_env(
        home,
        &[("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0")],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let token = bootstrap_token(&est, "sim-*", 100);
    // Weak devices planned with an expiring certificate enroll with a token that shortens it
    // to inside the audit's 14-day warning.
    let (status, expiring) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "sim-*", "max_uses": 100, "certificate_validity": "10d"})),
    );
    assert_eq!(status, 201, "{expiring}");
    let expiring = expiring["token"].as_str().unwrap().to_owned();
    let devices = 40;
    let sim_dir = home.join("sim");
    let truth = home.join("truth.json");
    let sim = Guard(
        garrison(home)
            .args([
                "sim",
                "--devices",
                &devices.to_string(),
                "--weak-share",
                "0.4",
                "--server",
                &est.url,
            ])
            .args(["--mqtt", server.mqtt.as_deref().unwrap(), "--ca-cert"])
            .arg(&ca)
            .args([
                "--token",
                &token,
                "--expiring-token",
                &expiring,
                "--state-dir",
            ])
            .arg(&sim_dir)
            .args(["--telemetry-interval", "2s", "--ground-truth"])
            .arg(&truth)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(home.join("sim.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );

    // Every device reaches the inventory through EST and the broker.
    wait_for("the fleet's inventories", Duration::from_secs(90), || {
        let (_, page) = est.api("GET", "/api/v1/devices?q=reported&limit=500", None);
        page["items"].as_array().map_or(0, Vec::len) == devices
    });
    let (status, cam) = est.api("GET", "/api/v1/devices/sim-cam-0000", None);
    assert_eq!(status, 200, "{cam}");
    assert_eq!(cam["model"], "AV-CAM-220");
    assert_eq!(cam["manufacturer"], "Acme Vision");
    assert_eq!(cam["class"], "embedded");
    assert_eq!(cam["agent"], "garrison-sim");
    assert!(cam["ports"].as_array().unwrap().contains(&json!(554)));
    wait_for("presence", Duration::from_secs(20), || {
        est.api("GET", "/api/v1/devices/sim-cam-0000", None).1["online"] == json!(true)
    });
    let (status, sbom) = est.api("GET", "/api/v1/devices/sim-gw-0016/sbom", None);
    assert_eq!(status, 200);
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert!(
        sbom["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "openssh-server")
    );

    // Firmware policies per model, then a full audit.
    for (model, minimum) in [
        ("AV-CAM-220", "5.6.0"),
        ("VP-100", "1.3.0"),
        ("IG-5000", "3.0.0"),
        ("MF-300", "2.7.0"),
        ("BC-40", "6.0.0"),
    ] {
        let (status, body) = est.api(
            "PUT",
            &format!("/api/v1/posture/firmware-policies/{model}"),
            Some(json!({"minimum_version": minimum})),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, audit_run) = est.api("POST", "/api/v1/posture/runs", None);
    assert_eq!(status, 201, "{audit_run}");
    assert_eq!(audit_run["devices"], json!(devices));

    // Exactly the ground truth: every weak device has exactly its checks, the rest none.
    let truth: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let expected: BTreeMap<String, BTreeSet<String>> = truth["expected_findings"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, checks)| !checks.as_array().unwrap().is_empty())
        .map(|(d, checks)| {
            (
                d.clone(),
                checks
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert!(
        expected.len() >= 4,
        "the fleet should have weak devices: {expected:?}"
    );
    for check in ["certificate-shared", "certificate-expiring"] {
        assert!(
            expected.values().any(|c| c.contains(check)),
            "the fleet should have a device failing {check}: {expected:?}"
        );
    }
    assert_eq!(open_findings(&est), expected);

    // Search agrees with the facts.
    let telnet: BTreeSet<String> = all_pages(&est, "/api/v1/devices?q=service%20%3D%20telnet")
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let with_telnet: BTreeSet<String> = expected
        .iter()
        .filter(|(_, c)| c.contains("insecure-service"))
        .map(|(d, _)| d.clone())
        .collect();
    assert_eq!(telnet, with_telnet);
    let (status, bad) = est.api("GET", "/api/v1/devices?q=modle%20%3D%20x", None);
    assert_eq!(status, 400);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"model\""),
        "{bad}"
    );

    // Stop the fleet so stock clients can speak as its devices.
    drop(sim);
    let weak = with_telnet
        .iter()
        .next()
        .cloned()
        .expect("a device with telnet");
    let (_, before) = est.api("GET", &format!("/api/v1/devices/{weak}/inventory"), None);
    let received = before["received_at"].clone();
    let report = before["report"].clone();

    // Bad reports are refused, counted, and change nothing.
    let write = |name: &str, body: &[u8]| {
        let p = home.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let mut v2 = report.clone();
    v2["schema"] = json!(2);
    let mut other = report.clone();
    other["device_id"] = json!("sim-cam-0000");
    let mut huge = report.clone();
    huge["software"] = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components":
        (0..25_000).map(|i| json!({"type": "library", "name": format!("pkg{i}"), "version": "1.0"})).collect::<Vec<_>>()});
    let huge = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(huge.to_string().as_bytes()).unwrap();
        gz.finish().unwrap()
    };
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("v2.json", v2.to_string().into_bytes(), "unsupported_schema"),
        (
            "other.json",
            other.to_string().into_bytes(),
            "device_mismatch",
        ),
        ("huge.json.gz", huge, "invalid_field"),
        (
            "broken.json",
            b"{\"schema\": 1, \"collected_at\": ".to_vec(),
            "malformed",
        ),
    ];
    for (file, body, reason) in cases {
        let label = format!(
            "garrison_inventory_reports_rejected_total{{channel=\"inventory\",reason=\"{reason}\"}}"
        );
        let was = metric(&est, &label);
        publish_as(
            &server,
            &ca,
            &sim_dir,
            &weak,
            "inventory",
            &write(file, &body),
        );
        wait_for(reason, Duration::from_secs(10), || {
            metric(&est, &label) > was
        });
    }
    let (_, after) = est.api("GET", &format!("/api/v1/devices/{weak}/inventory"), None);
    assert_eq!(
        after["received_at"], received,
        "refused reports change nothing"
    );

    // The operator turns telnet off: the next inventory resolves the finding by itself.
    let mut fixed = report.clone();
    fixed["services"]["telnet"] = json!(false);
    fixed["listening"] = json!(
        fixed["listening"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["port"] != json!(23))
            .cloned()
            .collect::<Vec<_>>()
    );
    publish_as(
        &server,
        &ca,
        &sim_dir,
        &weak,
        "inventory",
        &write("fixed.json", fixed.to_string().as_bytes()),
    );
    wait_for(
        "the telnet finding to resolve",
        Duration::from_secs(15),
        || {
            !open_findings(&est)
                .get(&weak)
                .is_some_and(|c| c.contains("insecure-service"))
        },
    );
    let resolved = all_pages(
        &est,
        &format!("/api/v1/findings?status=resolved&device={weak}"),
    );
    assert!(
        resolved.iter().any(|f| f["check"] == "insecure-service"),
        "{resolved:?}"
    );

    // …and then someone opens a backdoor port and turns on password SSH: drift.
    let mut worse = fixed.clone();
    let mut listening = worse["listening"].as_array().unwrap().clone();
    listening.push(json!({"protocol": "tcp", "address": "0.0.0.0", "port": 4444, "process": "nc"}));
    worse["listening"] = json!(listening);
    publish_as(
        &server,
        &ca,
        &sim_dir,
        &weak,
        "inventory",
        &write("worse.json", worse.to_string().as_bytes()),
    );
    wait_for("a drift event", Duration::from_secs(15), || {
        let (_, page) = est.api("GET", &format!("/api/v1/drift?device={weak}"), None);
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "new_listening_port" && d["after"]["port"] == json!(4444))
    });
    let (_, history) = est.api(
        "GET",
        &format!("/api/v1/devices/{weak}/history?fact=listening"),
        None,
    );
    assert!(history["items"].as_array().unwrap().len() >= 2, "{history}");

    // CSV export of a search.
    let (ok, csv, err) = run(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", est.token))
            .arg(format!(
                "{}/api/v1/export/devices?q=class%20%3D%20gateway",
                est.url
            )),
        None,
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,model,"), "{csv}");
    let gateways = (0..devices)
        .filter(|i| i % 20 == 16 || i % 20 == 17)
        .count();
    assert_eq!(lines.len(), gateways + 1, "{csv}");
}

#[test]
fn the_agent_reports_a_machine_it_reads() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start(home, &[]);
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let token = bootstrap_token(&est, "gw-fixture", 1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../garrison-agent/tests/fixtures/debian-gateway");
    let _agent = Guard(
        garrison(home)
            .args([
                "agent",
                "--server",
                &est.url,
                "--mqtt",
                server.mqtt.as_deref().unwrap(),
                "--ca-cert",
            ])
            .arg(&ca)
            .args([
                "--device-id",
                "gw-fixture",
                "--token",
                &token,
                "--state-dir",
            ])
            .arg(home.join("agent-state"))
            .arg("--root")
            .arg(&root)
            .args([
                "--telemetry-interval",
                "1s",
                "--scan-interval",
                "1s",
                "--events-interval",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(home.join("agent.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    wait_for("the agent's inventory", Duration::from_secs(60), || {
        est.api("GET", "/api/v1/devices/gw-fixture", None).1["reported_at"].is_string()
    });
    let (_, device) = est.api("GET", "/api/v1/devices/gw-fixture", None);
    assert_eq!(device["model"], "SYS-E200-9A", "{device}");
    assert_eq!(device["os"], "debian");
    assert_eq!(device["agent"], "garrison-agent");
    assert_eq!(device["enrolled_via"], "token");
    let (_, report) = est.api("GET", "/api/v1/devices/gw-fixture/inventory", None);
    assert_eq!(
        report["report"]["services"]["ssh"]["password_authentication"],
        json!(false),
        "{report}"
    );
    let (status, sbom) = est.api("GET", "/api/v1/devices/gw-fixture/sbom", None);
    assert_eq!(status, 200);
    assert!(!sbom["components"].as_array().unwrap().is_empty());
    // The key was made on the device and kept private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("agent-state/device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn what_was_acknowledged_before_sigterm_is_kept() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start_with_env(
        home,
        &[
            ("GARRISON_BROKER__MAX_MESSAGES_PER_SECOND", "0"),
            ("GARRISON_BROKER__MAX_BYTES_PER_SECOND", "0"),
        ],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let token = bootstrap_token(&est, "dev-1", 1);
    let csr = est.csr("dev-1", "dev-1");
    let (status, text) = est.enroll("simpleenroll", &csr, &["-u", &format!("dev-1:{token}")]);
    assert_eq!(status, 200, "{text}");
    std::fs::write(home.join("dev-1.pem"), est.certs_from(&text, "dev-1-cert")).unwrap();

    // 200 inventories, each naming a new host name and carrying a 2,000-package SBOM, one per
    // line; mosquitto_pub returns once the broker has acknowledged every one (QoS 1), well
    // before the server has written them all.
    let components: Vec<Value> = (0..2000)
        .map(|i| json!({"type": "library", "name": format!("package-{i}"), "version": "1.0.0"}))
        .collect();
    let lines: String = (0..200)
        .map(|i| {
            let report = json!({"schema": 1, "collected_at": 1_764_633_600_000i64, "os": {"hostname": format!("h-{i}")},
                "software": {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}});
            format!("{report}\n")
        })
        .collect();
    let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let (ok, _, err) = run(
        Command::new("mosquitto_pub")
            .args(["-h", host, "-p", port, "--cafile"])
            .arg(&ca)
            .arg("--cert")
            .arg(home.join("dev-1.pem"))
            .arg("--key")
            .arg(home.join("dev-1.key"))
            .args([
                "-i",
                "dev-1",
                "-q",
                "1",
                "-t",
                "garrison/v1/d/dev-1/inventory",
                "-l",
            ]),
        Some(&lines),
    );
    assert!(ok, "mosquitto_pub: {err}");
    // Stop at once: what is still queued inside the server must be written before it exits.
    let password = server.password.clone();
    let mut server = server;
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_exit(&mut server.child);
    assert!(status.success(), "serve exited with {status:?}");
    drop(server);

    let mut server = start(home, &[]);
    server.password = password;
    let est = est_for(&server, home, &ca);
    let history = all_pages(&est, "/api/v1/devices/dev-1/history?fact=os.hostname");
    assert_eq!(
        history.len(),
        200,
        "every acknowledged report is in the history"
    );
    let (_, device) = est.api("GET", "/api/v1/devices/dev-1", None);
    assert_eq!(device["hostname"], "h-199");
}

/// A cloned device: one identity (certificate and client id) connecting from two machines,
/// each taking the session from the other — stock `mosquitto_sub` clients bound to two
/// loopback addresses. The audit must name it under both fleet checks, with the addresses.
#[test]
fn a_cloned_identity_is_found_by_the_audit() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start_with_env(
        home,
        &[("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "0")],
    );
    let ca = home.join("garrison-data/ca.pem");
    let est = est_for(&server, home, &ca);
    let token = bootstrap_token(&est, "clone-1", 1);
    let csr = est.csr("clone-1", "clone-1");
    let (status, text) = est.enroll("simpleenroll", &csr, &["-u", &format!("clone-1:{token}")]);
    assert_eq!(status, 200, "{text}");
    std::fs::write(
        home.join("clone-1.pem"),
        est.certs_from(&text, "clone-1-cert"),
    )
    .unwrap();

    let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let copy = |bind: &str| {
        Guard(
            Command::new("mosquitto_sub")
                .args(["-h", host, "-p", port, "-A", bind, "--cafile"])
                .arg(&ca)
                .arg("--cert")
                .arg(home.join("clone-1.pem"))
                .arg("--key")
                .arg(home.join("clone-1.key"))
                .args(["-i", "clone-1", "-t", "garrison/v1/d/clone-1/cmd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let original = copy("127.0.0.1");
    let clone = copy("127.0.0.2");

    // Each audit counts the takeovers since the previous one; two copies reconnecting about
    // once a second each make several between audits.
    let mut found = BTreeSet::new();
    wait_for(
        "the audit to name the clone",
        Duration::from_secs(60),
        || {
            std::thread::sleep(Duration::from_secs(4));
            let (status, run) = est.api("POST", "/api/v1/posture/runs", None);
            assert_eq!(status, 201, "{run}");
            found = open_findings(&est).remove("clone-1").unwrap_or_default();
            found.contains("certificate-shared") && found.contains("conflicting-client-ids")
        },
    );
    drop((original, clone));
    let (_, page) = est.api(
        "GET",
        "/api/v1/findings?status=open&check=certificate-shared",
        None,
    );
    let finding = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["device"] == "clone-1" && f["check"] == "certificate-shared")
        .cloned()
        .unwrap();
    let addresses = finding["evidence"]["sessions"]["addresses"].to_string();
    assert!(
        addresses.contains("127.0.0.1") && addresses.contains("127.0.0.2"),
        "{finding}"
    );
    assert!(
        finding["evidence"].get("key").is_none(),
        "one device, one key: {finding}"
    );
}
