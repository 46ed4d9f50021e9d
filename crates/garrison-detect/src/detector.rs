//! The running detection engine: JSON events in, [`Detection`]s out.
//!
//! Events are JSON objects. Their logsource is read from the fields `product`, `category` and
//! `service`: a rule whose logsource conflicts with the event's is not evaluated on it.
//!
//! Detection rules match one event; correlation rules (`event_count`, `value_count`,
//! `temporal`, `temporal_ordered`, …) keep per-group windows over the detections of other
//! rules, so a [`Detector`] has state and is fed events in time order.

use garrison_core::Severity;
use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, EvaluationResult, JsonEvent, LogSourceExtractor,
    ResultBody, TimestampFallback,
};
use rsigma_parser::Level;
use serde::Serialize;

use crate::{DetectError, RuleSet, prefilter::KeywordGate};

/// Event fields tried, in order, for the event's time: OCSF's `time` (epoch milliseconds)
/// first, then the names Sigma rule sets and log shippers commonly use.
pub const TIMESTAMP_FIELDS: &[&str] =
    &["time", "@timestamp", "timestamp", "EventTime", "eventTime"];

/// How a [`Detector`] treats time.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectorOptions {
    /// Replaying recorded events: an event without a readable timestamp still meets the
    /// detection rules but does not advance or join correlation windows (the live default
    /// dates such an event "now").
    pub replay: bool,
    /// Evaluate every keyword rule on every event, without the literal pre-filter
    /// ([`prefilter`](crate::prefilter)); the results are the same, only slower. For checking
    /// the pre-filter.
    pub unfiltered: bool,
}

impl DetectorOptions {
    /// Replaying recorded events (rule tests, lint, `garrison rules test`), with the defaults
    /// otherwise.
    pub fn replay() -> DetectorOptions {
        DetectorOptions {
            replay: true,
            ..DetectorOptions::default()
        }
    }
}

/// One rule firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The rule's `id`, when it has one.
    pub rule_id: Option<String>,
    /// The rule's title.
    pub title: String,
    /// The rule's `level` on Garrison's scale; a rule without one counts as medium.
    pub severity: Severity,
    /// The rule's tags (`attack.t1110`, `attack.ics.t0812` …).
    pub tags: Vec<String>,
    /// What matched.
    #[serde(flatten)]
    pub kind: DetectionKind,
}

/// What made a rule fire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DetectionKind {
    /// A detection rule matched this event.
    Match {
        /// The named selections that matched.
        selections: Vec<String>,
        /// Field and value pairs that matched.
        fields: Vec<(String, serde_json::Value)>,
    },
    /// A correlation rule's condition was met in a window.
    Correlation {
        /// `event_count`, `value_count`, `temporal` …
        correlation_type: String,
        /// The group-by fields and their values for this group.
        group: Vec<(String, String)>,
        /// The aggregated value that met the condition (a count, a sum …).
        value: f64,
        /// The window, in seconds.
        window_secs: u64,
    },
}

/// Rules compiled into an engine, fed one event at a time.
pub struct Detector {
    engine: CorrelationEngine,
    /// Keyword rules evaluated only on events that contain one of their literals.
    gate: Option<KeywordGate>,
    /// Ids of detection rules that only feed correlations (`generate: false`): not alerts.
    building_blocks: std::collections::HashSet<String>,
    detection_rules: usize,
    correlation_rules: usize,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("detection_rules", &self.detection_rules)
            .field("correlation_rules", &self.correlation_rules)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Builds an engine from the rules of `set` that loaded. Correlations whose references are
    /// missing are marked rejected in the set's report first.
    pub fn new(set: &mut RuleSet, options: DetectorOptions) -> Result<Self, DetectError> {
        let mut collection = set.resolved_collection();
        let building_blocks = building_blocks(&collection);
        let gate = if options.unfiltered {
            None
        } else {
            let referenced: std::collections::HashSet<&str> = collection
                .correlations
                .iter()
                .flat_map(|c| c.rules.iter().map(String::as_str))
                .collect();
            KeywordGate::take(&mut collection.rules, &referenced)?
        };
        let config = CorrelationConfig {
            timestamp_fields: TIMESTAMP_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            timestamp_fallback: if options.replay {
                TimestampFallback::Skip
            } else {
                TimestampFallback::WallClock
            },
            // Each correlation chooses its own re-alert suppression (`rsigma.suppress`); left
            // unset, rsigma would adopt the first rule's value for every correlation.
            suppress: Some(0),
            ..CorrelationConfig::default()
        };
        let mut engine = CorrelationEngine::new(config);
        // An event that says what it is (`product`, `category`, `service`) skips rules written
        // for something else: a `not selection` rule for Zeek RDP logs must not fire on every
        // Linux process event just because the field it tests is absent. Untagged events and
        // rules without a logsource still meet everything.
        engine.set_logsource_extractor(Some(LogSourceExtractor::new()));
        engine
            .add_collection(&collection)
            .map_err(|e| DetectError::Build(e.to_string()))?;
        Ok(Self {
            building_blocks,
            detection_rules: engine.detection_rule_count() + gate.as_ref().map_or(0, |g| g.len()),
            gate,
            correlation_rules: engine.correlation_rule_count(),
            engine,
        })
    }

