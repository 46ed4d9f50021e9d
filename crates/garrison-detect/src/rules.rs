//! Loading Sigma rules document by document, keeping a report of what loaded and why the rest
//! did not.
//!
//! rsigma's `add_collection` fails a whole collection on the first rule it cannot compile; a
//! public corpus such as SigmaHQ always holds a few rules that use something an engine lacks,
//! and one of them must not take the other two hundred down. So every rule is compiled on its
//! own first, correlations are checked against the rules that did load, and only what passes
//! reaches the engine.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use rsigma_parser::{CorrelationRule, FilterRule, SigmaCollection, SigmaRule};
use serde::Serialize;

use crate::DetectError;

/// What kind of Sigma document a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A detection rule: selections and a condition over one event.
    Detection,
    /// A correlation rule over the detections of other rules.
    Correlation,
    /// A filter that narrows other rules.
    Filter,
    /// A document that could not be parsed far enough to tell.
    Unknown,
}

/// Whether a document made it into the rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum LoadOutcome {
    /// In the rule set and evaluated.
    Loaded,
    /// Left out, for this reason.
    Rejected(String),
}

/// One document's entry in the load report.
#[derive(Debug, Clone, Serialize)]
pub struct RuleLoad {
    /// The file it came from (or the label given to [`RuleSet::add_yaml`]).
    pub source: String,
    /// Its title, when it was parsed far enough to have one.
    pub title: Option<String>,
    /// Its `id`, when it has one.
    pub id: Option<String>,
    /// Detection, correlation or filter.
    pub kind: RuleKind,
    /// Loaded, or why not.
    pub outcome: LoadOutcome,
    /// Non-fatal parser remarks about the file (invalid `date`, malformed `related` …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Rules that loaded, ready for a [`Detector`](crate::Detector), and the report of every
/// document seen.
#[derive(Debug)]
pub struct RuleSet {
    collection: SigmaCollection,
    report: Vec<RuleLoad>,
}

impl Default for RuleSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleSet {
    /// An empty rule set.
    pub fn new() -> Self {
        Self {
            collection: SigmaCollection::new(),
            report: Vec::new(),
        }
    }

    /// Loads every `.yml`/`.yaml` file under each path (files are taken as given; directories
    /// are walked recursively, in name order so reports are stable).
    ///
    /// A path that does not exist is an error; a file inside a directory that cannot be read
    /// is reported as rejected and the rest still load.
    pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Self, DetectError> {
        let mut set = Self::new();
        for path in paths {
            set.load_path(path.as_ref())?;
        }
        Ok(set)
    }

    /// Loads one file or directory; see [`RuleSet::load_paths`].
    pub fn load_path(&mut self, path: &Path) -> Result<(), DetectError> {
        for file in files_under(path)? {
            self.load_file(&file);
        }
        Ok(())
    }

    fn load_file(&mut self, file: &Path) {
        let source = file.display().to_string();
        match fs::read_to_string(file) {
            Ok(text) => self.add_yaml(&source, &text),
            Err(e) => self
                .report
                .push(rejected_file(source, format!("cannot read: {e}"))),
        }
    }

