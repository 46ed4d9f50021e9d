//! Detection over real rules: the SigmaHQ Linux and network corpus, correlations in windows,
//! per-rule rejection, replay expectations, exemplars and lint.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{io::Cursor, path::PathBuf};

use garrison_core::Severity;
use garrison_detect::{
    DetectionKind, Detector, DetectorOptions, LoadOutcome, RuleKind, RuleSet,
    lint::{LintLevel, lint_paths},
    testing::{Expectation, replay, run_exemplars},
};
use serde_json::json;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sigmahq/rules")
}

fn yaml_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            n += yaml_files(&path);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            n += 1;
        }
    }
    n
}

fn detector(yaml: &str) -> (RuleSet, Detector) {
    let mut set = RuleSet::new();
    set.add_yaml("inline", yaml);
    let detector = Detector::new(&mut set, DetectorOptions::replay()).unwrap();
    (set, detector)
}

#[test]
fn every_sigmahq_rule_loads_or_the_reason_is_reported() {
    let mut set = RuleSet::load_paths(&[corpus()]).unwrap();
    let files = yaml_files(&corpus());
    assert!(files > 250, "corpus is missing: {files} files");
    // Every file is accounted for by at least one entry, each with its file.
    let sources: std::collections::HashSet<&str> =
        set.report().iter().map(|r| r.source.as_str()).collect();
    assert_eq!(sources.len(), files);
    for entry in set.report() {
        if let LoadOutcome::Rejected(reason) = &entry.outcome {
            assert!(!reason.trim().is_empty(), "{entry:?}");
        }
    }
    let detector = Detector::new(&mut set, DetectorOptions::default()).unwrap();
    let (loaded, rejected) = set.counts();
    let rejected_list: Vec<String> = set
        .report()
        .iter()
        .filter_map(|r| match &r.outcome {
            LoadOutcome::Rejected(reason) => Some(format!("{}: {reason}", r.source)),
            LoadOutcome::Loaded => None,
        })
        .collect();
    eprintln!("loaded {loaded}, rejected {rejected}: {rejected_list:#?}");
    let (detections, _) = detector.rule_counts();
    assert_eq!(
        detections,
        set.report()
            .iter()
            .filter(|r| r.kind == RuleKind::Detection && r.outcome == LoadOutcome::Loaded)
            .count()
    );
    // The corpus uses only what rsigma supports today; a rejection means a regression.
    assert_eq!(rejected, 0, "{rejected_list:#?}");
}

#[test]
fn sigmahq_rules_fire_on_their_events_and_not_on_benign_ones() {
    let mut set = RuleSet::load_paths(&[corpus().join("linux")]).unwrap();
    let mut detector = Detector::new(&mut set, DetectorOptions::default()).unwrap();
    let miner = json!({
        "product": "linux", "category": "process_creation",
        "Image": "/tmp/.x/xmrig",
        "CommandLine": "/tmp/.x/xmrig -o stratum+tcp://pool.example:3333 --donate-level=0",
    });
    let hits = detector.process(&miner);
    let mining = hits
        .iter()
        .find(|d| d.rule_id.as_deref() == Some("9069ea3c-b213-4c52-be13-86506a227ab1"))
        .unwrap_or_else(|| panic!("crypto mining rule did not fire: {hits:#?}"));
    assert_eq!(mining.severity, Severity::High);
    assert!(mining.tags.iter().any(|t| t.starts_with("attack.")));

    let decode = json!({
        "product": "linux", "category": "process_creation",
        "Image": "/usr/bin/base64", "CommandLine": "base64 -d payload.txt",
    });
    let hits = detector.process(&decode);
    assert!(
        hits.iter()
            .any(|d| d.rule_id.as_deref() == Some("e2072cab-8c9a-459b-b63c-40ae79e27031")),
        "{hits:#?}"
    );

    let benign = json!({
        "product": "linux", "category": "process_creation",
        "Image": "/usr/bin/ls", "CommandLine": "ls -la /home",
    });
    let hits = detector.process(&benign);
    assert!(hits.is_empty(), "benign process fired: {hits:#?}");

    // A callback to a listed port fires; the same port inside a private range is filtered.
    let callback = |ip: &str| {
        json!({
            "product": "linux", "category": "network_connection",
            "Initiated": "true", "DestinationPort": 4444, "DestinationIp": ip,
        })
    };
    let rule = "dbfc7c98-04ab-4ab7-aa94-c74d22aa7376";
    let fired = |hits: &[garrison_detect::Detection]| {
        hits.iter().any(|d| d.rule_id.as_deref() == Some(rule))
    };
    assert!(fired(&detector.process(&callback("203.0.113.9"))));
    assert!(!fired(&detector.process(&callback("10.1.2.3"))));
}

