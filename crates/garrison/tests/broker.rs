//! The embedded MQTT broker end to end with stock clients: devices enroll over EST with
//! `openssl` + `curl`, then `mosquitto_pub` / `mosquitto_sub` (MQTT 3.1.1 and 5) and
//! `openssl s_client` exercise identity, the topic ACL, quarantine, live revocation, and the
//! refusals (no certificate, foreign CA, expired certificate, claim certificate, TLS 1.1,
//! silent and malformed connections).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod common;

use common::*;

struct Mqtt<'a> {
    host: String,
    port: String,
    ca: &'a Path,
    dir: &'a Path,
}

impl<'a> Mqtt<'a> {
    fn new(server: &Server, ca: &'a Path, dir: &'a Path) -> Mqtt<'a> {
        let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
        Mqtt {
            host: host.into(),
            port: port.into(),
            ca,
            dir,
        }
    }

    fn args(&self, device: &str, client_id: &str) -> Vec<String> {
        let mut args = vec![
            "-h".into(),
            self.host.clone(),
            "-p".into(),
            self.port.clone(),
            "--cafile".into(),
            self.ca.display().to_string(),
            "-i".into(),
            client_id.into(),
        ];
        if !device.is_empty() {
            args.extend([
                "--cert".into(),
                self.dir.join(format!("{device}.pem")).display().to_string(),
                "--key".into(),
                self.dir.join(format!("{device}.key")).display().to_string(),
            ]);
        }
        args
    }

    /// `mosquitto_pub` as `device` (certificate) with client id `client_id`; (exit code,
    /// stderr).
    fn publish(&self, device: &str, client_id: &str, topic: &str, extra: &[&str]) -> (i32, String) {
        let out = Command::new("mosquitto_pub")
            .args(self.args(device, client_id))
            .args(["-t", topic, "-m", "{\"schema\":1}", "-q", "1"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn subscriber(&self, device: &str, topic: &str, extra: &[&str]) -> std::process::Child {
        Command::new("mosquitto_sub")
            .args(self.args(device, device))
            .args(["-t", topic, "-q", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn enroll(est: &Est<'_>, bootstrap: &str, device: &str) -> PathBuf {
    let csr = est.csr(device, device);
    let (status, text) = est.enroll(
        "simpleenroll",
        &csr,
        &["-u", &format!("{device}:{bootstrap}")],
    );
    assert_eq!(status, 200, "{text}");
    let pem = est.dir.join(format!("{device}.pem"));
    std::fs::write(&pem, est.certs_from(&text, &format!("{device}-cert"))).unwrap();
    pem
}

fn bootstrap_token(est: &Est<'_>) -> String {
    let (status, created) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "*", "max_uses": 20})),
    );
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

fn session(est: &Est<'_>, device: &str) -> Value {
    let (status, s) = est.api("GET", &format!("/api/v1/devices/{device}/session"), None);
    assert_eq!(status, 200, "{s}");
    s
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn serial_of(pem: &Path) -> String {
    subject(pem)
        .split("serial=")
        .nth(1)
        .unwrap()
        .trim()
        .to_lowercase()
}

#[test]
fn devices_speak_only_as_themselves_and_revocation_is_live() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(
        h,
        &[
            ("GARRISON_BROKER__HANDSHAKE_TIMEOUT", "1s"),
            ("GARRISON_BROKER__MAX_PACKET_SIZE", "4096"),
        ],
    );
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let mqtt = Mqtt::new(&server, &ca, h);
    let token = bootstrap_token(&est);
    let dev1 = enroll(&est, &token, "dev-1");
    enroll(&est, &token, "dev-2");

    // Own topic at QoS 1 (3.1.1 and 5): acknowledged and counted.
    assert_eq!(
        mqtt.publish("dev-1", "dev-1", "garrison/v1/d/dev-1/telemetry", &[])
            .0,
        0
    );
    let (rc, err) = mqtt.publish(
        "dev-1",
        "dev-1",
        "garrison/v1/d/dev-1/events",
        &["-V", "mqttv5"],
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(session(&est, "dev-1")["messages_in"], 2);

    // Another device's topic: 3.1.1 loses the connection, 5 gets "not authorized".
    let (rc, err) = mqtt.publish("dev-1", "dev-1", "garrison/v1/d/dev-2/telemetry", &[]);
    assert_ne!(rc, 0, "{err}");
    let (_, err) = mqtt.publish(
        "dev-1",
        "dev-1",
        "garrison/v1/d/dev-2/telemetry",
        &["-V", "mqttv5"],
    );
    assert!(err.contains("Not authorized"), "{err}");
    // A server-to-device channel is subscribe-only.
    let (_, err) = mqtt.publish(
        "dev-1",
        "dev-1",
        "garrison/v1/d/dev-1/cmd",
        &["-V", "mqttv5"],
    );
    assert!(err.contains("Not authorized"), "{err}");
    // Another device's commands, or a wildcard: the subscription is denied.
    let out = Command::new("mosquitto_sub")
        .args(mqtt.args("dev-1", "dev-1"))
        .args(["-t", "garrison/v1/d/+/cmd", "-W", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("denied"), "{text}");
    assert!(
        session(&est, "dev-1")["authorization_failures"]
            .as_u64()
            .unwrap()
            >= 4
    );

    // Identity: client id must equal the CN; a certificate is required and must be ours.
    let (rc, err) = mqtt.publish("dev-1", "dev-2", "garrison/v1/d/dev-2/telemetry", &[]);
    assert_eq!(rc, 5, "client id ≠ CN: {err}");
    assert!(err.contains("not authorised"), "{err}");
    let (rc, _) = mqtt.publish("", "dev-1", "garrison/v1/d/dev-1/telemetry", &[]);
    assert_ne!(rc, 0, "no client certificate");
    // A will is published by the broker after the device is gone, past the ACL and the
    // intake: devices may not leave one, not even on their own topics.
    for will_topic in ["garrison/v1/d/dev-2/cmd", "garrison/v1/d/dev-1/telemetry"] {
        let (rc, err) = mqtt.publish(
            "dev-1",
            "dev-1",
            "garrison/v1/d/dev-1/telemetry",
            &["--will-topic", will_topic, "--will-payload", "{}"],
        );
        assert_eq!(rc, 5, "a will on {will_topic}: {err}");
        assert!(err.contains("not authorised"), "{err}");
    }
    let rogue = h.join("rogue");
    std::fs::create_dir_all(&rogue).unwrap();
    for args in [
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=Rogue -days 2",
        "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev-1.key -out dev-1.csr -subj /CN=dev-1",
        "x509 -req -in dev-1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out dev-1.pem -days 2",
    ] {
        let (ok, _, err) = run(
            Command::new("openssl")
                .args(args.split(' '))
                .current_dir(&rogue),
            None,
        );
        assert!(ok, "{err}");
    }
    let rogue_mqtt = Mqtt {
        dir: &rogue,
        ..mqtt_clone(&mqtt)
    };
    let (rc, _) = rogue_mqtt.publish("dev-1", "dev-1", "garrison/v1/d/dev-1/telemetry", &[]);
    assert_ne!(rc, 0, "a certificate from a foreign CA");

    // A claim certificate may enroll but never connect.
    est.claim("factory-a", 3);
    let (rc, err) = mqtt.publish("claim", "claim:factory-a", "garrison/v1/d/x/telemetry", &[]);
    assert_ne!(rc, 0, "claim certificate connected: {err}");

    // TLS 1.1 is refused by the server (the client is told to offer it: OpenSSL 3 would not
    // by default); TLS 1.2 with the device certificate completes, as a control.
    let (ok, out, err) = run(
        Command::new("openssl")
            .args([
                "s_client",
                "-tls1_1",
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-connect",
            ])
            .arg(server.mqtt.as_deref().unwrap()),
        Some(""),
    );
    assert!(!ok && format!("{out}{err}").contains("alert"), "{out}{err}");
    let (ok, out, err) = run(
        Command::new("openssl")
            .args(["s_client", "-tls1_2", "-connect"])
            .arg(server.mqtt.as_deref().unwrap())
            .arg("-CAfile")
            .arg(&ca)
            .arg("-cert")
            .arg(&dev1)
            .arg("-key")
            .arg(h.join("dev-1.key")),
        Some(""),
    );
    assert!(ok && out.contains("Verify return code: 0"), "{out}{err}");

    // Quarantine: telemetry refused, status allowed, updates still delivered.
    let (status, q) = est.api("POST", "/api/v1/devices/dev-2/quarantine", Some(json!({})));
    assert_eq!((status, &q["quarantined"]), (200, &json!(true)), "{q}");
    let (rc, _) = mqtt.publish("dev-2", "dev-2", "garrison/v1/d/dev-2/telemetry", &[]);
    assert_ne!(rc, 0, "quarantined telemetry");
    let (rc, err) = mqtt.publish("dev-2", "dev-2", "garrison/v1/d/dev-2/update/status", &[]);
    assert_eq!(rc, 0, "{err}");
    let sub = mqtt.subscriber(
        "dev-2",
        "garrison/v1/d/dev-2/update",
        &["-C", "1", "-W", "10"],
    );
    wait_for("dev-2 connected", Duration::from_secs(5), || {
        session(&est, "dev-2")["connected"] == true
    });
    let (status, _) = est.api(
        "POST",
        "/api/v1/devices/dev-2/messages",
        Some(json!({"channel": "update", "payload": {"schema": 1, "release": "2.1"}})),
    );
    assert_eq!(status, 202);
    let out = sub.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"release\":\"2.1\""));
    let (status, _) = est.api("POST", "/api/v1/devices/dev-2/release", Some(json!({})));
    assert_eq!(status, 200);
    assert_eq!(
        mqtt.publish("dev-2", "dev-2", "garrison/v1/d/dev-2/telemetry", &[])
            .0,
        0
    );

    // Connections that never finish: a silent TCP client and a silent TLS client are closed
    // after the handshake timeout (1 s here); garbage after TLS is refused. Others carry on.
    let mut silent = TcpStream::connect(server.mqtt.as_deref().unwrap()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let n = silent.read(&mut [0u8; 16]).unwrap_or(0);
    assert_eq!(n, 0, "server sent data to a silent client");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut tls_silent = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(server.mqtt.as_deref().unwrap())
        .arg("-cert")
        .arg(&dev1)
        .arg("-key")
        .arg(h.join("dev-1.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let _stdin = tls_silent.stdin.take();
    let status = loop {
        if let Some(status) = tls_silent.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "silent TLS client never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = status;
    let mut garbage = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(server.mqtt.as_deref().unwrap())
        .arg("-cert")
        .arg(&dev1)
        .arg("-key")
        .arg(h.join("dev-1.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    garbage
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&[0xf0, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3])
        .unwrap();
    let started = Instant::now();
    while garbage.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "malformed packet not refused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        mqtt.publish("dev-2", "dev-2", "garrison/v1/d/dev-2/telemetry", &[])
            .0,
        0
    );

    // Revocation is live: the connected session closes within a second, reconnects are refused.
    let mut sub = mqtt.subscriber("dev-1", "garrison/v1/d/dev-1/cmd", &[]);
    wait_for("dev-1 connected", Duration::from_secs(5), || {
        session(&est, "dev-1")["connected"] == true
    });
    let serial = serial_of(&dev1);
    let (status, revoked) = est.api(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(json!({"reason": "key-compromise"})),
    );
    assert_eq!(status, 200, "{revoked}");
    let closed_after = wait_for("revoked session closed", Duration::from_secs(1), || {
        session(&est, "dev-1")["connected"] == false
    });
    eprintln!("revoked session closed after {closed_after:?}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto_sub kept its session"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(5),
        "reconnect refused as not authorised"
    );
    let (rc, _) = mqtt.publish("dev-1", "dev-1", "garrison/v1/d/dev-1/telemetry", &[]);
    assert_eq!(rc, 5, "a revoked certificate is refused at connect");
}

fn mqtt_clone<'a>(m: &Mqtt<'a>) -> Mqtt<'a> {
    Mqtt {
        host: m.host.clone(),
        port: m.port.clone(),
        ca: m.ca,
        dir: m.dir,
    }
}

#[test]
fn expired_certificates_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Short enough to wait out, long enough for a loaded CI machine to use it once first.
    let server = start_with_env(h, &[("GARRISON_ENROLLMENT__DEVICE_CERT_VALIDITY", "6s")]);
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let mqtt = Mqtt::new(&server, &ca, h);
    let token = bootstrap_token(&est);
    enroll(&est, &token, "old-1");
    // Issued before `enroll` returned: its validity ends before `issued` + 6 s.
    let issued = Instant::now();
    assert_eq!(
        mqtt.publish("old-1", "old-1", "garrison/v1/d/old-1/telemetry", &[])
            .0,
        0
    );
    // X.509 times have whole seconds: wait past the end of the second the validity ends in.
    std::thread::sleep((issued + Duration::from_secs(8)).saturating_duration_since(Instant::now()));
    let (rc, err) = mqtt.publish("old-1", "old-1", "garrison/v1/d/old-1/telemetry", &[]);
    assert_ne!(rc, 0, "an expired certificate connected: {err}");
}

#[test]
fn abuse_limits_slow_publishers_and_refuse_connect_floods() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(
        h,
        &[
            ("GARRISON_BROKER__MAX_MESSAGES_PER_SECOND", "5"),
            ("GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE", "4"),
        ],
    );
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let mqtt = Mqtt::new(&server, &ca, h);
    let token = bootstrap_token(&est);
    enroll(&est, &token, "fast-1");

    // 20 messages at 5/s: the first second's worth goes at once, the rest waits — all are
    // acknowledged and counted, none dropped.
    let started = Instant::now();
    let mut child = Command::new("mosquitto_pub")
        .args(mqtt.args("fast-1", "fast-1"))
        .args(["-t", "garrison/v1/d/fast-1/telemetry", "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..20 {
            writeln!(stdin, "{{\"schema\":1,\"n\":{i}}}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_millis(2500),
        "not slowed down: {took:?}"
    );
    assert_eq!(session(&est, "fast-1")["messages_in"], 20);

    // Connection attempts from one address beyond the limit are refused at CONNECT.
    // (One attempt was used above.)
    for _ in 0..3 {
        let (rc, err) = mqtt.publish("fast-1", "fast-1", "garrison/v1/d/fast-1/events", &[]);
        assert_eq!(rc, 0, "{err}");
    }
    let (rc, err) = mqtt.publish("fast-1", "fast-1", "garrison/v1/d/fast-1/events", &[]);
    assert_eq!(rc, 5, "the fifth attempt in a minute is refused: {err}");
}