    /// Parses `yaml` (one or more Sigma documents) and adds what compiles; `source` labels
    /// the report entries.
    pub fn add_yaml(&mut self, source: &str, yaml: &str) {
        let parsed = match rsigma_parser::parse_sigma_yaml(yaml) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.report
                    .push(rejected_file(source.to_owned(), e.to_string()));
                return;
            }
        };
        // rsigma collects fatal per-document errors and non-fatal remarks in one list. With
        // nothing produced they are the reasons; otherwise they ride along as warnings (a
        // multi-document file whose one document failed shows that failure there too).
        if parsed.is_empty() {
            let reason = if parsed.errors.is_empty() {
                "no Sigma document in the file".to_owned()
            } else {
                parsed.errors.join("; ")
            };
            self.report.push(rejected_file(source.to_owned(), reason));
            return;
        }
        let warnings = parsed.errors;
        for rule in parsed.rules {
            self.add_rule(source, rule, &warnings);
        }
        for filter in parsed.filters {
            self.add_filter(source, filter, &warnings);
        }
        for correlation in parsed.correlations {
            self.add_correlation(source, correlation, &warnings);
        }
    }

    fn add_rule(&mut self, source: &str, rule: SigmaRule, warnings: &[String]) {
        let compiled = rsigma_eval::compile_rule(&rule).map(drop);
        let entry = (rule.title.as_str(), rule.id.as_deref(), RuleKind::Detection);
        if self.record(source, entry, compiled, warnings) {
            self.collection.rules.push(rule);
        }
    }

    fn add_filter(&mut self, source: &str, filter: FilterRule, warnings: &[String]) {
        let entry = (
            filter.title.as_str(),
            filter.id.as_deref(),
            RuleKind::Filter,
        );
        if self.record(source, entry, Ok(()), warnings) {
            self.collection.filters.push(filter);
        }
    }

    fn add_correlation(&mut self, source: &str, correlation: CorrelationRule, warnings: &[String]) {
        let compiled = rsigma_eval::correlation::compile_correlation(&correlation).map(drop);
        let entry = (
            correlation.title.as_str(),
            correlation.id.as_deref(),
            RuleKind::Correlation,
        );
        if self.record(source, entry, compiled, warnings) {
            self.collection.correlations.push(correlation);
        }
    }

    /// Adds a document's report entry; true when it compiled and belongs in the set.
    fn record(
        &mut self,
        source: &str,
        (title, id, kind): (&str, Option<&str>, RuleKind),
        compiled: Result<(), rsigma_eval::EvalError>,
        warnings: &[String],
    ) -> bool {
        let loaded = compiled.is_ok();
        self.report.push(RuleLoad {
            source: source.to_owned(),
            title: Some(title.to_owned()),
            id: id.map(str::to_owned),
            kind,
            outcome: match compiled {
                Ok(()) => LoadOutcome::Loaded,
                Err(e) => LoadOutcome::Rejected(e.to_string()),
            },
            warnings: warnings.to_vec(),
        });
        loaded
    }

    /// Every document seen, in load order.
    pub fn report(&self) -> &[RuleLoad] {
        &self.report
    }

    /// How many documents loaded and how many were rejected.
    pub fn counts(&self) -> (usize, usize) {
        let loaded = self
            .report
            .iter()
            .filter(|r| r.outcome == LoadOutcome::Loaded)
            .count();
        (loaded, self.report.len() - loaded)
    }

    /// The rules that compiled, with correlations whose references cannot be resolved —
    /// directly or through another dropped correlation — rejected in the report.
    pub(crate) fn resolved_collection(&mut self) -> SigmaCollection {
        let mut known: HashSet<String> = self
            .collection
            .rules
            .iter()
            .flat_map(|r| r.id.iter().chain(r.name.iter()).cloned())
            .collect();
        let mut pending = self.collection.correlations.clone();
        let mut kept = Vec::new();
        // Correlations may build on correlations: keep adding those whose references are all
        // known until nothing changes; what is left references something absent.
        loop {
            let (ready, waiting): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|c| c.rules.iter().all(|r| known.contains(r)));
            if ready.is_empty() {
                pending = waiting;
                break;
            }
            for c in &ready {
                known.extend(c.id.iter().chain(c.name.iter()).cloned());
            }
            kept.extend(ready);
            pending = waiting;
        }
        for dropped in &pending {
            let missing: Vec<&str> = dropped
                .rules
                .iter()
                .filter(|r| !known.contains(*r))
                .map(String::as_str)
                .collect();
            let reason = format!(
                "references rules that are not loaded: {}",
                missing.join(", ")
            );
            if let Some(entry) = self.report.iter_mut().find(|e| {
                e.kind == RuleKind::Correlation
                    && e.outcome == LoadOutcome::Loaded
                    && e.title.as_deref() == Some(dropped.title.as_str())
                    && e.id == dropped.id
            }) {
                entry.outcome = LoadOutcome::Rejected(reason);
            }
        }
        self.collection.correlations = kept;
        SigmaCollection {
            rules: self.collection.rules.clone(),
            correlations: self.collection.correlations.clone(),
            filters: self.collection.filters.clone(),
            errors: Vec::new(),
        }
    }
}

fn rejected_file(source: String, reason: String) -> RuleLoad {
    RuleLoad {
        source,
        title: None,
        id: None,
        kind: RuleKind::Unknown,
        outcome: LoadOutcome::Rejected(reason),
        warnings: Vec::new(),
    }
}

/// `path` itself when it is a file; otherwise the rule files under it.
pub(crate) fn files_under(path: &Path) -> Result<Vec<PathBuf>, DetectError> {
    let meta = fs::metadata(path).map_err(|source| DetectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        rule_files(path)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// The rule files under `dir`, recursively, sorted by path.
fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, DetectError> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| DetectError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
