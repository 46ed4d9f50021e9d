//! MISP feed JSON: an event (`{"Event": {…}}`, one file per event in a MISP feed), a list of
//! them, or a `restSearch` answer (`{"response": [{"Event": …}]}`).
//!
//! The attributes read are the address, network, domain and SHA-256 types, including the
//! composite ones (`ip-dst|port`, `domain|ip`, `filename|sha256`), in the event and in its
//! objects. MISP marks what is meant for detection with `to_ids`; attributes without it, and
//! deleted ones, are skipped and counted. MISP has no numeric confidence: the taxonomy tag
//! `misp:confidence-level="…"` (on the attribute, else on the event) gives one, else the
//! file's default applies.

use serde::Deserialize;

use super::{Candidate, IndicatorKind, Skipped};

#[derive(Debug, Deserialize)]
struct Wrapped {
    #[serde(rename = "Event")]
    event: Event,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    info: Option<String>,
    #[serde(rename = "Attribute", default)]
    attributes: Vec<Attribute>,
    #[serde(rename = "Object", default)]
    objects: Vec<Object>,
    #[serde(rename = "Tag", default)]
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
struct Object {
    #[serde(rename = "Attribute", default)]
    attributes: Vec<Attribute>,
}

#[derive(Debug, Deserialize)]
struct Attribute {
    #[serde(rename = "type")]
    kind: String,
    value: String,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default = "yes")]
    to_ids: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(rename = "Tag", default)]
    tags: Vec<Tag>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct Tag {
    name: String,
}

/// Whether `value` looks like MISP JSON.
pub(super) fn is_misp(value: &serde_json::Value) -> bool {
    value.get("Event").is_some()
        || value.get("response").is_some()
        || value
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e.get("Event").is_some()))
}

/// The indicators of one or more MISP events, and the attributes skipped with why.
pub(super) fn read(
    value: serde_json::Value,
    default_confidence: u8,
) -> Result<(Vec<Candidate>, Vec<Skipped>), String> {
    let events: Vec<Wrapped> = if value.get("Event").is_some() {
        vec![serde_json::from_value(value).map_err(|e| format!("not a MISP event: {e}"))?]
    } else if let Some(response) = value.get("response") {
        serde_json::from_value(response.clone())
            .map_err(|e| format!("not a MISP restSearch answer: {e}"))?
    } else {
        serde_json::from_value(value).map_err(|e| format!("not a list of MISP events: {e}"))?
    };
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for Wrapped { event } in events {
        let event_confidence = confidence_tag(&event.tags).unwrap_or(default_confidence);
        let name = event
            .uuid
            .clone()
            .or(event.info.clone())
            .unwrap_or_else(|| "event".into());
        let attributes = event
            .attributes
            .iter()
            .chain(event.objects.iter().flat_map(|o| o.attributes.iter()));
        for attribute in attributes {
            let reference = format!(
                "{name}/{}",
                attribute.uuid.as_deref().unwrap_or(&attribute.value)
            );
            if attribute.deleted {
                skipped.push(Skipped::new(reference, "deleted".into()));
                continue;
            }
            if !attribute.to_ids {
                skipped.push(Skipped::new(
                    reference,
                    "to_ids is false (not meant for detection)".into(),
                ));
                continue;
            }
            let Some(values) = values(&attribute.kind, &attribute.value) else {
                skipped.push(Skipped::new(
                    reference,
                    format!(
                        "attribute type {:?} is not an address, network, domain or SHA-256",
                        attribute.kind
                    ),
                ));
                continue;
            };
            let confidence = confidence_tag(&attribute.tags).unwrap_or(event_confidence);
            found.extend(values.into_iter().map(|(kind, value)| Candidate {
                value,
                kind,
                confidence,
                expires_at: None,
                reference: reference.clone(),
            }));
        }
    }
    Ok((found, skipped))
}