#[test]
fn a_rule_for_another_logsource_does_not_fire_on_absent_fields() {
    // zeek_rdp_public_listener is `not selection`: on an event without its field it would
    // match, so events tagged with another product must not meet it.
    let mut set =
        RuleSet::load_paths(&[corpus().join("network/zeek/zeek_rdp_public_listener.yml")]).unwrap();
    let mut detector = Detector::new(&mut set, DetectorOptions::default()).unwrap();
    let linux = json!({"product": "linux", "category": "process_creation", "Image": "/bin/sh"});
    assert!(detector.process(&linux).is_empty());
    let public = json!({"product": "zeek", "service": "rdp", "id.orig_h": "198.51.100.7"});
    assert_eq!(detector.process(&public).len(), 1);
    let private = json!({"product": "zeek", "service": "rdp", "id.orig_h": "192.168.1.7"});
    assert!(detector.process(&private).is_empty());
}

const BRUTE_FORCE: &str = r#"
title: Failed telnet login
id: failed-telnet-login
logsource: { product: garrison, category: authentication }
detection:
    selection:
        service: telnet
        outcome: failure
    condition: selection
level: low
---
title: Telnet brute force
id: telnet-brute-force
correlation:
    type: event_count
    rules: [failed-telnet-login]
    group-by: [device]
    timespan: 1m
    condition: { gte: 5 }
level: high
tags: [attack.t1110]
"#;

fn login(device: &str, t: i64, outcome: &str) -> serde_json::Value {
    json!({"service": "telnet", "outcome": outcome, "device": device, "time": t * 1000})
}

#[test]
fn event_count_correlation_fires_at_the_threshold_per_group_and_window() {
    let (_, mut detector) = detector(BRUTE_FORCE);
    assert_eq!(detector.rule_counts(), (1, 1));
    let base = 1_800_000_000;
    let correlations = |hits: Vec<garrison_detect::Detection>| {
        hits.into_iter()
            .filter(|d| matches!(d.kind, DetectionKind::Correlation { .. }))
            .collect::<Vec<_>>()
    };
    // Four failures on cam-1 and four on cam-2 interleaved: below the threshold for each.
    for i in 0..4 {
        assert!(correlations(detector.process(&login("cam-1", base + i, "failure"))).is_empty());
        assert!(correlations(detector.process(&login("cam-2", base + i, "failure"))).is_empty());
    }
    // Successes are not failures.
    assert!(correlations(detector.process(&login("cam-1", base + 5, "success"))).is_empty());
    // The fifth failure on cam-1 within the minute fires, grouped by device.
    let fired = correlations(detector.process(&login("cam-1", base + 6, "failure")));
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].severity, Severity::High);
    match &fired[0].kind {
        DetectionKind::Correlation {
            correlation_type,
            group,
            value,
            window_secs,
        } => {
            assert_eq!(correlation_type, "event_count");
            assert_eq!(group, &vec![("device".to_owned(), "cam-1".to_owned())]);
            assert_eq!(*value, 5.0);
            assert_eq!(*window_secs, 60);
        }
        other => panic!("{other:?}"),
    }
    // cam-2's fifth failure comes after its first four left the window: nothing.
    assert!(correlations(detector.process(&login("cam-2", base + 120, "failure"))).is_empty());
}

#[test]
fn a_rule_that_cannot_compile_is_rejected_alone_with_its_reason() {
    let yaml = r#"
title: Good
id: good
logsource: { product: linux }
detection:
    selection: { Image|endswith: /nc }
    condition: selection
level: medium
---
title: Bad regex
id: bad-regex
logsource: { product: linux }
detection:
    selection: { CommandLine|re: '([unclosed' }
    condition: selection
level: medium
---
title: Orphan correlation
id: orphan
correlation:
    type: event_count
    rules: [does-not-exist]
    group-by: [device]
    timespan: 5m
    condition: { gte: 2 }
"#;
    let (set, mut detector) = detector(yaml);
    let outcome = |id: &str| {
        set.report()
            .iter()
            .find(|r| r.id.as_deref() == Some(id))
            .unwrap()
            .outcome
            .clone()
    };
    assert_eq!(outcome("good"), LoadOutcome::Loaded);
    assert!(matches!(outcome("bad-regex"), LoadOutcome::Rejected(r) if r.contains("regex")));
    assert!(matches!(outcome("orphan"), LoadOutcome::Rejected(r) if r.contains("does-not-exist")));
    assert_eq!(set.counts(), (1, 2));
    assert_eq!(detector.process(&json!({"Image": "/usr/bin/nc"})).len(), 1);
}

