//! A literal pre-filter for keyword rules: rules whose every match needs one of a few literal
//! strings somewhere in the event's string values.
//!
//! rsigma 0.23 indexes most rules by what an event must contain, but a keyword (field-less)
//! value with a wildcard (`'Trojan*FOUND'`, `'rm *sh_history'`) compiles to a regex it cannot
//! index, so such a rule is evaluated on every event — against every string value, keyword by
//! keyword. On the SigmaHQ Linux set, four such rules took most of the engine's time (210
//! rules: ~230k events/s; the same set without its keyword rules: ~780k).
//!
//! Every match of a Sigma string value contains each of its literal parts (the text between
//! wildcards), case-insensitively. So a rule whose condition cannot hold unless one of its
//! keyword values matches (a keyword detection, an `or` of them, or an `and` with one) needs
//! one of those values' longest literal parts in some string of the event. [`KeywordGate`]
//! keeps such rules out of the main engine, finds those literals in one Aho-Corasick pass over
//! the event's strings, and evaluates only the rules whose literal is there — each in an engine
//! of its own, so one rule's hit does not evaluate the others.
//!
//! The gate only ever skips rules that cannot match; `tests` hold it to the ungated result.
//! Rules that correlations reference stay in the main engine (their matches feed windows).

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use rsigma_eval::{Engine, EvaluationResult, JsonEvent, LogSourceExtractor};
use rsigma_parser::{
    ConditionExpr, Detection, Detections, Quantifier, SigmaRule, SigmaValue, StringPart,
};

use crate::DetectError;

/// Keyword rules evaluated only when one of their literals is in the event.
pub(crate) struct KeywordGate {
    /// Every gated rule's literals; pattern `i` belongs to rule `owner[i]`.
    automaton: AhoCorasick,
    owner: Vec<usize>,
    /// One engine per gated rule.
    rules: Vec<Engine>,
    /// Scratch: which rules the current event woke.
    woken: Vec<bool>,
}

impl KeywordGate {
    /// Takes the rules it can gate out of `rules` (those not in `referenced`, by id or name)
    /// and builds the gate over them; `None` when there are none.
    pub(crate) fn take(
        rules: &mut Vec<SigmaRule>,
        referenced: &HashSet<&str>,
    ) -> Result<Option<KeywordGate>, DetectError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut owner = Vec::new();
        let mut engines = Vec::new();
        let mut kept = Vec::with_capacity(rules.len());
        for rule in rules.drain(..) {
            let is_referenced = rule
                .id
                .iter()
                .chain(rule.name.iter())
                .any(|r| referenced.contains(r.as_str()));
            let literals = if is_referenced {
                None
            } else {
                rule_literals(&rule.detection)
            };
            match literals {
                Some(literals) => {
                    let mut engine = Engine::new();
                    engine.set_logsource_extractor(Some(LogSourceExtractor::new()));
                    engine
                        .add_rule(&rule)
                        .map_err(|e| DetectError::Build(e.to_string()))?;
                    for literal in literals {
                        patterns.push(literal);
                        owner.push(engines.len());
                    }
                    engines.push(engine);
                }
                None => kept.push(rule),
            }
        }
        *rules = kept;
        if engines.is_empty() {
            return Ok(None);
        }
        // Overlapping search: a literal inside another must still wake its own rule. A DFA:
        // a few hundred short literals make a small one, and it is the fastest to scan with.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| DetectError::Build(format!("keyword pre-filter: {e}")))?;
        Ok(Some(KeywordGate {
            automaton,
            owner,
            woken: vec![false; engines.len()],
            rules: engines,
        }))
    }

    /// Rules behind the gate.
    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Evaluates the gated rules whose literals `event` contains, adding their matches.
    pub(crate) fn evaluate(&mut self, event: &serde_json::Value, out: &mut Vec<EvaluationResult>) {
        let mut any = false;
        visit_strings(event, &mut |text| {
            // rsigma lowercases a non-ASCII value with full Unicode rules before comparing
            // (the Kelvin sign becomes `k`); an ASCII one compares as ASCII.
            let lowered;
            let haystack = if text.is_ascii() {
                text
            } else {
                lowered = text.to_lowercase();
                &lowered
            };
            for hit in self.automaton.find_overlapping_iter(haystack) {
                self.woken[self.owner[hit.pattern().as_usize()]] = true;
                any = true;
            }
        });
        if !any {
            return;
        }
        let event = JsonEvent::borrow(event);
        for (rule, woken) in self.rules.iter().zip(self.woken.iter_mut()) {
            if std::mem::take(woken) {
                out.extend(rule.evaluate(&event));
            }
        }
    }
}

/// Every string in a JSON value (rsigma matches keywords against string values only).
fn visit_strings(value: &serde_json::Value, visit: &mut impl FnMut(&str)) {
    match value {
        serde_json::Value::String(s) => visit(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| visit_strings(v, visit)),
        serde_json::Value::Object(map) => map.values().for_each(|v| visit_strings(v, visit)),
        _ => {}
    }
}

