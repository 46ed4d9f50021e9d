//! The lab listener with stock `mosquitto_pub`/`mosquitto_sub`: off by default, loopback only
//! unless a danger option is set, optional credentials, general MQTT features (retained
//! messages, QoS 2, wills, persistent sessions, shared subscriptions), and isolation from the
//! devices' broker.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;

mod common;

use common::*;

fn lab_args(addr: &str) -> Vec<String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    vec!["-h".into(), host.into(), "-p".into(), port.into()]
}

fn publish(addr: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new("mosquitto_pub")
        .args(lab_args(addr))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn subscriber(addr: &str, extra: &[&str]) -> Child {
    Command::new("mosquitto_sub")
        .args(lab_args(addr))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn output(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

#[test]
fn lab_listener_is_a_general_broker_isolated_from_devices() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = start_with_env(
        h,
        &[
            ("GARRISON_BROKER__LAB__ENABLED", "true"),
            ("GARRISON_BROKER__LAB__LISTEN", "127.0.0.1:0"),
        ],
    );
    let lab = server.lab.clone().expect("serve prints the lab address");

    // Retained message: a later subscriber gets it.
    assert_eq!(
        publish(&lab, &["-t", "lab/retained", "-m", "keep", "-r", "-q", "1"]).0,
        0
    );
    let out = output(subscriber(
        &lab,
        &["-t", "lab/retained", "-C", "1", "-W", "5"],
    ));
    assert_eq!(out.trim(), "keep");

    // QoS 2, MQTT 5.
    let sub = subscriber(
        &lab,
        &[
            "-V", "mqttv5", "-t", "lab/q2", "-q", "2", "-C", "1", "-W", "5",
        ],
    );
    settle();
    assert_eq!(
        publish(
            &lab,
            &["-V", "mqttv5", "-t", "lab/q2", "-m", "two", "-q", "2"]
        )
        .0,
        0
    );
    assert_eq!(output(sub).trim(), "two");

    // Topic aliases (MQTT 5): after the first message only the alias is sent.
    let sub = subscriber(
        &lab,
        &[
            "-V",
            "mqttv5",
            "-t",
            "lab/alias",
            "-q",
            "1",
            "-C",
            "3",
            "-W",
            "5",
        ],
    );
    settle();
    let mut aliased = Command::new("mosquitto_pub")
        .args(lab_args(&lab))
        .args(["-V", "mqttv5", "-t", "lab/alias", "-q", "1", "-l"])
        .args(["-D", "publish", "topic-alias", "3"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = aliased.stdin.take().unwrap();
        stdin.write_all(b"a1\na2\na3\n").unwrap();
    }
    assert!(aliased.wait().unwrap().success());
    assert_eq!(
        output(sub).split_whitespace().collect::<Vec<_>>(),
        ["a1", "a2", "a3"]
    );

    // Flow control (MQTT 5): a subscriber with receive-maximum 1 still gets every message.
    let sub = subscriber(
        &lab,
        &[
            "-V",
            "mqttv5",
            "-t",
            "lab/flow",
            "-q",
            "1",
            "-C",
            "5",
            "-W",
            "5",
            "-D",
            "connect",
            "receive-maximum",
            "1",
        ],
    );
    settle();
    for i in 0..5 {
        assert_eq!(
            publish(&lab, &["-t", "lab/flow", "-m", &format!("f{i}"), "-q", "1"]).0,
            0
        );
    }
    assert_eq!(output(sub).split_whitespace().count(), 5);

    // Will: a client that vanishes without DISCONNECT has its will published.
    let watcher = subscriber(&lab, &["-t", "lab/will", "-C", "1", "-W", "10"]);
    let mut doomed = subscriber(
        &lab,
        &[
            "-t",
            "lab/nothing",
            "--will-topic",
            "lab/will",
            "--will-payload",
            "gone",
            "-k",
            "5",
        ],
    );
    settle();
    doomed.kill().unwrap();
    let _ = doomed.wait();
    assert_eq!(output(watcher).trim(), "gone");

    // Persistent session: QoS 1 messages published while away are delivered on return.
    let _ = output(subscriber(
        &lab,
        &[
            "-i",
            "keeper",
            "-c",
            "-q",
            "1",
            "-t",
            "lab/persist",
            "-W",
            "1",
        ],
    ));
    assert_eq!(
        publish(&lab, &["-t", "lab/persist", "-m", "while-away", "-q", "1"]).0,
        0
    );
    let out = output(subscriber(
        &lab,
        &[
            "-i",
            "keeper",
            "-c",
            "-q",
            "1",
            "-t",
            "lab/persist",
            "-C",
            "1",
            "-W",
            "5",
        ],
    ));
    assert_eq!(out.trim(), "while-away");

    // Shared subscription: each message goes to exactly one member of the group.
    let a = subscriber(&lab, &["-t", "$share/g/lab/shared", "-q", "1", "-W", "3"]);
    let b = subscriber(&lab, &["-t", "$share/g/lab/shared", "-q", "1", "-W", "3"]);
    settle();
    for i in 0..10 {
        assert_eq!(
            publish(
                &lab,
                &["-t", "lab/shared", "-m", &format!("m{i}"), "-q", "1"]
            )
            .0,
            0
        );
    }
    let (a, b) = (output(a), output(b));
    let count = |s: &str| s.lines().filter(|l| l.starts_with('m')).count();
    assert_eq!(count(&a) + count(&b), 10, "a: {a}\nb: {b}");

    // Isolation: a lab client subscribed to everything sees no device traffic, and cannot
    // reach a device's command channel.
    let ca = h.join("garrison-data/ca.pem");
    let est = est_for(&server, h, &ca);
    let (status, created) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": "dev-1"})),
    );
    assert_eq!(status, 201);
    let csr = est.csr("dev-1", "dev-1");
    let (status, text) = est.enroll(
        "simpleenroll",
        &csr,
        &[
            "-u",
            &format!("dev-1:{}", created["token"].as_str().unwrap()),
        ],
    );
    assert_eq!(status, 200, "{text}");
    std::fs::write(h.join("dev-1.pem"), est.certs_from(&text, "dev-1-cert")).unwrap();
    let spy = subscriber(&lab, &["-t", "#", "-v", "-W", "3"]);
    settle();
    let (host, port) = server.mqtt.as_deref().unwrap().rsplit_once(':').unwrap();
    let device = Command::new("mosquitto_pub")
        .args(["-h", host, "-p", port, "--cafile"])
        .arg(&ca)
        .arg("--cert")
        .arg(h.join("dev-1.pem"))
        .arg("--key")
        .arg(h.join("dev-1.key"))
        .args([
            "-i",
            "dev-1",
            "-t",
            "garrison/v1/d/dev-1/telemetry",
            "-m",
            "secret",
            "-q",
            "1",
        ])
        .output()
        .unwrap();
    assert!(device.status.success());
    let seen = output(spy);
    assert!(
        !seen.contains("secret"),
        "lab client saw device traffic: {seen}"
    );
    assert!(
        seen.contains("lab/retained keep"),
        "the spy itself works: {seen}"
    );
    let (status, session) = est.api("GET", "/api/v1/devices/dev-1/session", None);
    assert_eq!(
        (status, &session["messages_in"]),
        (200, &json!(1)),
        "{session}"
    );
}

#[test]
fn lab_listener_refuses_non_loopback_and_enforces_credentials() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (ok, _, err) = run(
        garrison(h)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("GARRISON_BROKER__LAB__ENABLED", "true")
            .env("GARRISON_BROKER__LAB__LISTEN", "0.0.0.0:0"),
        None,
    );
    assert!(!ok);
    assert!(err.contains("danger_allow_non_loopback"), "{err}");

    let server = start_with_env(
        h,
        &[
            ("GARRISON_BROKER__LAB__ENABLED", "true"),
            ("GARRISON_BROKER__LAB__LISTEN", "127.0.0.1:0"),
            ("GARRISON_BROKER__LAB__USERNAME", "lab"),
            ("GARRISON_BROKER__LAB__PASSWORD", "lab-password-1"),
        ],
    );
    let lab = server.lab.clone().unwrap();
    // CONNACK 4: bad user name or password.
    let (rc, _) = publish(&lab, &["-t", "t", "-m", "x"]);
    assert_eq!(rc, 4, "anonymous refused");
    let (rc, _) = publish(&lab, &["-t", "t", "-m", "x", "-u", "lab", "-P", "wrong"]);
    assert_eq!(rc, 4, "wrong password refused");
    let (rc, err) = publish(
        &lab,
        &["-t", "t", "-m", "x", "-u", "lab", "-P", "lab-password-1"],
    );
    assert_eq!(rc, 0, "{err}");
}
