//! The built-in IoT pack: every file embedded and loading, every rule's exemplars passing, the
//! metadata every rule must carry, the correlations firing exactly at their thresholds through
//! a real `Detector`, the simulator's Mirai scenario detected and a benign device left alone.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
};

use garrison_detect::{
    Detection, DetectionKind, Detector, DetectorOptions, LoadOutcome, RuleKind,
    builtin::{IOT_RULES, iot_rule_set},
    lint::{LintLevel, lint_paths},
    testing::run_exemplars,
};
use serde_json::{Value, json};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/iot")
}

/// Categories `docs/events.md` gives the kinds.
const CATEGORIES: &[&str] = &[
    "authentication",
    "authorization",
    "network_listen",
    "process_creation",
    "network_connection",
    "file_change",
    "clock_change",
    "log",
    "telemetry",
    "session",
    "config_drift",
    "device_command",
    "update",
];

/// Every document of the pack, parsed by rsigma.
fn parsed() -> Vec<(&'static str, rsigma_parser::SigmaCollection)> {
    IOT_RULES
        .iter()
        .map(|(source, yaml)| {
            let parsed =
                rsigma_parser::parse_sigma_yaml(yaml).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert!(parsed.errors.is_empty(), "{source}: {:?}", parsed.errors);
            (*source, parsed)
        })
        .collect()
}

/// Rule `name` → `id`, for the rules that have a name.
fn ids_by_name() -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for (_, collection) in parsed() {
        for (name, id) in collection
            .rules
            .iter()
            .map(|r| (&r.name, &r.id))
            .chain(collection.correlations.iter().map(|c| (&c.name, &c.id)))
        {
            if let (Some(name), Some(id)) = (name, id) {
                ids.insert(name.clone(), id.clone());
            }
        }
    }
    ids
}

/// Rule `title` → `id`, for every rule.
fn ids_by_title() -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for (_, collection) in parsed() {
        for (title, id) in collection
            .rules
            .iter()
            .map(|r| (&r.title, &r.id))
            .chain(collection.correlations.iter().map(|c| (&c.title, &c.id)))
        {
            assert!(
                ids.insert(title.clone(), id.clone().unwrap()).is_none(),
                "two rules are titled {title:?}"
            );
        }
    }
    ids
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