/// Literals at least one of which every match of the rule contains, lowercased; `None` when
/// the rule can match without any (a field selection alone, a `not`, a value that is all
/// wildcards).
fn rule_literals(detection: &Detections) -> Option<Vec<String>> {
    // A rule with several conditions matches when any of them holds.
    let mut literals = Vec::new();
    for condition in &detection.conditions {
        literals.extend(condition_literals(condition, detection)?);
    }
    (!literals.is_empty()).then_some(literals)
}

fn condition_literals(condition: &ConditionExpr, detection: &Detections) -> Option<Vec<String>> {
    match condition {
        ConditionExpr::Identifier(name) => detection_literals(detection.named.get(name)?),
        // One conjunct's literals are necessary for the whole.
        ConditionExpr::And(parts) => parts.iter().find_map(|p| condition_literals(p, detection)),
        // Each alternative needs its own.
        ConditionExpr::Or(parts) => union(parts.iter().map(|p| condition_literals(p, detection))),
        ConditionExpr::Not(_) => None,
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let mut names: Vec<&String> = detection
                .named
                .keys()
                .filter(|n| pattern.matches_detection_name(n))
                .collect();
            names.sort();
            let of = |name: &&String| detection_literals(&detection.named[*name]);
            match quantifier {
                Quantifier::All => names.iter().find_map(of),
                Quantifier::Any | Quantifier::Count(1..) => union(names.iter().map(of)),
                Quantifier::Count(0) => None,
            }
        }
    }
}

fn detection_literals(detection: &Detection) -> Option<Vec<String>> {
    match detection {
        Detection::Keywords(values) => union(values.iter().map(|v| match v {
            SigmaValue::String(s) => longest_literal(&s.parts).map(|l| vec![l]),
            _ => None,
        })),
        Detection::AnyOf(alternatives) => union(alternatives.iter().map(detection_literals)),
        _ => None,
    }
}

/// All alternatives' literals, or `None` if any alternative has none (or there are none).
fn union(alternatives: impl Iterator<Item = Option<Vec<String>>>) -> Option<Vec<String>> {
    let mut all = Vec::new();
    for literals in alternatives {
        all.extend(literals?);
    }
    (!all.is_empty()).then_some(all)
}

/// The longest literal part of a Sigma string, lowercased. ASCII only: lowercasing a
/// non-ASCII part alone can differ from lowercasing the whole value (Greek final sigma).
fn longest_literal(parts: &[StringPart]) -> Option<String> {
    parts
        .iter()
        .filter_map(|p| match p {
            StringPart::Plain(text) if !text.is_empty() && text.is_ascii() => Some(text),
            _ => None,
        })
        .max_by_key(|text| text.len())
        .map(|text| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> SigmaRule {
        rsigma_parser::parse_sigma_yaml(yaml)
            .unwrap()
            .rules
            .remove(0)
    }

    fn literals(detection: &str) -> Option<Vec<String>> {
        let text = format!("title: t\nlogsource:\n    product: linux\ndetection:\n{detection}");
        rule_literals(&rule(&text).detection)
    }

    #[test]
    fn keyword_rules_are_gated_by_their_longest_literals() {
        assert_eq!(
            literals(
                "    keywords:\n        - 'Trojan*FOUND'\n        - 'rm *sh_history'\n    condition: keywords\n"
            ),
            Some(vec!["trojan".to_owned(), "sh_history".to_owned()])
        );
        // `and not filter`: the keywords are still required.
        assert_eq!(
            literals(
                "    keywords:\n        - 'a*bcd'\n    filter:\n        User: root\n    condition: keywords and not filter\n"
            ),
            Some(vec!["bcd".to_owned()])
        );
        assert_eq!(
            literals(
                "    kw_a:\n        - 'xyz'\n    kw_b:\n        - 'uvw*'\n    condition: 1 of kw_*\n"
            ),
            Some(vec!["xyz".to_owned(), "uvw".to_owned()])
        );
    }

    #[test]
    fn rules_that_can_match_without_a_literal_are_not_gated() {
        for detection in [
            // A field selection.
            "    selection:\n        Image|endswith: '/nc'\n    condition: selection\n",
            // Either a keyword or a selection.
            "    keywords:\n        - 'abc'\n    selection:\n        User: root\n    condition: keywords or selection\n",
            "    keywords:\n        - 'abc'\n    condition: not keywords\n",
            // A value that is all wildcards, and a number.
            "    keywords:\n        - 'abc'\n        - '*'\n    condition: keywords\n",
            "    keywords:\n        - 'abc'\n        - 42\n    condition: keywords\n",
            // A non-ASCII literal.
            "    keywords:\n        - 'ΣΑΣ'\n    condition: keywords\n",
        ] {
            assert_eq!(literals(detection), None, "{detection}");
        }
    }
}