    /// Whether the rule with this id only feeds correlations (its matches are not reported).
    pub fn is_building_block(&self, rule_id: &str) -> bool {
        self.building_blocks.contains(rule_id)
    }

    /// How many detection and correlation rules are running.
    pub fn rule_counts(&self) -> (usize, usize) {
        (self.detection_rules, self.correlation_rules)
    }

    /// Evaluates one event, dated by its own timestamp field (see [`TIMESTAMP_FIELDS`]).
    pub fn process(&mut self, event: &serde_json::Value) -> Vec<Detection> {
        let json = JsonEvent::borrow(event);
        let matches = self.matches(event, &json);
        if matches.is_empty() {
            return Vec::new();
        }
        let results = self.engine.correlate_detections(&json, matches);
        self.alerts(results)
    }

    /// Evaluates one event at a time given by the caller, in seconds since the Unix epoch
    /// (for events whose time is known from elsewhere, such as the intake's receive time).
    pub fn process_at(&mut self, event: &serde_json::Value, unix_secs: i64) -> Vec<Detection> {
        let json = JsonEvent::borrow(event);
        let matches = self.matches(event, &json);
        if matches.is_empty() {
            return Vec::new();
        }
        let results = self
            .engine
            .process_with_detections(&json, matches, unix_secs);
        self.alerts(results)
    }

    /// The detection rules that match `event`, from the engine and from behind the keyword
    /// gate. Correlations only ever advance on such matches, so an event with none skips
    /// them (and the search for its timestamp) entirely.
    fn matches(&mut self, event: &serde_json::Value, json: &JsonEvent) -> Vec<EvaluationResult> {
        let mut matches = self.engine.evaluate(json);
        if let Some(gate) = &mut self.gate {
            gate.evaluate(event, &mut matches);
        }
        matches
    }

    fn alerts(&self, results: Vec<EvaluationResult>) -> Vec<Detection> {
        results
            .into_iter()
            .filter(|r| {
                !(matches!(r.body, ResultBody::Detection(_))
                    && r.header
                        .rule_id
                        .as_ref()
                        .is_some_and(|id| self.building_blocks.contains(id)))
            })
            .map(Detection::from)
            .collect()
    }
}

/// The ids of detection rules that only feed correlations. Sigma's default is `generate:
/// false`: such a rule is a building block, not an alert. rsigma 0.23's own
/// `emit_detections: false` misses rules a correlation references by `name` (it compares the
/// reference with the rule id), so Garrison resolves names to ids itself.
fn building_blocks(
    collection: &rsigma_parser::SigmaCollection,
) -> std::collections::HashSet<String> {
    let hidden: std::collections::HashSet<&str> = collection
        .correlations
        .iter()
        .filter(|c| !c.generate)
        .flat_map(|c| c.rules.iter().map(String::as_str))
        .collect();
    let generated: std::collections::HashSet<&str> = collection
        .correlations
        .iter()
        .filter(|c| c.generate)
        .flat_map(|c| c.rules.iter().map(String::as_str))
        .collect();
    collection
        .rules
        .iter()
        .filter(|r| {
            let refs = || r.id.iter().chain(r.name.iter()).map(String::as_str);
            refs().any(|x| hidden.contains(x)) && !refs().any(|x| generated.contains(x))
        })
        .filter_map(|r| r.id.clone())
        .collect()
}

/// Garrison's severity for a Sigma `level`.
pub fn severity_of(level: Option<Level>) -> Severity {
    match level {
        Some(Level::Informational) => Severity::Info,
        Some(Level::Low) => Severity::Low,
        Some(Level::Medium) | None => Severity::Medium,
        Some(Level::High) => Severity::High,
        Some(Level::Critical) => Severity::Critical,
    }
}

impl From<EvaluationResult> for Detection {
    fn from(result: EvaluationResult) -> Self {
        let header = result.header;
        let kind = match result.body {
            ResultBody::Detection(mut body) => DetectionKind::Match {
                // rsigma reports both in hash order, which differs between engines and runs.
                selections: {
                    body.matched_selections.sort();
                    body.matched_selections
                },
                fields: {
                    let mut fields: Vec<(String, serde_json::Value)> = body
                        .matched_fields
                        .into_iter()
                        .map(|m| (m.field, m.value))
                        .collect();
                    fields.sort_by_cached_key(|(field, value)| (field.clone(), value.to_string()));
                    fields
                },
            },
            ResultBody::Correlation(body) => DetectionKind::Correlation {
                correlation_type: body.correlation_type.as_str().to_owned(),
                group: body.group_key,
                value: body.aggregated_value,
                window_secs: body.timespan_secs,
            },
        };
        Detection {
            rule_id: header.rule_id,
            title: header.rule_title,
            severity: severity_of(header.level),
            tags: header.tags,
            kind,
        }
    }
}