#[test]
fn every_file_is_embedded_and_every_rule_loads() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(rules_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .map(|p| format!("iot/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    let embedded: BTreeSet<String> = IOT_RULES.iter().map(|(s, _)| (*s).to_owned()).collect();
    assert_eq!(embedded.len(), IOT_RULES.len(), "a file is listed twice");
    assert_eq!(
        on_disk, embedded,
        "rules/iot and IOT_RULES differ (add new files to builtin.rs)"
    );
    assert!(on_disk.len() >= 25, "{} files", on_disk.len());
    for (source, yaml) in IOT_RULES {
        let path = rules_dir().join(source.trim_start_matches("iot/"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), *yaml, "{source}");
    }

    let mut set = iot_rule_set();
    let detector = Detector::new(&mut set, DetectorOptions::replay()).unwrap();
    let rejected: Vec<String> = set
        .report()
        .iter()
        .filter_map(|r| match &r.outcome {
            LoadOutcome::Rejected(reason) => Some(format!("{}: {reason}", r.source)),
            LoadOutcome::Loaded => None,
        })
        .collect();
    assert!(rejected.is_empty(), "{rejected:#?}");
    let with_warnings: Vec<_> = set
        .report()
        .iter()
        .filter(|r| !r.warnings.is_empty())
        .collect();
    assert!(with_warnings.is_empty(), "{with_warnings:#?}");

    let count = |kind| set.report().iter().filter(|r| r.kind == kind).count();
    let (detections, correlations) = (count(RuleKind::Detection), count(RuleKind::Correlation));
    assert_eq!(detector.rule_counts(), (detections, correlations));
    assert!(
        detections + correlations >= 28,
        "{detections} + {correlations}"
    );
    assert!(correlations >= 10, "{correlations}");
    assert_eq!(count(RuleKind::Filter) + count(RuleKind::Unknown), 0);

    // Every file contributed, and every id is a real UUID used once.
    let sources: BTreeSet<&str> = set.report().iter().map(|r| r.source.as_str()).collect();
    assert_eq!(sources.len(), IOT_RULES.len());
    let mut ids = BTreeSet::new();
    for entry in set.report() {
        let id = entry.id.as_deref().unwrap_or_else(|| panic!("{entry:?}"));
        assert!(is_uuid(id), "{}: {id} is not a UUID", entry.source);
        assert!(ids.insert(id), "{}: duplicate id {id}", entry.source);
    }
}

#[test]
fn every_rule_has_passing_match_and_no_match_exemplars() {
    let mut set = iot_rule_set();
    let report = run_exemplars(&mut set).unwrap();
    assert!(
        report.untested.is_empty(),
        "untested: {:?}",
        report.untested
    );
    let failed: Vec<_> = report.results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(report.passed());

    let mut per_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for result in &report.results {
        let counts = per_rule.entry(result.rule.as_str()).or_default();
        if result.expect_match {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    let loaded = set
        .report()
        .iter()
        .filter(|r| r.outcome == LoadOutcome::Loaded)
        .count();
    assert_eq!(per_rule.len(), loaded, "every rule has exemplars");
    for (rule, (matches, no_matches)) in per_rule {
        assert!(
            matches >= 1 && no_matches >= 1,
            "{rule}: {matches} match, {no_matches} no-match"
        );
    }
}

#[test]
fn every_rule_carries_the_metadata_the_pack_requires() {
    let tactics = [
        "reconnaissance",
        "resource-development",
        "initial-access",
        "execution",
        "persistence",
        "privilege-escalation",
        "defense-evasion",
        "credential-access",
        "discovery",
        "lateral-movement",
        "collection",
        "command-and-control",
        "exfiltration",
        "impact",
    ];
    let technique = |t: &str| {
        let t = t.strip_prefix('t').unwrap_or("");
        let (main, sub) = t.split_once('.').unwrap_or((t, "000"));
        main.len() == 4
            && sub.len() == 3
            && main.chars().chain(sub.chars()).all(|c| c.is_ascii_digit())
    };
    for (source, collection) in parsed() {
        let metadata = collection
            .rules
            .iter()
            .map(|r| {
                (
                    &r.title,
                    &r.tags,
                    r.level,
                    &r.author,
                    r.status,
                    &r.description,
                    &r.falsepositives,
                )
            })
            .chain(collection.correlations.iter().map(|c| {
                (
                    &c.title,
                    &c.tags,
                    c.level,
                    &c.author,
                    c.status,
                    &c.description,
                    &c.falsepositives,
                )
            }));
        for (title, tags, level, author, status, description, falsepositives) in metadata {
            let what = format!("{source}: {title}");
            assert!(level.is_some(), "{what}: no level");
            assert_eq!(author.as_deref(), Some("Garrison"), "{what}");
            assert!(
                matches!(
                    status,
                    Some(rsigma_parser::Status::Stable | rsigma_parser::Status::Experimental)
                ),
                "{what}: {status:?}"
            );
            assert!(description.as_ref().is_some_and(|d| d.len() > 40), "{what}");
            assert!(!falsepositives.is_empty(), "{what}: no falsepositives");
            assert!(
                tags.iter()
                    .any(|t| t.starts_with("attack.t") || t.starts_with("attack.ics.t")),
                "{what}: no ATT&CK technique"
            );
            for tag in tags {
                let rest = tag
                    .strip_prefix("attack.")
                    .unwrap_or_else(|| panic!("{what}: {tag}"));
                let ok = match rest.strip_prefix("ics.") {
                    Some(ics) => technique(ics) && !ics.contains('.'),
                    None => tactics.contains(&rest) || technique(rest),
                };
                assert!(ok, "{what}: malformed ATT&CK tag {tag}");
            }
        }
        for rule in &collection.rules {
            assert_eq!(
                rule.logsource.product.as_deref(),
                Some("garrison"),
                "{source}"
            );
            let category = rule.logsource.category.as_deref().unwrap_or("");
            assert!(CATEGORIES.contains(&category), "{source}: {category}");
        }
        for correlation in &collection.correlations {
            assert!(
                !correlation.group_by.is_empty(),
                "{source}: {}",
                correlation.title
            );
        }
    }
}

/// The exemplar runner evaluates rules without logsource pruning; the monitor's `Detector`
/// prunes. Every detection rule must still fire on its `match` exemplars there, with the whole
/// pack loaded — which also checks each exemplar is tagged with its rule's category — except
/// building blocks of correlations, which must never report on their own.
#[test]
fn match_exemplars_fire_through_a_pruning_detector() {
    let mut set = iot_rule_set();
    let mut detector = Detector::new(&mut set, DetectorOptions::replay()).unwrap();
    for (source, collection) in parsed() {
        for rule in &collection.rules {
            let id = rule.id.as_deref().unwrap();
            for exemplar in rsigma_parser::exemplars(rule).unwrap() {
                let rsigma_parser::ExemplarPayload::Event(event) = &exemplar.payload else {
                    panic!("{source}: {}", exemplar.name);
                };
                let event: Value = serde_json::to_value(event).unwrap();
                let expected = exemplar.expect == rsigma_parser::Expect::Match;
                assert_eq!(event["product"], "garrison", "{source}: {}", exemplar.name);
                assert!(event["time"].is_i64(), "{source}: {}", exemplar.name);
                if expected {
                    assert_eq!(
                        event["category"].as_str(),
                        rule.logsource.category.as_deref(),
                        "{source}: {}",
                        exemplar.name
                    );
                }
                let fired = detector
                    .process(&event)
                    .iter()
                    .any(|d| d.rule_id.as_deref() == Some(id));
                if detector.is_building_block(id) {
                    // Only its correlation reports (tested below); it must never report alone.
                    assert!(!fired, "{source}: {} reported on its own", rule.title);
                    continue;
                }
                assert_eq!(
                    fired, expected,
                    "{source}: {}: {}",
                    rule.title, exemplar.name
                );
            }
        }
    }
}

#[test]
fn the_pack_passes_lint_without_errors_or_warnings() {
    let report = lint_paths(&[rules_dir()]).unwrap();
    assert_eq!(report.files, IOT_RULES.len());
    assert_eq!(report.rejected, 0);
    let findings: Vec<_> = report
        .issues
        .iter()
        .filter(|i| i.level >= LintLevel::Warning)
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");
}

// ---------------------------------------------------------------------------------------------
// Normalised events, per docs/events.md.

/// 2026-11-20T09:00:00Z, in ms.
const T0: i64 = 1_795_165_200_000;
const ATTACKER: &str = "203.0.113.66";
const C2: &str = "198.51.100.23";

fn base(kind: &str, category: &str, service: &str, device: Option<&str>, t: i64) -> Value {
    let mut e = json!({
        "time": t,
        "received_time": t + 300,
        "product": "garrison",
        "category": category,
        "service": service,
        "kind": kind,
    });
    if let Some(device) = device {
        e["device"] = json!({"id": device});
    }
    e
}

fn merge(mut e: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn login_failed(device: &str, t: i64, user: &str, service: &str, src: &str) -> Value {
    merge(
        base("login_failed", "authentication", "device", Some(device), t),
        json!({
            "class_uid": 3002, "activity_name": "Logon", "status": "failure",
            "user": {"name": user}, "service_name": service, "src_endpoint": {"ip": src},
            "message": format!("{service}: failed login for {user} from {src}"),
        }),
    )
}

fn login_succeeded(
    device: &str,
    t: i64,
    user: &str,
    service: &str,
    src: &str,
    method: &str,
) -> Value {
    merge(
        base(
            "login_succeeded",
            "authentication",
            "device",
            Some(device),
            t,
        ),
        json!({
            "class_uid": 3002, "activity_name": "Logon", "status": "success",
            "user": {"name": user}, "service_name": service, "src_endpoint": {"ip": src},
            "auth_protocol": method,
        }),
    )
}

fn process_started(device: &str, t: i64, name: &str, path: &str, cmd: &str) -> Value {
    merge(
        base(
            "process_started",
            "process_creation",
            "device",
            Some(device),
            t,
        ),
        json!({
            "class_uid": 1007, "activity_name": "Launch",
            "process": {"name": name, "path": path, "pid": 4242, "cmd_line": cmd, "user": "root"},
        }),
    )
}

fn connection(device: &str, t: i64, ip: &str, port: u16, process: &str) -> Value {
    merge(
        base(
            "connection_opened",
            "network_connection",
            "device",
            Some(device),
            t,
        ),
        json!({
            "class_uid": 4001, "activity_name": "Open",
            "connection_info": {"protocol_name": "tcp"},
            "dst_endpoint": {"ip": ip, "port": port}, "process": {"name": process},
        }),
    )
}

fn listening(device: &str, t: i64, port: u16, process: &str) -> Value {
    merge(
        base(
            "listening_port_opened",
            "network_listen",
            "device",
            Some(device),
            t,
        ),
        json!({
            "class_uid": 4001, "activity_name": "Listen",
            "connection_info": {"protocol_name": "tcp"},
            "src_endpoint": {"ip": "0.0.0.0", "port": port}, "process": {"name": process},
        }),
    )
}

fn file_changed(device: &str, t: i64, path: &str) -> Value {
    merge(
        base("file_changed", "file_change", "device", Some(device), t),
        json!({"class_uid": 1001, "activity_name": "Update", "file": {"path": path}}),
    )
}

fn clock_changed(device: &str, t: i64, offset_ms: i64) -> Value {
    merge(
        base("clock_changed", "clock_change", "device", Some(device), t),
        json!({"clock": {"offset_ms": offset_ms, "offset_abs_ms": offset_ms.abs()}}),
    )
}

fn telemetry(device: &str, t: i64, interval_ms: u64, bytes_out: u64) -> Value {
    merge(
        base("telemetry", "telemetry", "device", Some(device), t),
        json!({
            "class_uid": 4001, "activity_name": "Traffic",
            "telemetry": {
                "interval_ms": interval_ms, "established_connections": 2,
                "distinct_destinations": 2, "destinations": ["203.0.113.10", "203.0.113.5"],
            },
            "traffic": {
                "bytes_in": bytes_out + bytes_out / 3, "bytes_out": bytes_out,
                "packets_in": bytes_out / 500 + 1, "packets_out": bytes_out / 900 + 1,
            },
        }),
    )
}

fn broker_event(kind: &str, category: &str, device: Option<&str>, t: i64, fields: Value) -> Value {
    merge(base(kind, category, "broker", device, t), fields)
}

fn refused(kind: &str, device: &str, t: i64, topic: &str, reason: &str) -> Value {
    broker_event(
        kind,
        "authorization",
        Some(device),
        t,
        json!({"status": "failure", "broker": {"topic": topic, "reason": reason}}),
    )
}

fn client_id_refused(cn: &str, t: i64, client_id: &str) -> Value {
    broker_event(
        "connect_refused",
        "authentication",
        Some(cn),
        t,
        json!({
            "status": "failure", "src_endpoint": {"ip": "198.51.100.140"},
            "broker": {
                "reason": "client_id_differs_from_certificate",
                "client_id": client_id, "common_name": cn,
            },
        }),
    )
}

fn connected(device: &str, t: i64) -> Value {
    broker_event(
        "connected",
        "session",
        Some(device),
        t,
        json!({"status": "success", "src_endpoint": {"ip": "192.0.2.71", "new_network": false}}),
    )
}

/// A pseudo-random public address, as the simulator's scanner draws them.
fn random_address(i: u64) -> String {
    let a = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    format!(
        "{}.{}.{}.{}",
        1 + a % 223,
        (a >> 8) % 256,
        (a >> 16) % 256,
        1 + (a >> 24) % 254
    )
}

// ---------------------------------------------------------------------------------------------
// Correlations through a Detector.

struct Pack {
    detector: Detector,
    names: HashMap<String, String>,
    titles: HashMap<String, String>,
}

impl Pack {
    fn new() -> Self {
        let mut set = iot_rule_set();
        Self {
            detector: Detector::new(&mut set, DetectorOptions::replay()).unwrap(),
            names: ids_by_name(),
            titles: ids_by_title(),
        }
    }

    fn id(&self, name_or_title: &str) -> &str {
        self.names
            .get(name_or_title)
            .or_else(|| self.titles.get(name_or_title))
            .unwrap_or_else(|| panic!("no rule {name_or_title}"))
    }

    /// The indices of the events on which the named correlation fired.
    fn fires(&mut self, name: &str, events: &[Value]) -> Vec<usize> {
        let id = self.id(name).to_owned();
        let mut at = Vec::new();
        for (i, event) in events.iter().enumerate() {
            for d in self.detector.process(event) {
                if d.rule_id.as_deref() == Some(id.as_str()) {
                    assert!(
                        matches!(d.kind, DetectionKind::Correlation { .. }),
                        "{name}: {d:?}"
                    );
                    at.push(i);
                }
            }
        }
        at
    }
}

/// Fed `events`, the correlation fires once, on event number `threshold` (1-based), and
/// stays quiet (suppressed) on the rest; fed only the first `threshold - 1`, it does not fire.
fn assert_threshold(name: &str, events: &[Value], threshold: usize) {
    assert!(
        events.len() > threshold,
        "{name}: give events past the threshold"
    );
    let below = Pack::new().fires(name, &events[..threshold - 1]);
    assert!(
        below.is_empty(),
        "{name}: fired below its threshold at {below:?}"
    );
    let fired = Pack::new().fires(name, events);
    assert_eq!(fired, vec![threshold - 1], "{name}: fired at {fired:?}");
}

fn value_of(detections: &[Detection], id: &str) -> Option<(Vec<(String, String)>, f64)> {
    detections.iter().find_map(|d| match &d.kind {
        DetectionKind::Correlation { group, value, .. } if d.rule_id.as_deref() == Some(id) => {
            Some((group.clone(), *value))
        }
        _ => None,
    })
}

#[test]
fn telnet_and_ssh_brute_force_fire_at_five_failures_in_a_minute() {
    // Telnet via telnetd and via the login program telnetd starts, 150 ms apart.
    let telnet: Vec<Value> = (0..8)
        .map(|i| {
            let service = if i % 2 == 0 { "telnetd" } else { "login" };
            login_failed("cam-0042", T0 + i * 150, "root", service, ATTACKER)
        })
        .collect();
    assert_threshold("garrison_iot_telnet_brute_force", &telnet, 5);
    let ssh: Vec<Value> = (0..8)
        .map(|i| {
            let service = if i % 2 == 0 { "sshd" } else { "dropbear" };
            login_failed("gw-berlin-07", T0 + i * 2000, "admin", service, ATTACKER)
        })
        .collect();
    assert_threshold("garrison_iot_ssh_brute_force", &ssh, 5);

    // The value and group the monitor sees.
    let mut pack = Pack::new();
    let id = pack.id("garrison_iot_telnet_brute_force").to_owned();
    let mut last = Vec::new();
    for e in &telnet[..5] {
        last = pack.detector.process(e);
    }
    let (group, value) = value_of(&last, &id).unwrap();
    assert_eq!(group, vec![("device.id".to_owned(), "cam-0042".to_owned())]);
    assert_eq!(value, 5.0);

    // Four in a minute and the fifth 61 s after the first: no brute force.
    let mut slow: Vec<Value> = telnet[..4].to_vec();
    slow.push(login_failed(
        "cam-0042",
        T0 + 61_000,
        "root",
        "telnetd",
        ATTACKER,
    ));
    assert!(
        Pack::new()
            .fires("garrison_iot_telnet_brute_force", &slow)
            .is_empty()
    );
    // Five failures spread over five devices: no brute force on any.
    let spread: Vec<Value> = (0..5)
        .map(|i| login_failed(&format!("cam-{i:04}"), T0 + i, "root", "telnetd", ATTACKER))
        .collect();
    assert!(
        Pack::new()
            .fires("garrison_iot_telnet_brute_force", &spread)
            .is_empty()
    );
    // SSH failures do not count towards telnet, nor telnet towards SSH.
    assert!(
        Pack::new()
            .fires("garrison_iot_telnet_brute_force", &ssh)
            .is_empty()
    );
    assert!(
        Pack::new()
            .fires("garrison_iot_ssh_brute_force", &telnet)
            .is_empty()
    );
}

#[test]
fn successful_login_after_brute_force_needs_the_order() {
    let fails = |service: &str| -> Vec<Value> {
        (0..5)
            .map(|i| login_failed("cam-0042", T0 + i * 1000, "root", service, ATTACKER))
            .collect()
    };
    // Four failures and a success: no brute force, so nothing; the fifth failure makes one.
    let mut telnet = fails("telnetd");
    telnet.insert(
        4,
        login_succeeded(
            "cam-0042",
            T0 + 3500,
            "root",
            "telnetd",
            ATTACKER,
            "password",
        ),
    );
    telnet.push(login_succeeded(
        "cam-0042",
        T0 + 30_000,
        "root",
        "telnetd",
        ATTACKER,
        "password",
    ));
    telnet.push(login_succeeded(
        "cam-0042",
        T0 + 40_000,
        "root",
        "telnetd",
        ATTACKER,
        "password",
    ));
    let name = "Successful telnet login after a telnet brute force";
    assert_eq!(Pack::new().fires(name, &telnet), vec![6]);

    let mut ssh = fails("sshd");
    ssh.push(login_succeeded(
        "cam-0042",
        T0 + 20_000,
        "root",
        "sshd",
        ATTACKER,
        "publickey",
    ));
    ssh.push(login_succeeded(
        "cam-0042",
        T0 + 30_000,
        "root",
        "sshd",
        ATTACKER,
        "password",
    ));
    ssh.push(login_succeeded(
        "cam-0042",
        T0 + 40_000,
        "root",
        "dropbear",
        ATTACKER,
        "password",
    ));
    let name = "Successful SSH login after an SSH brute force";
    // The key login is not the guessed password; the password login is.
    assert_eq!(Pack::new().fires(name, &ssh), vec![6]);

    // A success eleven minutes after the brute force is outside the window.
    let mut late = fails("sshd");
    late.push(login_succeeded(
        "cam-0042",
        T0 + 664_000,
        "root",
        "sshd",
        ATTACKER,
        "password",
    ));
    assert!(Pack::new().fires(name, &late).is_empty());
}

#[test]
fn scans_fire_at_their_distinct_value_thresholds() {
    // Host sweep: 50 distinct addresses (repeats do not count), ports outside the usual set.
    let mut sweep = Vec::new();
    for i in 0..60u16 {
        sweep.push(connection(
            "gw-berlin-07",
            T0 + i64::from(i) * 100,
            &format!("10.20.1.{}", i + 1),
            22,
            "sh",
        ));
        if i % 10 == 0 {
            sweep.push(connection(
                "gw-berlin-07",
                T0 + i64::from(i) * 100 + 1,
                "10.20.1.1",
                22,
                "sh",
            ));
        }
    }
    let fiftieth = sweep
        .iter()
        .position(|e| e["dst_endpoint"]["ip"] == "10.20.1.50")
        .unwrap();
    assert_threshold("garrison_iot_host_sweep", &sweep, fiftieth + 1);
    // HTTPS to fifty cloud addresses is not a sweep.
    let https: Vec<Value> = (0..60)
        .map(|i| {
            connection(
                "gw-berlin-07",
                T0 + i,
                &random_address(i as u64),
                443,
                "cloudagent",
            )
        })
        .collect();
    assert!(
        Pack::new()
            .fires("garrison_iot_host_sweep", &https)
            .is_empty()
    );

    // Port scan: 20 distinct ports on one host.
    let ports: Vec<Value> = (0..25u16)
        .map(|i| {
            connection(
                "gw-berlin-07",
                T0 + i64::from(i) * 100,
                "10.20.1.9",
                1000 + i,
                "sh",
            )
        })
        .collect();
    assert_threshold("garrison_iot_port_scan", &ports, 20);
    // The same ports spread over hosts is not a port scan of any of them.
    let spread: Vec<Value> = (0..25u16)
        .map(|i| {
            connection(
                "gw-berlin-07",
                T0 + i64::from(i),
                &format!("10.20.2.{i}"),
                1000 + i,
                "sh",
            )
        })
        .collect();
    assert!(
        Pack::new()
            .fires("garrison_iot_port_scan", &spread)
            .is_empty()
    );

    // Telnet scanning: 10 distinct addresses on 23/2323.
    let telnet: Vec<Value> = (0..15u64)
        .map(|i| {
            let port = if i % 2 == 0 { 23 } else { 2323 };
            connection(
                "cam-0042",
                T0 + i as i64 * 10,
                &random_address(i),
                port,
                "dvrHelper",
            )
        })
        .collect();
    assert_threshold("garrison_iot_telnet_scanning", &telnet, 10);
    // Nine addresses, then the tenth after the first left the minute.
    let mut slow = telnet[..9].to_vec();
    slow.push(connection(
        "cam-0042",
        T0 + 61_000,
        &random_address(99),
        23,
        "dvrHelper",
    ));
    assert!(
        Pack::new()
            .fires("garrison_iot_telnet_scanning", &slow)
            .is_empty()
    );
}

#[test]
fn broker_correlations_fire_at_their_thresholds() {
    // Authorization failures: publish and subscribe refusals together, 10 in a minute.
    let refusals: Vec<Value> = (0..14)
        .map(|i| {
            let (kind, topic) = if i % 2 == 0 {
                (
                    "publish_refused",
                    format!("garrison/v1/d/meter-{i:04}/telemetry"),
                )
            } else {
                ("subscribe_refused", "garrison/v1/d/+/commands".to_owned())
            };
            refused(kind, "cam-0042", T0 + i * 500, &topic, "foreign_topic")
        })
        .collect();
    assert_threshold(
        "Burst of broker authorization failures from a device",
        &refusals,
        10,
    );

    // Credential stuffing: 5 distinct client ids for one certificate; retries do not count.
    let mut stuffing = Vec::new();
    for i in 0..7 {
        stuffing.push(client_id_refused(
            "cam-0042",
            T0 + i * 2000,
            &format!("cam-0042-victim-{i:03}"),
        ));
        stuffing.push(client_id_refused(
            "cam-0042",
            T0 + i * 2000 + 100,
            "cam-0042-victim-000",
        ));
    }
    let fifth = stuffing
        .iter()
        .position(|e| e["broker"]["client_id"] == "cam-0042-victim-004")
        .unwrap();
    assert_threshold(
        "Broker credential stuffing with one device certificate",
        &stuffing,
        fifth + 1,
    );
    let retries: Vec<Value> = (0..20)
        .map(|i| client_id_refused("cam-0042", T0 + i * 1000, "meter-1187"))
        .collect();
    assert!(
        Pack::new()
            .fires(
                "Broker credential stuffing with one device certificate",
                &retries
            )
            .is_empty()
    );

    // Reconnect storm: 10 sessions in a minute.
    let storm: Vec<Value> = (0..20)
        .map(|i| connected("cam-0042", T0 + i * 2500))
        .collect();
    assert_threshold("Reconnect storm from a device", &storm, 10);
    let daily: Vec<Value> = (0..20)
        .map(|i| connected("cam-0042", T0 + i * 3_600_000))
        .collect();
    assert!(
        Pack::new()
            .fires("Reconnect storm from a device", &daily)
            .is_empty()
    );
}

#[test]
fn telemetry_rate_spike_fires_at_twenty_short_samples_a_minute() {
    let flood: Vec<Value> = (0..30)
        .map(|i| telemetry("meter-1187", T0 + i * 1000, 1000, 3000))
        .collect();
    assert_threshold("Telemetry message-rate spike from a device", &flood, 20);
    // A day at the normal interval.
    let normal: Vec<Value> = (0..1440)
        .map(|i| telemetry("meter-1187", T0 + i * 60_000, 60_000, 180_000))
        .collect();
    assert!(
        Pack::new()
            .fires("Telemetry message-rate spike from a device", &normal)
            .is_empty()
    );
}

#[test]
fn mirai_chain_fires_when_the_scanning_starts_and_needs_the_login_first() {
    let name = "Mirai-like infection chain on a device";
    let login = login_succeeded("cam-0042", T0, "root", "telnetd", ATTACKER, "password");
    let payload = process_started(
        "cam-0042",
        T0 + 600,
        "dvrHelper",
        "/tmp/.x/mirai.arm7",
        "/tmp/.x/mirai.arm7 scanner",
    );
    let scans: Vec<Value> = (0..15u64)
        .map(|i| {
            connection(
                "cam-0042",
                T0 + 2000 + i as i64,
                &random_address(i),
                23,
                "dvrHelper",
            )
        })
        .collect();
    let mut chain = vec![login.clone(), payload.clone()];
    chain.extend(scans.iter().cloned());
    // The tenth distinct telnet target completes the scanning and so the chain.
    assert_eq!(Pack::new().fires(name, &chain), vec![11]);
    assert!(Pack::new().fires(name, &chain[..11]).is_empty());

    // Payload and scanning with the telnet login afterwards: not this chain.
    let mut reordered = vec![payload.clone()];
    reordered.extend(scans.iter().cloned());
    let mut late_login = login.clone();
    late_login["time"] = json!(T0 + 5000);
    reordered.push(late_login);
    assert!(Pack::new().fires(name, &reordered).is_empty());

    // The same chain on two devices does not mix: cam-0043 only logs in.
    let mut other = vec![login_succeeded(
        "cam-0043", T0, "root", "telnetd", ATTACKER, "password",
    )];
    other.push(payload);
    other.extend(scans);
    assert!(Pack::new().fires(name, &other).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The simulator's Mirai scenario, and a benign day.

/// `garrison-sim`'s `ScenarioKind::Mirai` batch (`device.rs`, `play`), normalised by hand.
fn mirai_scenario(device: &str, now: i64) -> Vec<Value> {
    let users = [
        "root", "admin", "root", "support", "root", "admin", "user", "root", "guest", "root",
        "admin", "root", "default", "root", "admin",
    ];
    let mut events: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, user)| login_failed(device, now + i as i64 * 150, user, "telnetd", ATTACKER))
        .collect();
    events.push(login_succeeded(
        device,
        now + 2400,
        "root",
        "telnetd",
        ATTACKER,
        "password",
    ));
    events.push(process_started(
        device,
        now + 3000,
        "dvrHelper",
        "/tmp/.x/mirai.arm7",
        "/tmp/.x/mirai.arm7 scanner",
    ));
    // The sim sends no hashes: the file is gone or unreadable.
    events.push(file_changed(device, now + 3100, "/bin/busybox"));
    events.push(connection(device, now + 3500, C2, 23, "dvrHelper"));
    events.push(listening(device, now + 3600, 2323, "dvrHelper"));
    for i in 0..20u64 {
        let port = if i % 2 == 0 { 23 } else { 2323 };
        events.push(connection(
            device,
            now + 4000 + i as i64,
            &random_address(i + 7),
            port,
            "dvrHelper",
        ));
    }
    events
}

#[test]
fn the_simulators_mirai_scenario_is_detected() {
    let mut pack = Pack::new();
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_id: HashMap<String, String> = HashMap::new();
    for event in mirai_scenario("cam-0042", T0 + 123) {
        for d in pack.detector.process(&event) {
            by_id.insert(d.rule_id.clone().unwrap(), d.title.clone());
            *fired.entry(d.rule_id.unwrap()).or_default() += 1;
        }
    }
    let titles: BTreeSet<&str> = by_id.values().map(String::as_str).collect();
    for (rule, times) in [
        ("garrison_iot_telnet_brute_force", 1),
        ("Mirai-like infection chain on a device", 1),
        ("garrison_iot_telnet_scanning", 1),
        ("Successful telnet login after a telnet brute force", 1),
        ("Telnet login to a default or vendor account", 1),
        ("Known Mirai or Gafgyt binary on a device", 1),
        (
            "Process executed from /tmp, /var/tmp or /dev/shm on a device",
            1,
        ),
        ("System binary or library changed on a device", 1),
        ("Device listening on a risky port", 1),
    ] {
        let id = pack.id(rule);
        assert_eq!(fired.get(id), Some(&times), "{rule}: {titles:#?}");
    }
    // The correlations report the device as their group.
    let chain = pack.id("Mirai-like infection chain on a device").to_owned();
    let mut pack = Pack::new();
    let mut group = None;
    for event in mirai_scenario("cam-0042", T0 + 123) {
        if let Some(g) = value_of(&pack.detector.process(&event), &chain) {
            group = Some(g);
        }
    }
    assert_eq!(
        group,
        Some((vec![("device.id".to_owned(), "cam-0042".to_owned())], 3.0))
    );
}

#[test]
fn a_benign_devices_day_fires_nothing() {
    let device = "cam-0042";
    let mut events = Vec::new();
    for i in 0..1440i64 {
        let t = T0 + i * 60_000;
        // Telemetry every minute at a normal, slightly varying volume.
        events.push(telemetry(
            device,
            t + 250,
            60_000 + (i % 7 * 20) as u64,
            150_000 + (i * 7919) as u64 % 90_000,
        ));
        if i % 240 == 5 {
            events.push(login_succeeded(
                device,
                t + 10_000,
                "ops",
                "sshd",
                "192.0.2.10",
                "publickey",
            ));
        }
        if i % 64 == 3 {
            // NTP keeps the clock within a few milliseconds.
            events.push(clock_changed(
                device,
                t + 30_000,
                [3, -2, 5, -4, 1][(i % 5) as usize],
            ));
        }
        if i == 600 {
            events.push(connection(
                device,
                t + 40_000,
                "203.0.113.10",
                443,
                "cloudagent",
            ));
        }
    }
    let mut pack = Pack::new();
    let mut fired = Vec::new();
    for event in &events {
        fired.extend(pack.detector.process(event).into_iter().map(|d| d.title));
    }
    assert!(fired.is_empty(), "{fired:#?}");
    assert!(events.len() > 1450);
}
