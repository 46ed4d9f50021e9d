//! `garrison rules test`: do these rules fire on these events, and stay quiet on those?
//!
//! Two ways to say what should happen. A JSON-lines file of events replayed through the rules
//! with an expectation for the whole file ([`Expectation`]); or the rules' own embedded
//! exemplars (`rsigma.exemplars`: named events, each marked `match` or `no-match`), which keep
//! a rule's positive and negative cases next to the rule.

use std::{collections::BTreeMap, io::BufRead};

use serde::Serialize;

use crate::{Detection, Detector, RuleSet};

/// What a replayed event file must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// At least one detection from the file (a positive case; correlations fire on the event
    /// that completes them, so earlier events may rightly be quiet).
    #[default]
    Any,
    /// Every event fires at least one rule.
    Each,
    /// Nothing fires (a negative case).
    None,
}

/// One way the replay did not meet the expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// The 1-based line in the events file, when the violation is about one line.
    pub line: Option<usize>,
    /// What went wrong.
    pub reason: String,
}

/// The outcome of replaying an events file.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Events read (lines that are JSON objects).
    pub events: usize,
    /// Events on which at least one rule fired.
    pub events_matched: usize,
    /// Detections per rule (`id` or title).
    pub hits: BTreeMap<String, usize>,
    /// Every detection, with the line of the event that caused it.
    pub detections: Vec<(usize, Detection)>,
    /// Where the expectation was not met; empty means the test passed.
    pub violations: Vec<Violation>,
}

impl ReplayReport {
    /// Whether the expectation held and every line was a valid event.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Replays JSON-lines `events` (blank lines skipped) through `detector` and checks
/// `expectation`. A line that is not a JSON object is a violation, never skipped silently.
pub fn replay(
    detector: &mut Detector,
    events: impl BufRead,
    expectation: Expectation,
) -> std::io::Result<ReplayReport> {
    let mut report = ReplayReport {
        events: 0,
        events_matched: 0,
        hits: BTreeMap::new(),
        detections: Vec::new(),
        violations: Vec::new(),
    };
    for (index, line) in events.lines().enumerate() {
        let line_no = index + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event: serde_json::Value = match serde_json::from_str(&line) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            Ok(_) => {
                report.violations.push(Violation {
                    line: Some(line_no),
                    reason: "not a JSON object".into(),
                });
                continue;
            }
            Err(e) => {
                report.violations.push(Violation {
                    line: Some(line_no),
                    reason: format!("not valid JSON: {e}"),
                });
                continue;
            }
        };
        report.events += 1;
        let detections = detector.process(&event);
        if detections.is_empty() {
            if expectation == Expectation::Each {
                report.violations.push(Violation {
                    line: Some(line_no),
                    reason: "no rule fired on this event".into(),
                });
            }
            continue;
        }
        report.events_matched += 1;
        for detection in detections {
            if expectation == Expectation::None {
                report.violations.push(Violation {
                    line: Some(line_no),
                    reason: format!("rule fired: {}", detection.title),
                });
            }
            let label = detection
                .rule_id
                .clone()
                .unwrap_or_else(|| detection.title.clone());
            *report.hits.entry(label).or_default() += 1;
            report.detections.push((line_no, detection));
        }
    }
    if expectation == Expectation::Any && report.detections.is_empty() {
        report.violations.push(Violation {
            line: None,
            reason: format!("no rule fired on any of the {} events", report.events),
        });
    }
    Ok(report)
}

/// One exemplar's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ExemplarOutcome {
    /// The rule (`id`, or title when it has none).
    pub rule: String,
    /// The exemplar's name.
    pub name: String,
    /// Whether it was meant to match.
    pub expect_match: bool,
    /// Whether it behaved as meant.
    pub passed: bool,
    /// Why it did not, when it did not.
    pub diagnostic: Option<String>,
}

/// The outcome of running every rule's embedded exemplars.
#[derive(Debug, Clone, Serialize)]
pub struct ExemplarReport {
    /// Every exemplar, rule by rule.
    pub results: Vec<ExemplarOutcome>,
    /// Rules that carry no exemplars (untested).
    pub untested: Vec<String>,
}

impl ExemplarReport {
    /// Whether every exemplar behaved as meant.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }
}

/// Runs the `rsigma.exemplars` of every loaded rule; an exemplar that is malformed, or a rule
/// that cannot be told apart from another by id or title, is an error naming the rule.
pub fn run_exemplars(set: &mut RuleSet) -> Result<ExemplarReport, String> {
    let collection = set.resolved_collection();
    let report = rsigma_eval::run_exemplars(&collection, &[]).map_err(|e| match e {
        rsigma_eval::ExemplarRunError::Shape { rule, errors } => format!(
            "rule {rule}: malformed exemplars: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        rsigma_eval::ExemplarRunError::AmbiguousTitle(title) => {
            format!("several rules are titled {title:?} and have no id; give each an id")
        }
        rsigma_eval::ExemplarRunError::Reference(r) => r,
        rsigma_eval::ExemplarRunError::Compile(e) => e.to_string(),
    })?;
    Ok(ExemplarReport {
        results: report
            .results
            .into_iter()
            .map(|r| ExemplarOutcome {
                rule: r.rule_id.unwrap_or(r.rule_title),
                name: r.name,
                expect_match: r.expect == rsigma_parser::Expect::Match,
                passed: r.passed,
                diagnostic: r.diagnostic,
            })
            .collect(),
        untested: report
            .missing
            .into_iter()
            .map(|m| m.rule_id.unwrap_or(m.rule_title))
            .collect(),
    })
}
