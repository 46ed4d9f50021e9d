//! The hawkBit DDI API with a stock client: Debian's `swupdate` in suricatta mode, unchanged,
//! enrolled through EST with `openssl` + `curl`, authenticated by its certificate. It polls
//! Garrison, sends its attributes (`configData`), fetches the deployment of a campaign, checks
//! the artifact's SHA-1, installs the signed `.swu` image (its `rawfile` handler writes the
//! payload), and after the "reboot" (a restart with `-c 2`) reports success, which completes
//! the campaign. A controller id other than the certificate's is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod common;

use common::*;

fn sh(cmd: &str, dir: &Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A signed `.swu` whose `rawfile` handler writes `payload.txt` to `target`: the image is
/// signed with a throwaway RSA certificate (Debian's swupdate accepts only signed images).
fn swu_image(dir: &Path, target: &Path) -> std::path::PathBuf {
    let img = dir.join("img");
    std::fs::create_dir_all(&img).unwrap();
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout signkey.pem -out signcert.pem \
         -days 2 -subj /CN=swu-signer 2>/dev/null",
        dir,
    );
    std::fs::write(img.join("payload.txt"), "garrison 9.9.0\n").unwrap();
    let digest = {
        let out = Command::new("sha256sum")
            .arg(img.join("payload.txt"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    };
    std::fs::write(
        img.join("sw-description"),
        format!(
            "software =\n{{\n\tversion = \"9.9.0\";\n\thardware-compatibility: [ \"1.0\" ];\n\
             \tdescription = \"Garrison CI image\";\n\tfiles: ( {{ filename = \"payload.txt\"; \
             path = \"{}\"; type = \"rawfile\"; sha256 = \"{digest}\"; }} );\n}}\n",
            target.display()
        ),
    )
    .unwrap();
    sh(
        "openssl cms -sign -in sw-description -out sw-description.sig -signer ../signcert.pem \
         -inkey ../signkey.pem -outform DER -nosmimecap -binary",
        &img,
    );
    sh(
        "printf '%s\\n' sw-description sw-description.sig payload.txt | cpio -o -H crc --quiet > ../ci.swu",
        &img,
    );
    dir.join("ci.swu")
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn swupdate(dir: &Path, cfg: &Path, suricatta: &str, log: &str) -> Daemon {
    Daemon(
        Command::new("swupdate")
            .arg("-f")
            .arg(cfg)
            .args(["-H", "ci:1.0", "-u", suricatta])
            .current_dir(dir)
            .stdout(Stdio::from(std::fs::File::create(dir.join(log)).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join(format!("{log}.err"))).unwrap(),
            ))
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, dir: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("swupdate.log")).unwrap_or_default();
            let log2 = std::fs::read_to_string(dir.join("confirm.log")).unwrap_or_default();
            panic!("timed out waiting for {what}\nswupdate log:\n{log}\nconfirm log:\n{log2}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn stock_swupdate_completes_a_campaign_over_the_hawkbit_ddi_api() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(
        h,
        &[
            ("GARRISON_UPDATES__CAMPAIGN_TICK", "200ms"),
            ("GARRISON_UPDATES__DDI_POLL", "1s"),
        ],
    );
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);

    // The device: a key and certificate through EST, and its model reported once over MQTT.
    let bootstrap = bootstrap_token(&est, "swu-*", 2);
    let csr = est.csr("swu-1", "swu-1");
    let (status, text) = est.enroll("simpleenroll", &csr, &["-u", &format!("swu-1:{bootstrap}")]);
    assert_eq!(status, 200, "{text}");
    std::fs::write(h.join("swu-1.pem"), est.certs_from(&text, "swu-1-cert")).unwrap();
    let (mqtt_host, mqtt_port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let inventory = json!({"schema": 1, "device_id": "swu-1", "collected_at": 1_800_000_000_000i64,
        "hardware": {"manufacturer": "Acme", "model": "SWU-BOARD"}, "firmware": {"version": "1.0.0"}});
    let published = Command::new("mosquitto_pub")
        .args(["-h", mqtt_host, "-p", mqtt_port, "--cafile"])
        .arg(&ca)
        .args(["-i", "swu-1", "--cert"])
        .arg(h.join("swu-1.pem"))
        .arg("--key")
        .arg(h.join("swu-1.key"))
        .args(["-t", "garrison/v1/d/swu-1/inventory", "-q", "1", "-m"])
        .arg(inventory.to_string())
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );

    // The release: the signed .swu, in a manifest signed offline.
    let installed = h.join("installed/payload.txt");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    let image = swu_image(h, &installed);
    release_root(h);
    sign_release(
        h,
        "release.key",
        "Acme",
        "SWU-BOARD",
        "2",
        "9.9.0",
        "ci.swu",
        "swu.cose",
    );
    let publish = |args: &[&str]| remote(h, &est, args);
    publish(&["release", "pin", "root.cose"]);
    publish(&["release", "publish", "swu.cose", "--artifacts", "."]);
    let (_, releases) = est.api("GET", "/api/v1/updates/releases", None);
    let release = releases["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(image.exists());

    // swupdate's configuration: Garrison's CA, the device's certificate, its attributes.
    let cfg = h.join("swupdate.cfg");
    let url = est.url.clone();
    std::fs::write(
        &cfg,
        format!(
            "globals : {{ loglevel = 6; public-key-file = \"{signcert}\"; }};\n\
             identify : ( {{ name = \"serial\"; value = \"SN-0001\"; }} );\n\
             suricatta : {{\n  tenant = \"default\"; id = \"swu-1\"; url = \"{url}\";\n  \
             polldelay = 1; retry = 2; retrywait = 1;\n  cafile = \"{ca}\";\n  \
             sslcert = \"{cert}\";\n  sslkey = \"{key}\";\n}};\n",
            signcert = h.join("signcert.pem").display(),
            ca = ca.display(),
            cert = h.join("swu-1.pem").display(),
            key = h.join("swu-1.key").display(),
        ),
    )
    .unwrap();
    let daemon = swupdate(h, &cfg, " ", "swupdate.log");
    // Its polls make it reachable; its attributes arrive.
    wait_for("configData", h, || {
        let (_, events) = est.api("GET", "/api/v1/events?device=swu-1", None);
        events["items"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "ddi_attributes"))
    });

    let (status, campaign) = est.api(
        "POST",
        "/api/v1/updates/campaigns",
        Some(json!({
            "name": "swupdate over DDI",
            "release": release,
            "target": {"query": "id = \"swu-1\""},
            "phases": [{"percent": 100}],
            "success_threshold": 100,
            "error_threshold": 0,
            "max_attempts": 1,
        })),
    );
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let stage = |est: &Est<'_>| -> String {
        let (_, devices) = est.api(
            "GET",
            &format!("/api/v1/updates/campaigns/{id}/devices"),
            None,
        );
        devices["items"][0]["stage"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // swupdate downloads the image, checks its SHA-1, installs it and says so.
    wait_for("the install", h, || stage(&est) == "installed");
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        "garrison 9.9.0\n"
    );
    // After the "reboot", swupdate confirms the update; the campaign completes.
    drop(daemon);
    let _confirm = swupdate(h, &cfg, "-c 2", "confirm.log");
    wait_for("the confirmation", h, || stage(&est) == "succeeded");
    let (_, done): (u16, Value) = est.api("GET", &format!("/api/v1/updates/campaigns/{id}"), None);
    assert_eq!(done["state"], "completed", "{done}");
    let (_, history) = est.api(
        "GET",
        &format!("/api/v1/updates/campaigns/{id}/devices/swu-1"),
        None,
    );
    let stages: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["notified", "downloading", "installed", "succeeded"],
        "{history}"
    );

    // Another device's controller id with this certificate is refused.
    let (_, out, _) = run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .arg("--cert")
            .arg(h.join("swu-1.pem"))
            .arg("--key")
            .arg(h.join("swu-1.key"))
            .arg(format!("{url}/default/controller/v1/swu-2")),
        None,
    );
    assert_eq!(out.trim(), "403");
    let (_, out, _) = run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/default/controller/v1/swu-1")),
        None,
    );
    assert_eq!(out.trim(), "401");

    // A device whose client cannot present a certificate uses a target token instead.
    let (status, issued) = est.api("POST", "/api/v1/devices/swu-1/ddi-token", None);
    assert_eq!(status, 201, "{issued}");
    let target = issued["token"].as_str().unwrap().to_owned();
    let poll = |token: &str, controller: &str| -> (String, Value) {
        let (_, out, _) = run(
            Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}", "--cacert"])
                .arg(&ca)
                .args(["-H", &format!("Authorization: TargetToken {token}")])
                .arg(format!("{url}/default/controller/v1/{controller}")),
            None,
        );
        let (body, code) = out.rsplit_once('\n').unwrap();
        (
            code.trim().to_owned(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let (code, answer) = poll(&target, "swu-1");
    assert_eq!(code, "200", "{answer}");
    assert_eq!(answer["config"]["polling"]["sleep"], "00:00:01");
    assert_eq!(poll(&target, "swu-2").0, "403");
    assert_eq!(poll("gdt_forged", "swu-1").0, "401");
    // Issuing again replaces it; withdrawing it ends it.
    let (_, again) = est.api("POST", "/api/v1/devices/swu-1/ddi-token", None);
    assert_eq!(poll(&target, "swu-1").0, "401");
    let replaced = again["token"].as_str().unwrap().to_owned();
    assert_eq!(poll(&replaced, "swu-1").0, "200");
    // A revoked device's token opens nothing either.
    let (_, device) = est.api("GET", "/api/v1/devices/swu-1", None);
    let serial = device["current_serial"].as_str().unwrap().to_owned();
    let (status, revoked) = est.api(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(json!({"reason": "key-compromise"})),
    );
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(poll(&replaced, "swu-1").0, "401");
    let (status, _) = est.api("DELETE", "/api/v1/devices/swu-1/ddi-token", None);
    assert_eq!(status, 204);
    assert_eq!(poll(&replaced, "swu-1").0, "401");
    let (status, _) = est.api("POST", "/api/v1/devices/nope-1/ddi-token", None);
    assert_eq!(status, 404);
}
