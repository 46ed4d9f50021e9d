//! The rules and events both engine benchmarks run: the SigmaHQ Linux set (or copies of it
//! up to a size) and synthetic Linux events, one in a hundred an attack.
#![allow(dead_code)]

use std::path::PathBuf;

use garrison_detect::{Detector, DetectorOptions, RuleSet};
use rsigma_eval::Engine;

pub(crate) fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sigmahq/rules/linux")
}

/// The Linux rule files' texts.
pub(crate) fn rule_texts() -> Vec<String> {
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
pub(crate) fn sized(count: usize) -> Vec<String> {
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
pub(crate) fn events(n: usize) -> Vec<String> {
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

/// Garrison's detector over `size` rules (see [`sized`]).
pub(crate) fn detector(size: usize, options: DetectorOptions) -> Detector {
    let mut set = RuleSet::new();
    for (i, text) in sized(size).iter().enumerate() {
        set.add_yaml(&i.to_string(), text);
    }
    Detector::new(&mut set, options).unwrap()
}

/// rsigma's plain engine (detection only) over the same rules.
pub(crate) fn rsigma_engine(size: usize) -> Engine {
    let mut collection = rsigma_parser::SigmaCollection::new();
    for text in sized(size) {
        collection
            .rules
            .extend(rsigma_parser::parse_sigma_yaml(&text).unwrap().rules);
    }
    let mut engine = Engine::new();
    engine.add_collection(&collection).unwrap();
    engine
}
