//! An update campaign end to end over the real protocols: a release signed offline with
//! `garrison release`, published, and rolled out in two phases to simulated cameras over MQTT.
//! Each device pins the trust root, verifies the manifest, downloads the artifact over HTTPS
//! with its own certificate, reports every stage on `update/status`, and reports its new
//! firmware. The same release offered again is answered as already installed; an older one,
//! validly signed, is refused by every device as a rollback, which aborts that campaign. A
//! camera past its end of support is marked unpatchable with quarantine as its compensating
//! control, and campaigns leave it out. curl shows the download route refuses requests without
//! a device certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod common;

use common::*;

fn wait_campaign(est: &Est<'_>, id: &str, home: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, c) = est.api("GET", &format!("/api/v1/updates/campaigns/{id}"), None);
        assert_eq!(status, 200, "{c}");
        let state = c["state"].as_str().unwrap();
        if ["completed", "aborted", "cancelled"].contains(&state) {
            return c;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(home.join("sim.log")).unwrap_or_default();
            panic!("campaign stuck: {c}\nsim log tail:\n{}", tail(&log));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn tail(s: &str) -> String {
    s.lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_campaign_updates_simulated_cameras_over_mqtt_and_a_rollback_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(h, &[("GARRISON_UPDATES__CAMPAIGN_TICK", "200ms")]);
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let token = est.token.clone();

    // Offline: keys, the root, a release for the simulator's cameras.
    release_root(h);
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::create_dir(h.join("dist")).unwrap();
    std::fs::write(h.join("dist/cam.swu"), &image).unwrap();
    sign_release(
        h,
        "release.key",
        "Acme Vision",
        "AV-CAM-220",
        "2",
        "9.9.0",
        "dist/cam.swu",
        "cam.cose",
    );
    let (status, body) = est.send_file(
        "PUT",
        "/api/v1/updates/root",
        &token,
        "application/cose",
        &h.join("root.cose"),
    );
    assert_eq!(status, 200, "{body}");
    let digest = {
        let out = Command::new("sha256sum")
            .arg(h.join("dist/cam.swu"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    };
    let (status, body) = est.send_file(
        "PUT",
        &format!("/api/v1/updates/artifacts/{digest}"),
        &token,
        "application/octet-stream",
        &h.join("dist/cam.swu"),
    );
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, release) = est.send_file(
        "POST",
        "/api/v1/updates/releases",
        &token,
        "application/cose",
        &h.join("cam.cose"),
    );
    assert_eq!(status, 201, "{release}");
    let release_id = release["id"].as_str().unwrap().to_owned();

    // Ten simulated devices, seven of them cameras.
    let bootstrap = bootstrap_token(&est, "sim-*", 20);
    let sim = Guard(
        garrison(h)
            .args([
                "sim",
                "--devices",
                "10",
                "--weak-share",
                "0",
                "--server",
                &est.url,
            ])
            .args(["--mqtt", server.mqtt.as_deref().unwrap(), "--ca-cert"])
            .arg(&ca)
            .args(["--token", &bootstrap, "--state-dir"])
            .arg(h.join("sim"))
            .args(["--telemetry-interval", "5s"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(h.join("sim.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let cameras = "model = \"AV-CAM-220\"";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = est.api(
            "GET",
            &format!(
                "/api/v1/devices?q={}",
                urlencode(&format!("{cameras} and online = true"))
            ),
            None,
        );
        if page["items"].as_array().map_or(0, Vec::len) == 7 {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(h.join("sim.log")).unwrap_or_default();
            panic!(
                "cameras did not come online: {status} {page}\n{}",
                tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    // Nobody may download without a device certificate.
    let (_, out, _) = run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .arg(format!("{}/device/v1/artifacts/{digest}", est.url)),
        None,
    );
    assert_eq!(out.trim(), "401");

    // One camera is past its end of support: it is quarantined instead, and left out.
    let (_, cams) = est.api(
        "GET",
        &format!("/api/v1/devices?q={}", urlencode(cameras)),
        None,
    );
    let retired = cams["items"][6]["id"].as_str().unwrap().to_owned();
    let (status, marked) = est.api(
        "PUT",
        &format!("/api/v1/devices/{retired}/unpatchable"),
        Some(json!({"reason": "end-of-support", "control": "quarantine"})),
    );
    assert_eq!(status, 200, "{marked}");
    assert_eq!(marked["in_force"], true, "{marked}");
    let (status, bad) = est.api(
        "PUT",
        &format!("/api/v1/devices/{retired}/unpatchable"),
        Some(json!({"reason": "eol", "control": "hope"})),
    );
    assert_eq!(status, 400, "{bad}");
    let (_, listed) = est.api("GET", "/api/v1/updates/unpatchable", None);
    assert_eq!(listed[0]["device"], retired.as_str(), "{listed}");
    assert_eq!(listed[0]["model"], "AV-CAM-220", "{listed}");

    // The operator starts it from the command line.
    let cli = |args: &[&str]| remote(h, &est, args);
    let out = cli(&[
        "campaign",
        "create",
        "--release",
        &release_id,
        "--name",
        "cameras to 9.9.0",
        "--query",
        cameras,
        "--phases",
        "30,100",
        "--success-threshold",
        "100",
        "--error-threshold",
        "0",
        "-o",
        "json",
    ]);
    let campaign: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(campaign["devices"], 6);
    assert_eq!(campaign["excluded"]["unpatchable"], 1, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let done = wait_campaign(&est, &id, h);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["stages"]["succeeded"], 6, "{done}");
    assert_eq!(done["phase"], 2);

    // The devices report their new firmware; each one's path is kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = est.api(
            "GET",
            &format!("/api/v1/devices?q={}", urlencode("firmware = \"9.9.0\"")),
            None,
        );
        if page["items"].as_array().map_or(0, Vec::len) == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "firmware not reported: {page}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let listed = cli(&[
        "campaign",
        "devices",
        &id,
        "--stage",
        "succeeded",
        "-o",
        "json",
    ]);
    let devices: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 6, "{devices}");
    let device = devices[0]["device"].as_str().unwrap().to_owned();
    let (status, history) = est.api(
        "GET",
        &format!("/api/v1/updates/campaigns/{id}/devices/{device}"),
        None,
    );
    assert_eq!(status, 200, "{history}");
    let stages: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "notified",
            "downloading",
            "downloaded",
            "verified",
            "installing",
            "installed",
            "rebooted",
            "succeeded"
        ]
    );

    let rollout = |name: &str, release: &str| -> (String, Value) {
        let (status, c) = est.api(
            "POST",
            "/api/v1/updates/campaigns",
            Some(json!({
                "name": name,
                "release": release,
                "target": {"query": cameras},
                "phases": [{"percent": 30}, {"percent": 100}],
                "max_attempts": 1,
            })),
        );
        assert_eq!(status, 201, "{c}");
        let id = c["id"].as_str().unwrap().to_owned();
        let done = wait_campaign(&est, &id, h);
        (id, done)
    };
    // The same release again (a retry whose `succeeded` was lost, say): every device answers
    // that it already runs it.
    let (_, again) = rollout("again", &release_id);
    assert_eq!(again["state"], "completed", "{again}");
    assert_eq!(again["stages"]["succeeded"], 6, "{again}");

    // An older release, validly signed: every device refuses it as a rollback, and the
    // campaign aborts on its first phase.
    std::fs::write(h.join("dist/cam-old.swu"), b"old image").unwrap();
    sign_release(
        h,
        "release.key",
        "Acme Vision",
        "AV-CAM-220",
        "1",
        "9.8.0",
        "dist/cam-old.swu",
        "cam-old.cose",
    );
    cli(&["release", "publish", "cam-old.cose", "--artifacts", "dist"]);
    let (_, list) = est.api("GET", "/api/v1/updates/releases", None);
    let old = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sequence"] == 1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (replay_id, replay) = rollout("rollback", &old);
    assert_eq!(replay["state"], "aborted", "{replay}");
    let (_, failed) = est.api(
        "GET",
        &format!("/api/v1/updates/campaigns/{replay_id}/devices?stage=failed"),
        None,
    );
    let reason = failed["items"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("sequence"), "{reason}");
    // No device was notified beyond the first phase.
    assert!(
        replay["stages"]["cancelled"].as_u64().unwrap() >= 3,
        "{replay}"
    );

    // Every decision is in the audit log.
    let (_, audit) = est.api("GET", "/api/v1/audit?limit=200", None);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "update.campaign.create",
        "update.campaign.advance",
        "update.campaign.complete",
        "update.campaign.abort",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    drop(sim);
}

/// The agent installs through a configured installer, checks the new software's health, and
/// rolls back when the check fails; each outcome reaches the campaign. Between the two, the
/// vendor rotates its keys twice and the agent follows the chain of roots.
#[test]
fn the_agent_installs_checks_health_and_rolls_back() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(h, &[("GARRISON_UPDATES__CAMPAIGN_TICK", "200ms")]);
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);

    // The installer records what it was given; the health check passes while `healthy`
    // exists; the rollback records that it ran.
    let scripts = h.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let write = |name: &str, body: &str| {
        std::fs::write(scripts.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
    };
    write(
        "install.sh",
        &format!("echo \"$@\" >> {}/installed.log", h.display()),
    );
    write(
        "health.sh",
        &format!(
            "test -e {}/healthy || {{ echo 'service down' >&2; exit 1; }}",
            h.display()
        ),
    );
    write(
        "rollback.sh",
        &format!("echo rolled back >> {}/rollback.log", h.display()),
    );
    std::fs::write(h.join("healthy"), "").unwrap();

    let bootstrap = bootstrap_token(&est, "gw-update", 1);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../garrison-agent/tests/fixtures/debian-gateway");
    let _agent = Guard(
        garrison(h)
            .args([
                "agent",
                "--server",
                &est.url,
                "--mqtt",
                server.mqtt.as_deref().unwrap(),
            ])
            .arg("--ca-cert")
            .arg(&ca)
            .args([
                "--device-id",
                "gw-update",
                "--token",
                &bootstrap,
                "--state-dir",
            ])
            .arg(h.join("agent-state"))
            .arg("--root")
            .arg(&fixture)
            .args([
                "--scan-interval",
                "1s",
                "--telemetry-interval",
                "5s",
                "--update-vendor",
                "acme",
            ])
            .arg("--update-installer")
            .arg(format!("sh {}", scripts.join("install.sh").display()))
            .arg("--update-health-check")
            .arg(format!("sh {}", scripts.join("health.sh").display()))
            .arg("--update-rollback")
            .arg(format!("sh {}", scripts.join("rollback.sh").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(h.join("agent.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !est.api("GET", "/api/v1/devices/gw-update", None).1["reported_at"].is_string() {
        assert!(Instant::now() < deadline, "the agent never reported");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, device) = est.api("GET", "/api/v1/devices/gw-update", None);
    let model = device["model"].as_str().unwrap().to_owned();

    release_root(h);
    std::fs::create_dir_all(h.join("dist")).unwrap();
    std::fs::write(h.join("dist/gw.deb"), vec![7u8; 70_000]).unwrap();
    let cli = |args: &[&str]| remote(h, &est, args);
    cli(&["release", "pin", "root.cose"]);
    let publish = |key: &str, sequence: &str, version: &str| -> String {
        let out = format!("gw-{sequence}.cose");
        sign_release(
            h,
            key,
            "acme",
            &model,
            sequence,
            version,
            "dist/gw.deb",
            &out,
        );
        cli(&["release", "publish", &out, "--artifacts", "dist"]);
        let (_, list) = est.api("GET", "/api/v1/updates/releases", None);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["sequence"] == sequence.parse::<i64>().unwrap())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first_release = publish("release.key", "2", "2.0.0");
    let rollout = |release: &str| -> Value {
        let (status, c) = est.api(
            "POST",
            "/api/v1/updates/campaigns",
            Some(json!({
                "name": "gateway", "release": release,
                "target": {"query": "id = \"gw-update\""},
                "phases": [{"percent": 100}], "max_attempts": 1, "error_threshold": 0,
            })),
        );
        assert_eq!(status, 201, "{c}");
        wait_campaign(&est, c["id"].as_str().unwrap(), h)
    };

    // 2.0.0: installed and healthy; the device now reports it.
    let first = rollout(&first_release);
    assert_eq!(first["state"], "completed", "{first}");
    let installed = std::fs::read_to_string(h.join("installed.log")).unwrap();
    assert!(installed.trim_end().ends_with("gw.deb"), "{installed}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while est.api("GET", "/api/v1/devices/gw-update", None).1["firmware"] != "2.0.0" {
        assert!(
            Instant::now() < deadline,
            "the new firmware was not reported"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The vendor rotates its release key twice; the device, which pinned version 1, walks
    // the chain 1 → 2 → 3 to trust 3.0.0, signed by the newest key only.
    let mut previous = "root.cose".to_owned();
    for version in [2, 3] {
        let key = format!("release-{version}");
        ok(h, &["release", "keygen", &key]);
        let out = format!("root-{version}.cose");
        ok(
            h,
            &[
                "release",
                "root",
                "--root-key",
                "root.pub",
                "--release-key",
                &format!("{key}.pub"),
                "--sign-with",
                "root.key",
                "--previous",
                &previous,
                "--out",
                &out,
            ],
        );
        cli(&["release", "pin", &out]);
        previous = out;
    }
    let second_release = publish("release-3.key", "3", "3.0.0");
    // The agent kept the root it pinned (version 1), so a restart cannot re-pin the server's.
    assert!(h.join("agent-state/update-root.cose").exists());

    // 3.0.0: installed, but the service does not come up: rolled back, campaign aborted.
    std::fs::remove_file(h.join("healthy")).unwrap();
    let second = rollout(&second_release);
    assert_eq!(second["state"], "aborted", "{second}");
    assert_eq!(second["stages"]["rolled-back"], 1, "{second}");
    let (_, history) = est.api(
        "GET",
        &format!(
            "/api/v1/updates/campaigns/{}/devices/gw-update",
            second["id"].as_str().unwrap()
        ),
        None,
    );
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert!(
        last["reason"].as_str().unwrap().contains("service down"),
        "{history}"
    );
    assert_eq!(
        std::fs::read_to_string(h.join("rollback.log")).unwrap(),
        "rolled back\n"
    );
    assert_eq!(
        est.api("GET", "/api/v1/devices/gw-update", None).1["firmware"],
        "2.0.0"
    );
}
