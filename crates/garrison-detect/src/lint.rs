//! `garrison rules lint`: what is wrong with a set of rules, before it is deployed.
//!
//! Three layers, each catching what the one before cannot: rsigma's linter checks every file
//! against the Sigma specification and its conventions (required fields, valid modifiers,
//! tag formats …); loading compiles every rule the way the engine will, which finds what the
//! spec allows but the engine cannot run; and the set as a whole shows duplicate ids and
//! correlations that reference rules which are not there.

use std::{collections::BTreeMap, fs, path::Path};

use serde::Serialize;

use crate::{
    DetectError, Detector, DetectorOptions, LoadOutcome, RuleSet,
    rules::{RuleKind, files_under},
};

/// How serious a lint finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    /// A suggestion (missing author, style).
    Info,
    /// Works, but not as the specification or good practice wants.
    Warning,
    /// The rule is invalid or will not run.
    Error,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct LintIssue {
    /// The file.
    pub source: String,
    /// The 1-based line, when known.
    pub line: Option<u32>,
    /// Error, warning or info.
    pub level: LintLevel,
    /// Which check found it (`missing_level`, `load`, `duplicate_id` …).
    pub check: String,
    /// What is wrong.
    pub message: String,
}

/// The result of linting a set of paths.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// Rule files read.
    pub files: usize,
    /// Documents that load into the engine.
    pub loaded: usize,
    /// Documents that do not.
    pub rejected: usize,
    /// Every finding, by file then line.
    pub issues: Vec<LintIssue>,
}

impl LintReport {
    /// Findings at `level`.
    pub fn count(&self, level: LintLevel) -> usize {
        self.issues.iter().filter(|i| i.level == level).count()
    }
}

/// Lints every rule file under `paths` (files or directories).
pub fn lint_paths<P: AsRef<Path>>(paths: &[P]) -> Result<LintReport, DetectError> {
    let mut set = RuleSet::new();
    let mut issues = Vec::new();
    let mut files = 0;
    for path in paths {
        for file in files_under(path.as_ref())? {
            files += 1;
            let source = file.display().to_string();
            let text = match fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    issues.push(issue(
                        &source,
                        None,
                        LintLevel::Error,
                        "read",
                        e.to_string(),
                    ));
                    continue;
                }
            };
            for warning in rsigma_parser::lint_yaml_str(&text) {
                let level = match warning.severity {
                    rsigma_parser::Severity::Error => LintLevel::Error,
                    rsigma_parser::Severity::Warning => LintLevel::Warning,
                    rsigma_parser::Severity::Info | rsigma_parser::Severity::Hint => {
                        LintLevel::Info
                    }
                };
                let line = warning.span.map(|s| s.start_line + 1);
                issues.push(issue(
                    &source,
                    line,
                    level,
                    &warning.rule.to_string(),
                    format!("{} (at {})", warning.message, warning.path),
                ));
            }
            set.add_yaml(&source, &text);
        }
    }
    // Building the engine resolves correlation references (marking the unresolved rejected)
    // and finds what only the combined set shows, such as reference cycles.
    if let Err(e) = Detector::new(&mut set, DetectorOptions::replay()) {
        issues.push(issue(
            "(rule set)",
            None,
            LintLevel::Error,
            "build",
            e.to_string(),
        ));
    }
    let mut ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for entry in set.report() {
        if let LoadOutcome::Rejected(reason) = &entry.outcome {
            let what = entry.title.as_deref().unwrap_or("document");
            issues.push(issue(
                &entry.source,
                None,
                LintLevel::Error,
                "load",
                format!("{what}: not loaded: {reason}"),
            ));
        }
        if let (Some(id), true) = (entry.id.as_deref(), entry.kind != RuleKind::Unknown) {
            ids.entry(id).or_default().push(&entry.source);
        }
    }
    for (id, sources) in &ids {
        if sources.len() > 1 {
            for source in sources {
                issues.push(issue(
                    source,
                    None,
                    LintLevel::Error,
                    "duplicate_id",
                    format!(
                        "id {id} is used by {} documents: {}",
                        sources.len(),
                        sources.join(", ")
                    ),
                ));
            }
        }
    }
    issues.sort_by(|a, b| (&a.source, a.line).cmp(&(&b.source, b.line)));
    let (loaded, rejected) = set.counts();
    Ok(LintReport {
        files,
        loaded,
        rejected,
        issues,
    })
}

fn issue(
    source: &str,
    line: Option<u32>,
    level: LintLevel,
    check: &str,
    message: String,
) -> LintIssue {
    LintIssue {
        source: source.to_owned(),
        line,
        level,
        check: check.to_owned(),
        message,
    }
}
