//! Rule engine throughput from raw JSON: parse an event line and evaluate it against the SigmaHQ
//! Linux rule set (about 210 rules) and against 1,000 rules (the set copied under fresh ids),
//! through Garrison's `Detector` and, beside it in the same run, through rsigma's plain
//! `Engine` (detection only, no correlation state) on the same events.
//!
//! Events are synthetic Linux process, network, file and auditd records, about 1 in 100 an
//! attack some rule should catch. Run: `cargo bench -p garrison-detect --bench engine`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{hint::black_box, path::PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use garrison_detect::{Detector, DetectorOptions, RuleSet};
use rsigma_eval::{Engine, JsonEvent};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sigmahq/rules/linux")
}

/// The Linux rule files' texts.
fn rule_texts() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![corpus()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// `count` rule texts (0: the corpus as it is): the corpus, then copies of it with each `id:`
/// made unique.
fn sized(count: usize) -> Vec<String> {
    let texts = rule_texts();
    if count == 0 {
        return texts;
    }
    (0..count)
        .map(|i| {
            let (copy, text) = (i / texts.len(), &texts[i % texts.len()]);
            if copy == 0 {
                text.clone()
            } else {
                text.replacen("\nid: ", &format!("\nid: copy{copy}-"), 1)
            }
        })
        .collect()
}

/// Synthetic event lines: mostly routine activity, one in a hundred malicious.
fn events(n: usize) -> Vec<String> {
    let routine = [
        r#"{"product":"linux","category":"process_creation","Image":"/usr/bin/ls","CommandLine":"ls -la /var/log","User":"app","ParentImage":"/bin/bash"}"#,
        r#"{"product":"linux","category":"process_creation","Image":"/usr/sbin/cron","CommandLine":"/usr/sbin/cron -f","User":"root","ParentImage":"/sbin/init"}"#,
        r#"{"product":"linux","category":"process_creation","Image":"/usr/bin/python3","CommandLine":"python3 /opt/app/server.py --port 8080","User":"app","ParentImage":"/usr/bin/systemd"}"#,
        r#"{"product":"linux","category":"network_connection","Image":"/usr/bin/curl","Initiated":"true","DestinationIp":"10.0.0.5","DestinationPort":443}"#,
        r#"{"product":"linux","category":"file_event","Image":"/usr/bin/vim","TargetFilename":"/home/app/notes.txt"}"#,
        r#"{"product":"linux","service":"auditd","type":"SYSCALL","syscall":"openat","exe":"/usr/bin/cat","key":"app"}"#,
        r#"{"product":"linux","category":"process_creation","Image":"/usr/bin/grep","CommandLine":"grep -r error /var/log/app","User":"app","ParentImage":"/bin/bash"}"#,
    ];
    let attacks = [
        r#"{"product":"linux","category":"process_creation","Image":"/tmp/.x/xmrig","CommandLine":"xmrig -o stratum+tcp://pool.example:3333 --donate-level=0","User":"www-data","ParentImage":"/bin/sh"}"#,
        r#"{"product":"linux","category":"process_creation","Image":"/usr/bin/base64","CommandLine":"base64 -d /tmp/p.b64","User":"www-data","ParentImage":"/bin/sh"}"#,
        r#"{"product":"linux","category":"network_connection","Image":"/tmp/x","Initiated":"true","DestinationIp":"203.0.113.9","DestinationPort":4444}"#,
    ];
    (0..n)
        .map(|i| {
            if i % 100 == 99 {
                attacks[(i / 100) % attacks.len()].to_owned()
            } else {
                routine[i % routine.len()].to_owned()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = events(10_000);
    for (label, size) in [("sigmahq_linux", 0), ("sigmahq_linux_copied", 1_000)] {
        let texts = sized(size);
        let mut set = RuleSet::new();
        let mut collection = rsigma_parser::SigmaCollection::new();
        for (i, text) in texts.iter().enumerate() {
            set.add_yaml(&i.to_string(), text);
            collection
                .rules
                .extend(rsigma_parser::parse_sigma_yaml(text).unwrap().rules);
        }
        let mut detector = Detector::new(&mut set, DetectorOptions::default()).unwrap();
        let mut plain = Engine::new();
        plain.add_collection(&collection).unwrap();
        let (rules, _) = detector.rule_counts();
        let mut group = c.benchmark_group(format!("{label}_{rules}_rules"));
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function("garrison_detector", |b| {
            b.iter(|| {
                let mut hits = 0;
                for line in &lines {
                    let event: serde_json::Value = serde_json::from_str(line).unwrap();
                    hits += detector.process(&event).len();
                }
                black_box(hits)
            })
        });
        group.bench_function("rsigma_engine", |b| {
            b.iter(|| {
                let mut hits = 0;
                for line in &lines {
                    let event: serde_json::Value = serde_json::from_str(line).unwrap();
                    hits += plain.evaluate(&JsonEvent::borrow(&event)).len();
                }
                black_box(hits)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