/// The indicator values of an attribute (`None` for the kind left to the value's shape).
fn values(kind: &str, value: &str) -> Option<Vec<(Option<IndicatorKind>, String)>> {
    let value = value.trim().to_ascii_lowercase();
    let first = |v: &str| v.split('|').next().unwrap_or_default().to_owned();
    let second = |v: &str| v.split('|').nth(1).unwrap_or_default().to_owned();
    // Addresses may be networks; the loader tells them apart by shape.
    Some(match kind {
        "ip-dst" | "ip-src" => vec![(None, value)],
        "ip-dst|port" | "ip-src|port" => vec![(None, first(&value))],
        "domain" | "hostname" => vec![(Some(IndicatorKind::Domain), value)],
        "hostname|port" => vec![(Some(IndicatorKind::Domain), first(&value))],
        "domain|ip" => vec![
            (Some(IndicatorKind::Domain), first(&value)),
            (None, second(&value)),
        ],
        "sha256" => vec![(Some(IndicatorKind::Sha256), value)],
        "filename|sha256" => vec![(Some(IndicatorKind::Sha256), second(&value))],
        _ => return None,
    })
}

/// `misp:confidence-level="…"` as 0–100.
fn confidence_tag(tags: &[Tag]) -> Option<u8> {
    tags.iter().find_map(|t| {
        let level = t
            .name
            .strip_prefix("misp:confidence-level=")?
            .trim_matches('"');
        Some(match level {
            "completely-confident" => 100,
            "usually-confident" => 75,
            "fairly-confident" => 50,
            "rarely-confident" => 25,
            "unconfident" => 0,
            _ => return None,
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_give_their_detection_attributes() {
        let event = serde_json::json!({"Event": {
            "uuid": "5f0c-mirai", "info": "Mirai C2 infrastructure", "threat_level_id": "1",
            "Tag": [{"name": "misp:confidence-level=\"usually-confident\""}],
            "Attribute": [
                {"type": "ip-dst", "value": "198.51.100.23", "to_ids": true, "uuid": "a1"},
                {"type": "ip-dst|port", "value": "203.0.113.5|23", "to_ids": true, "uuid": "a2"},
                {"type": "domain|ip", "value": "cnc.Example|192.0.2.8", "to_ids": true, "uuid": "a3"},
                {"type": "ip-src", "value": "10.9.0.0/16", "to_ids": true, "uuid": "a4",
                 "Tag": [{"name": "misp:confidence-level=\"rarely-confident\""}]},
                {"type": "ip-dst", "value": "192.0.2.99", "to_ids": false, "uuid": "a5"},
                {"type": "url", "value": "http://x.example/bins/mirai.arm", "to_ids": true, "uuid": "a6"},
                {"type": "ip-dst", "value": "192.0.2.100", "to_ids": true, "deleted": true, "uuid": "a7"},
            ],
            "Object": [{"name": "file", "Attribute": [
                {"type": "sha256", "value": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "to_ids": true, "uuid": "o1"},
                {"type": "filename", "value": "mirai.arm", "to_ids": false, "uuid": "o2"},
            ]}],
        }});
        assert!(is_misp(&event));
        let (found, skipped) = read(event, 40).unwrap();
        let got: Vec<(&str, Option<IndicatorKind>, u8)> = found
            .iter()
            .map(|c| (c.value.as_str(), c.kind, c.confidence))
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.23", None, 75),
                ("203.0.113.5", None, 75),
                ("cnc.example", Some(IndicatorKind::Domain), 75),
                ("192.0.2.8", None, 75),
                ("10.9.0.0/16", None, 25),
                (
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    Some(IndicatorKind::Sha256),
                    75
                ),
            ]
        );
        assert_eq!(found[0].reference, "5f0c-mirai/a1");
        let skipped: Vec<&str> = skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            skipped,
            [
                "5f0c-mirai/a5",
                "5f0c-mirai/a6",
                "5f0c-mirai/a7",
                "5f0c-mirai/o2"
            ]
        );
    }

    #[test]
    fn lists_and_search_answers_are_read_too() {
        let one =
            serde_json::json!({"Event": {"Attribute": [{"type": "domain", "value": "a.example"}]}});
        let list = serde_json::json!([one.clone(), one.clone()]);
        let (found, _) = read(list.clone(), 50).unwrap();
        assert_eq!(found.len(), 2);
        assert!(is_misp(&list));
        let answer = serde_json::json!({"response": [one]});
        assert_eq!(read(answer, 50).unwrap().0.len(), 1);
        assert!(
            read(
                serde_json::json!({"Event": {"Attribute": [{"value": 1}]}}),
                50
            )
            .is_err()
        );
    }
}