#[test]
fn unparseable_files_are_reported_not_skipped() {
    let mut set = RuleSet::new();
    set.add_yaml("broken.yml", "title: [unclosed\n");
    set.add_yaml("empty.yml", "");
    assert_eq!(set.counts(), (0, 2));
    assert!(set.report().iter().all(|r| r.kind == RuleKind::Unknown));
    let err = RuleSet::load_paths(&["/nonexistent/rules"]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/rules"), "{err}");
}

#[test]
fn replay_checks_the_expectation_and_reports_bad_lines() {
    let base = 1_800_000_000i64;
    let attack: String = (0..5)
        .map(|i| format!("{}\n", login("cam-9", base + i, "failure")))
        .collect();

    let (_, mut d) = detector(BRUTE_FORCE);
    let report = replay(&mut d, Cursor::new(&attack), Expectation::Any).unwrap();
    assert!(report.passed(), "{:?}", report.violations);
    assert_eq!(report.events, 5);
    assert_eq!(report.hits.get("telnet-brute-force"), Some(&1));
    // A rule that only feeds a correlation is not an alert of its own (Sigma's `generate`).
    assert_eq!(report.hits.get("failed-telnet-login"), None);

    let (_, mut d) = detector(BRUTE_FORCE);
    let benign: String = (0..5)
        .map(|i| format!("{}\n", login("cam-9", base + i, "success")))
        .collect();
    assert!(
        replay(&mut d, Cursor::new(&benign), Expectation::None)
            .unwrap()
            .passed()
    );
    let (_, mut d) = detector(BRUTE_FORCE);
    let report = replay(&mut d, Cursor::new(&benign), Expectation::Any).unwrap();
    assert!(!report.passed());

    let (_, mut d) = detector(BRUTE_FORCE);
    let report = replay(&mut d, Cursor::new(&attack), Expectation::None).unwrap();
    assert_eq!(
        report.violations.len(),
        1,
        "one correlation; its building blocks are not alerts"
    );

    let (_, mut d) = detector(BRUTE_FORCE);
    let mixed = format!("{}\n\nnot json\n[1,2]\n", login("cam-9", base, "success"));
    let report = replay(&mut d, Cursor::new(&mixed), Expectation::Each).unwrap();
    let lines: Vec<Option<usize>> = report.violations.iter().map(|v| v.line).collect();
    assert_eq!(lines, vec![Some(1), Some(3), Some(4)]);
}

#[test]
fn exemplars_pass_and_a_wrong_one_fails() {
    let rule = |expect_benign: &str| {
        format!(
            r#"
title: Mirai default credential
id: mirai-cred
logsource: {{ product: garrison }}
detection:
    selection:
        user|contains: [xc3511, vizxv, 888888]
    condition: selection
level: high
custom_attributes:
    rsigma.exemplars:
        - name: known mirai password
          expect: match
          event: {{ user: "root:xc3511" }}
        - name: ordinary login
          expect: {expect_benign}
          event: {{ user: "admin:correct-horse" }}
"#
        )
    };
    let mut set = RuleSet::new();
    set.add_yaml("good", &rule("no-match"));
    let report = run_exemplars(&mut set).unwrap();
    assert_eq!(report.results.len(), 2);
    assert!(report.passed(), "{report:?}");

    let mut set = RuleSet::new();
    set.add_yaml("wrong", &rule("match"));
    let report = run_exemplars(&mut set).unwrap();
    assert!(!report.passed());
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(failed, vec!["ordinary login"]);
}

#[test]
fn lint_finds_load_failures_duplicates_and_spec_problems() {
    let dir = tempfile::tempdir().unwrap();
    let good = "title: Netcat\nid: 2c5b8f3e-5d2f-4b8e-9f3a-1a2b3c4d5e6f\nstatus: test\n\
                description: netcat run\nauthor: garrison\ndate: 2026-12-04\n\
                logsource: { product: linux, category: process_creation }\n\
                detection:\n    selection: { Image|endswith: /nc }\n    condition: selection\n\
                level: medium\n";
    std::fs::write(dir.path().join("a.yml"), good).unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        good.replace("Netcat", "Netcat again"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yml"),
        "title: No condition\nlogsource: { product: linux }\ndetection:\n    selection: { a: 1 }\n",
    )
    .unwrap();
    let report = lint_paths(&[dir.path()]).unwrap();
    assert_eq!(report.files, 3);
    assert_eq!(report.loaded, 2);
    assert_eq!(report.rejected, 1);
    let checks = |source: &str| -> Vec<(LintLevel, String)> {
        report
            .issues
            .iter()
            .filter(|i| i.source.ends_with(source))
            .map(|i| (i.level, i.check.clone()))
            .collect()
    };
    assert!(checks("a.yml").contains(&(LintLevel::Error, "duplicate_id".to_owned())));
    assert!(checks("b.yml").contains(&(LintLevel::Error, "duplicate_id".to_owned())));
    let c = checks("c.yml");
    assert!(c.contains(&(LintLevel::Error, "load".to_owned())), "{c:?}");
    assert!(
        c.iter().any(|(l, k)| *l == LintLevel::Error && k != "load"),
        "{c:?}"
    );
    assert!(report.count(LintLevel::Error) >= 4);

    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join("a.yml"), good).unwrap();
    let report = lint_paths(&[clean.path()]).unwrap();
    assert_eq!(report.count(LintLevel::Error), 0, "{:#?}", report.issues);
}
