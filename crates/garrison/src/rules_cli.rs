//! `garrison rules`: tools for rule authors, run locally on rule files (no server needed).

use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use garrison_detect::{
    Detector, DetectorOptions, LoadOutcome, RuleSet,
    lint::{LintLevel, lint_paths},
    testing::{Expectation, replay, run_exemplars},
};
use serde_json::json;

use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check Sigma rule files: the Sigma specification and conventions, whether each rule
    /// compiles for Garrison's engine, duplicate ids, correlations that reference missing
    /// rules. Exits 1 if any error is found.
    Lint {
        /// Rule files or directories (searched recursively for .yml/.yaml).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Also show informational suggestions (missing author, style).
        #[arg(long)]
        info: bool,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Test rules: replay a JSON-lines events file through them and check what fires, or,
    /// without an events file, run the `rsigma.exemplars` the rules carry. Exits 1 if the
    /// test fails.
    ///
    /// Events are JSON objects, one per line, dated by `time` (epoch ms), `@timestamp` or
    /// `timestamp`; `product`, `category` and `service` fields say what log an event is, so
    /// rules for other logsources are skipped.
    Test {
        /// A rule file or directory.
        #[arg(value_name = "RULES")]
        rules: PathBuf,
        /// JSON-lines events to replay.
        #[arg(value_name = "EVENTS.jsonl")]
        events: Option<PathBuf>,
        /// What the events must produce: `any` detection (a positive case), a detection on
        /// `each` event, or `none` (a negative case).
        #[arg(long, value_enum, default_value_t = ExpectArg::Any)]
        expect: ExpectArg,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExpectArg {
    Any,
    Each,
    None,
}

impl From<ExpectArg> for Expectation {
    fn from(e: ExpectArg) -> Self {
        match e {
            ExpectArg::Any => Expectation::Any,
            ExpectArg::Each => Expectation::Each,
            ExpectArg::None => Expectation::None,
        }
    }
}

pub fn run(command: RulesCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesCommand::Lint {
            paths,
            info,
            output,
        } => lint(&paths, info, output),
        RulesCommand::Test {
            rules,
            events: Some(events),
            expect,
            output,
        } => test_events(&rules, &events, expect.into(), output),
        RulesCommand::Test {
            rules,
            events: None,
            output,
            ..
        } => test_exemplars(&rules, output),
    }
}

fn lint(paths: &[PathBuf], info: bool, format: Format) -> anyhow::Result<ExitCode> {
    let report = lint_paths(paths)?;
    let shown: Vec<serde_json::Value> = report
        .issues
        .iter()
        .filter(|i| info || i.level > LintLevel::Info)
        .map(|i| {
            json!({
                "level": i.level,
                "file": match i.line {
                    Some(line) => format!("{}:{line}", i.source),
                    None => i.source.clone(),
                },
                "check": i.check,
                "message": i.message,
            })
        })
        .collect();
    let errors = report.count(LintLevel::Error);
    match format {
        Format::Json => output::print_object(
            format,
            &json!({
                "files": report.files, "loaded": report.loaded, "rejected": report.rejected,
                "errors": errors, "warnings": report.count(LintLevel::Warning),
                "issues": shown,
            }),
        ),
        Format::Table => {
            if !shown.is_empty() {
                output::print_list(format, &shown, &["level", "file", "check", "message"]);
            }
            println!(
                "{} files: {} rules load, {} do not; {} errors, {} warnings{}",
                report.files,
                report.loaded,
                report.rejected,
                errors,
                report.count(LintLevel::Warning),
                if info {
                    format!(", {} suggestions", report.count(LintLevel::Info))
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Loads rules for a test, printing what did not load: a test of rules that silently lost
/// half of them would prove nothing.
fn load_for_test(rules: &Path) -> anyhow::Result<RuleSet> {
    let set = RuleSet::load_paths(&[rules])?;
    for entry in set.report() {
        if let LoadOutcome::Rejected(reason) = &entry.outcome {
            eprintln!(
                "warning: {}: {} not loaded: {reason}",
                entry.source,
                entry.title.as_deref().unwrap_or("document")
            );
        }
    }
    Ok(set)
}

fn test_events(
    rules: &Path,
    events: &Path,
    expectation: Expectation,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut set = load_for_test(rules)?;
    let mut detector = Detector::new(&mut set, DetectorOptions::replay())?;
    let file = File::open(events).with_context(|| format!("cannot open {}", events.display()))?;
    let report = replay(&mut detector, BufReader::new(file), expectation)
        .with_context(|| format!("cannot read {}", events.display()))?;
    let (detections, correlations) = detector.rule_counts();
    match format {
        Format::Json => output::print_object(format, &serde_json::to_value(&report)?),
        Format::Table => {
            let hits: Vec<serde_json::Value> = report
                .hits
                .iter()
                .map(|(rule, n)| json!({"rule": rule, "detections": n}))
                .collect();
            if !hits.is_empty() {
                output::print_list(format, &hits, &["rule", "detections"]);
            }
            for v in &report.violations {
                match v.line {
                    Some(line) => println!("FAIL {}:{line}: {}", events.display(), v.reason),
                    None => println!("FAIL {}: {}", events.display(), v.reason),
                }
            }
            println!(
                "{} {} events, {} matched, {} detections ({} rules, {} correlations loaded; \
                 expected {})",
                if report.passed() { "PASS" } else { "FAIL" },
                report.events,
                report.events_matched,
                report.detections.len(),
                detections,
                correlations,
                serde_json::to_value(expectation)?
                    .as_str()
                    .unwrap_or_default()
            );
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn test_exemplars(rules: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let mut set = load_for_test(rules)?;
    let report = run_exemplars(&mut set).map_err(anyhow::Error::msg)?;
    match format {
        Format::Json => output::print_object(format, &serde_json::to_value(&report)?),
        Format::Table => {
            for r in &report.results {
                println!(
                    "{} {} / {} (expect {}){}",
                    if r.passed { "ok  " } else { "FAIL" },
                    r.rule,
                    r.name,
                    if r.expect_match { "match" } else { "no match" },
                    r.diagnostic
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                );
            }
            let failed = report.results.iter().filter(|r| !r.passed).count();
            println!(
                "{} {} exemplars, {} failed; {} rules without exemplars{}",
                if report.passed() { "PASS" } else { "FAIL" },
                report.results.len(),
                failed,
                report.untested.len(),
                if report.results.is_empty() {
                    " (give rules `rsigma.exemplars`, or pass an events file)"
                } else {
                    ""
                }
            );
        }
    }
    // No exemplars at all tests nothing: that is a failure, not a pass.
    Ok(if report.passed() && !report.results.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
