//! The keyword pre-filter never changes what fires: the SigmaHQ Linux and network corpus plus
//! the IoT pack, with and without it, on events built to hit every keyword value (in various
//! fields, cases and logsources), near misses, and routine events.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use garrison_detect::{Detection, Detector, DetectorOptions, RuleSet};
use rsigma_parser::{Detection as SigmaDetection, SigmaValue, SpecialChar, StringPart};
use serde_json::{Value, json};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sigmahq/rules")
}

/// The corpus and the built-in IoT pack.
fn rule_set() -> RuleSet {
    let pack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/iot");
    RuleSet::load_paths(&[corpus(), pack]).unwrap()
}

/// Texts that a keyword value matches: wildcards filled in.
fn keyword_texts() -> Vec<String> {
    let mut texts = Vec::new();
    let mut dirs = vec![corpus()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(parsed) =
                rsigma_parser::parse_sigma_yaml(&std::fs::read_to_string(&path).unwrap())
            else {
                continue;
            };
            for rule in parsed.rules {
                for detection in rule.detection.named.values() {
                    collect(detection, &mut texts);
                }
            }
        }
    }
    texts.sort();
    texts.dedup();
    texts
}

fn collect(detection: &SigmaDetection, texts: &mut Vec<String>) {
    match detection {
        SigmaDetection::Keywords(values) => {
            for value in values {
                if let SigmaValue::String(s) = value {
                    let text: String = s
                        .parts
                        .iter()
                        .map(|p| match p {
                            StringPart::Plain(t) => t.as_str(),
                            StringPart::Special(SpecialChar::WildcardMulti) => " q ",
                            StringPart::Special(SpecialChar::WildcardSingle) => "q",
                        })
                        .collect();
                    texts.push(text);
                }
            }
        }
        SigmaDetection::AnyOf(alternatives) => {
            for a in alternatives {
                collect(a, texts);
            }
        }
        _ => {}
    }
}

fn events() -> Vec<Value> {
    let mut events = Vec::new();
    for text in keyword_texts() {
        // The value itself, in another case, inside a longer string, in a nested field, and
        // cut short (a near miss), for a Linux event and for an untagged one.
        let variants = [
            text.clone(),
            text.to_uppercase(),
            format!("prefix {text} suffix"),
            text.chars()
                .take(text.chars().count().saturating_sub(2))
                .collect(),
        ];
        for (i, variant) in variants.iter().enumerate() {
            events.push(json!({"product": "linux", "message": variant}));
            events.push(json!({"product": "linux", "category": "process_creation",
                "Image": "/bin/sh", "CommandLine": variant}));
            events.push(json!({"process": {"cmd_line": variant, "args": [variant]}, "n": i}));
        }
    }
    // A non-ASCII value whose lowercase is ASCII: the Kelvin sign is a `k`.
    events.push(json!({"product": "linux", "message": "syscall \u{212A} out of bounds"}));
    events.push(json!({"product": "linux", "message": "ℹ Ünïcödé rm x_sh_history"}));
    for routine in [
        json!({"product":"linux","category":"process_creation","Image":"/usr/bin/ls","CommandLine":"ls -la /var/log","User":"app","ParentImage":"/bin/bash"}),
        json!({"product":"linux","category":"network_connection","Image":"/usr/bin/curl","Initiated":"true","DestinationIp":"10.0.0.5","DestinationPort":443}),
        json!({"product":"linux","service":"auditd","type":"SYSCALL","syscall":"openat","exe":"/usr/bin/cat","key":"app"}),
        json!({"product":"linux","service":"sshd","message":"Accepted publickey for app from 10.0.0.9"}),
    ] {
        events.push(routine);
    }
    events
}

fn key(d: &Detection) -> String {
    serde_json::to_string(d).unwrap()
}

#[test]
fn the_keyword_prefilter_finds_exactly_what_the_full_evaluation_finds() {
    let options = DetectorOptions::replay();
    let mut filtered = Detector::new(&mut rule_set(), options).unwrap();
    let mut full = Detector::new(
        &mut rule_set(),
        DetectorOptions {
            unfiltered: true,
            ..options
        },
    )
    .unwrap();
    assert_eq!(filtered.rule_counts(), full.rule_counts());

    let events = events();
    assert!(events.len() > 1000, "{} events", events.len());
    let (mut matches, mut keyword_matches) = (0, 0);
    for event in &events {
        let mut a: Vec<String> = filtered.process(event).iter().map(key).collect();
        let mut b: Vec<String> = full.process(event).iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "different results for {event}");
        matches += a.len();
        keyword_matches += usize::from(event.get("message").is_some() && !a.is_empty());
    }
    // Not vacuous: the events do wake the keyword rules.
    assert!(
        keyword_matches > 100,
        "{keyword_matches} keyword events matched"
    );
    assert!(matches > keyword_matches);
}
