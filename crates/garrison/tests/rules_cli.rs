//! `garrison rules lint` and `garrison rules test` as a rule author runs them: the real binary
//! on the SigmaHQ corpus, on broken rules, and on event files that should and should not fire.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sigmahq/rules")
}

/// Runs `garrison rules ARGS`; returns (exit code, stdout, stderr).
fn rules(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_garrison"))
        .arg("rules")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn lint_passes_the_sigmahq_corpus_and_fails_broken_rules() {
    let (code, out, err) = rules(&["lint", path(&corpus()), "-o", "json"]);
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(report["rejected"], 0, "{out}");
    assert!(report["loaded"].as_u64().unwrap() > 250, "{out}");
    assert_eq!(report["errors"], 0, "{out}");
    assert_eq!(code, 0, "{out}{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "title: Bad regex\nlogsource: { product: linux }\ndetection:\n    sel: { CommandLine|re: '([x' }\n    condition: sel\n",
    )
    .unwrap();
    let (code, out, _) = rules(&["lint", path(dir.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad.yml"), "{out}");
    assert!(out.contains("not loaded"), "{out}");
    assert!(out.contains("1 files: 0 rules load, 1 do not"), "{out}");

    let (code, _, err) = rules(&["lint", "/nonexistent/rules"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/rules"), "{err}");
}

#[test]
fn test_replays_events_with_an_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let attack = dir.path().join("attack.jsonl");
    std::fs::write(
        &attack,
        concat!(
            r#"{"product":"linux","category":"process_creation","Image":"/tmp/xmrig","CommandLine":"xmrig -o stratum+tcp://pool.example:3333"}"#,
            "\n"
        ),
    )
    .unwrap();
    let benign = dir.path().join("benign.jsonl");
    std::fs::write(
        &benign,
        concat!(
            r#"{"product":"linux","category":"process_creation","Image":"/usr/bin/ls","CommandLine":"ls -la"}"#,
            "\n"
        ),
    )
    .unwrap();
    let linux = corpus().join("linux");

    let (code, out, err) = rules(&["test", path(&linux), path(&attack)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("9069ea3c-b213-4c52-be13-86506a227ab1"),
        "{out}"
    );
    assert!(out.starts_with("PASS") || out.contains("\nPASS"), "{out}");

    let (code, out, _) = rules(&["test", path(&linux), path(&benign), "--expect", "none"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = rules(&["test", path(&linux), path(&benign)]);
    assert_eq!(code, 1, "a benign file is not a positive case: {out}");
    assert!(out.contains("FAIL"), "{out}");
    let (code, out, _) = rules(&["test", path(&linux), path(&attack), "--expect", "none"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("rule fired: Linux Crypto Mining Indicators"),
        "{out}"
    );

    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "{\"a\":1}\nnot json\n").unwrap();
    let (code, out, _) = rules(&["test", path(&linux), path(&garbage), "--expect", "none"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("garbage.jsonl:2: not valid JSON"), "{out}");
}

#[test]
fn test_without_events_runs_the_rules_exemplars() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("mirai.yml");
    std::fs::write(
        &rule,
        r#"title: Mirai default credential
id: mirai-cred
logsource: { product: garrison }
detection:
    selection:
        user|contains: [xc3511, vizxv]
    condition: selection
level: high
custom_attributes:
    rsigma.exemplars:
        - name: known mirai password
          expect: match
          event: { user: "root:xc3511" }
        - name: ordinary login
          expect: no-match
          event: { user: "admin:correct-horse" }
"#,
    )
    .unwrap();
    let (code, out, err) = rules(&["test", path(&rule)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS 2 exemplars, 0 failed"), "{out}");

    // The SigmaHQ rules carry no exemplars: nothing tested is a failure, with a hint.
    let (code, out, _) = rules(&["test", path(&corpus().join("network/dns"))]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pass an events file"), "{out}");
}
