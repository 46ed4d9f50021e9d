//! Playbooks: YAML that maps alert conditions to response actions.
//!
//! ```yaml
//! playbooks:
//!   - name: contain-infected
//!     description: Quarantine devices showing a critical compromise for a day.
//!     mode: enforce            # or dry_run: record what would be done, do nothing
//!     when:
//!       min_severity: critical # all given conditions must hold
//!       rules: [3f0c…]         # rule ids or titles (any)
//!       tags: [attack.t1110]   # rule tags (any)
//!     actions:
//!       - action: quarantine
//!         expires: 24h         # undone by itself after this
//!       - action: revoke
//!         reason: key-compromise
//!         approval: true       # waits for an operator (the default for revoke)
//!       - action: forward      # to the SOC's SIEM, as syslog over TLS
//!         url: syslog+tls://siem.example:6514
//!         format: cef          # or ocsf (a Detection Finding as JSON)
//!         ca_file: /etc/garrison/siem-ca.pem   # absent: the platform's trust store
//! ```
//!
//! Parsing checks everything up front — unknown keys, unknown actions, parameters that do not
//! belong to an action, durations, revocation reasons, webhook URLs — and names the playbook
//! and action at fault, so a bad file is refused at start, not at the first alert.

use std::time::Duration;

use garrison_core::{Severity, device::RevocationReason};
use garrison_store::monitor::Alert;
use serde::Deserialize;

use crate::{MonitorError, siem::SiemFormat};

/// The playbook in force when none is configured: a device raising a critical alert (an
/// infection chain, a known IoT malware binary, a login after brute force) is quarantined for a
/// day. Quarantine keeps the `update` and `cmd` channels open, so the device can still be
/// patched or told to rotate; an operator can undo it at any time.
pub const DEFAULT_PLAYBOOKS: &str = r#"
playbooks:
  - name: contain-compromised
    description: Quarantine a device for 24 hours when it raises a critical alert.
    when:
      min_severity: critical
    actions:
      - action: quarantine
        expires: 24h
"#;

/// A parsed playbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    /// Its name (unique in the file).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether its actions run or are only recorded.
    pub dry_run: bool,
    /// When it applies.
    pub when: Condition,
    /// What it does, in order.
    pub actions: Vec<Action>,
}

/// When a playbook applies to an alert (every given condition must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// At least this severe.
    pub min_severity: Option<Severity>,
    /// The rule is one of these (id or title).
    pub rules: Vec<String>,
    /// The rule has one of these tags.
    pub tags: Vec<String>,
}

impl Condition {
    /// Whether `alert` meets the condition.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.min_severity.is_none_or(|m| alert.severity >= m)
            && (self.rules.is_empty()
                || self
                    .rules
                    .iter()
                    .any(|r| *r == alert.rule_id || *r == alert.title))
            && (self.tags.is_empty()
                || self.tags.iter().any(|t| {
                    alert.tags.iter().any(|a| a.eq_ignore_ascii_case(t))
                        || alert.techniques.iter().any(|a| {
                            t.strip_prefix("attack.")
                                .is_some_and(|id| a.eq_ignore_ascii_case(id))
                        })
                }))
    }
}

/// One action of a playbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// Whether an operator must approve it first.
    pub approval: bool,
    /// When it is undone by itself (undoable actions only).
    pub expires: Option<Duration>,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Narrow the device's topics to `update` and `cmd`.
    Quarantine,
    /// Close the device's MQTT session.
    Disconnect,
    /// Revoke the device's certificate.
    Revoke {
        /// The reason recorded in the CRL.
        reason: RevocationReason,
    },
    /// Ask the device to rotate its certificate.
    Rotate,
    /// Add the device to a static group.
    MoveGroup {
        /// The group.
        group: String,
    },
    /// POST the alert to a URL, signed with HMAC-SHA256.
    Webhook {
        /// Where.
        url: String,
        /// The environment variable holding the shared secret.
        secret_env: String,
    },
    /// Send the alert to a SIEM as a syslog message over TLS ([`crate::siem`]).
    Forward {
        /// `syslog+tls://HOST:PORT` (or `syslog+tcp://` to loopback).
        url: String,
        /// CEF or OCSF JSON.
        format: SiemFormat,
        /// The PEM file of the CA that signed the SIEM's certificate (absent: the platform's
        /// trust store).
        ca_file: Option<String>,
    },
}

impl ActionKind {
    /// The stable name (`move_group`).
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Quarantine => "quarantine",
            ActionKind::Disconnect => "disconnect",
            ActionKind::Revoke { .. } => "revoke",
            ActionKind::Rotate => "rotate",
            ActionKind::MoveGroup { .. } => "move_group",
            ActionKind::Webhook { .. } => "webhook",
            ActionKind::Forward { .. } => "forward",
        }
    }

    /// Whether it can be undone (and so expire).
    pub fn undoable(&self) -> bool {
        matches!(self, ActionKind::Quarantine | ActionKind::MoveGroup { .. })
    }

    /// Whether it acts on a device (and is skipped for alerts without one).
    pub fn needs_device(&self) -> bool {
        !matches!(
            self,
            ActionKind::Webhook { .. } | ActionKind::Forward { .. }
        )
    }

    /// The action a stored response describes (its name and [`ActionKind::params`]).
    pub fn from_stored(name: &str, params: &serde_json::Value) -> Option<ActionKind> {
        let text = |key: &str| params.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Some(match name {
            "quarantine" => ActionKind::Quarantine,
            "disconnect" => ActionKind::Disconnect,
            "rotate" => ActionKind::Rotate,
            "revoke" => ActionKind::Revoke {
                reason: text("reason")?.parse().ok()?,
            },
            "move_group" => ActionKind::MoveGroup {
                group: text("group")?,
            },
            "webhook" => ActionKind::Webhook {
                url: text("url")?,
                secret_env: text("secret_env")?,
            },
            "forward" => ActionKind::Forward {
                url: text("url")?,
                format: SiemFormat::parse(&text("format")?)?,
                ca_file: text("ca_file"),
            },
            _ => return None,
        })
    }

    /// Its parameters, for the record.
    pub fn params(&self) -> serde_json::Value {
        match self {
            ActionKind::Revoke { reason } => serde_json::json!({"reason": reason.as_str()}),
            ActionKind::MoveGroup { group } => serde_json::json!({"group": group}),
            ActionKind::Webhook { url, secret_env } => {
                serde_json::json!({"url": url, "secret_env": secret_env})
            }
            ActionKind::Forward {
                url,
                format,
                ca_file,
            } => serde_json::json!({"url": url, "format": format.as_str(), "ca_file": ca_file}),
            _ => serde_json::json!({}),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    playbooks: Vec<RawPlaybook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    when: RawCondition,
    actions: Vec<RawAction>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Enforce,
    DryRun,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    min_severity: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    action: String,
    approval: Option<bool>,
    expires: Option<String>,
    reason: Option<String>,
    group: Option<String>,
    url: Option<String>,
    secret_env: Option<String>,
    format: Option<String>,
    ca_file: Option<String>,
}

/// Parses a playbook file; `source` names it in errors.
pub fn parse(source: &str, yaml: &str) -> Result<Vec<Playbook>, MonitorError> {
    let bad = |reason: String| MonitorError::Playbook {
        file: source.to_owned(),
        reason,
    };
    let file: File = yaml_serde::from_str(yaml).map_err(|e| bad(e.to_string()))?;
    let mut names = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(file.playbooks.len());
    for raw in file.playbooks {
        let name = raw.name.trim().to_owned();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(bad(format!(
                "playbook name {name:?} must be 1–64 printable characters"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(bad(format!("two playbooks are named {name:?}")));
        }
        let at = |what: &str| format!("playbook {name:?}: {what}");
        let min_severity = raw
            .when
            .min_severity
            .map(|s| {
                s.parse::<Severity>()
                    .map_err(|e| bad(at(&format!("min_severity: {e}"))))
            })
            .transpose()?;
        if raw.actions.is_empty() {
            return Err(bad(at("has no actions")));
        }
        let actions = raw
            .actions
            .into_iter()
            .enumerate()
            .map(|(i, a)| action(a).map_err(|e| bad(at(&format!("action {}: {e}", i + 1)))))
            .collect::<Result<Vec<_>, _>>()?;
        // A response is recorded once per alert, playbook and action (so an alert seen again
        // does not act twice): a second action of the same kind would never run.
        let mut kinds = std::collections::HashSet::new();
        if let Some(twice) = actions.iter().find(|a| !kinds.insert(a.kind.name())) {
            return Err(bad(at(&format!(
                "has two {} actions; put the second in a playbook of its own",
                twice.kind.name()
            ))));
        }
        out.push(Playbook {
            name,
            description: raw.description,
            dry_run: raw.mode == Mode::DryRun,
            when: Condition {
                min_severity,
                rules: raw.when.rules,
                tags: raw.when.tags,
            },
            actions,
        });
    }
    Ok(out)
}

fn action(raw: RawAction) -> Result<Action, String> {
    let RawAction {
        action,
        approval,
        expires,
        reason,
        group,
        url,
        secret_env,
        format,
        ca_file,
    } = raw;
    let unused = |name: &str, present: bool| {
        if present {
            Err(format!("{action} takes no `{name}`"))
        } else {
            Ok(())
        }
    };
    if action != "forward" {
        unused("format", format.is_some())?;
        unused("ca_file", ca_file.is_some())?;
    }
    let kind = match action.as_str() {
        "quarantine" | "disconnect" | "rotate" => {
            unused("reason", reason.is_some())?;
            unused("group", group.is_some())?;
            unused("url", url.is_some() || secret_env.is_some())?;
            match action.as_str() {
                "quarantine" => ActionKind::Quarantine,
                "disconnect" => ActionKind::Disconnect,
                _ => ActionKind::Rotate,
            }
        }
        "revoke" => {
            unused("group", group.is_some())?;
            unused("url", url.is_some() || secret_env.is_some())?;
            let reason = reason.as_deref().unwrap_or("key-compromise");
            ActionKind::Revoke {
                reason: reason.parse().map_err(|e| format!("reason: {e}"))?,
            }
        }
        "move_group" => {
            unused("reason", reason.is_some())?;
            unused("url", url.is_some() || secret_env.is_some())?;
            ActionKind::MoveGroup {
                group: group.ok_or("move_group needs `group`")?,
            }
        }
        "webhook" => {
            unused("reason", reason.is_some())?;
            unused("group", group.is_some())?;
            let url = url.ok_or("webhook needs `url`")?;
            check_webhook_url(&url)?;
            ActionKind::Webhook {
                url,
                secret_env: secret_env
                    .ok_or("webhook needs `secret_env`, the variable holding its HMAC secret")?,
            }
        }
        "forward" => {
            unused("reason", reason.is_some())?;
            unused("group", group.is_some())?;
            unused("secret_env", secret_env.is_some())?;
            let url = url.ok_or("forward needs `url` (syslog+tls://HOST:PORT)")?;
            crate::siem::SiemTarget::parse(&url)?;
            let format = match format.as_deref() {
                None => SiemFormat::Cef,
                Some(f) => SiemFormat::parse(f)
                    .ok_or_else(|| format!("format {f:?}: expected cef or ocsf"))?,
            };
            if let Some(path) = &ca_file
                && !std::path::Path::new(path).is_file()
            {
                return Err(format!("ca_file {path:?} is not a file"));
            }
            ActionKind::Forward {
                url,
                format,
                ca_file,
            }
        }
        other => {
            return Err(format!(
                "unknown action {other:?} (expected quarantine, disconnect, revoke, rotate, move_group, webhook or forward)"
            ));
        }
    };
    let expires = expires
        .map(|e| humantime::parse_duration(&e).map_err(|err| format!("expires {e:?}: {err}")))
        .transpose()?;
    if expires.is_some() && !kind.undoable() {
        return Err(format!(
            "{} cannot be undone, so it cannot expire",
            kind.name()
        ));
    }
    Ok(Action {
        // Revoking is final: it waits for a person unless the playbook says otherwise.
        approval: approval.unwrap_or(matches!(kind, ActionKind::Revoke { .. })),
        kind,
        expires,
    })
}

/// Webhooks go over HTTPS; plain HTTP only to this machine (a local relay or a test).
fn check_webhook_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "url {url:?} must be https:// (plain http only to localhost)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_playbook_parses() {
        let books = parse("built-in", DEFAULT_PLAYBOOKS).unwrap();
        assert_eq!(books[0].actions[0].kind, ActionKind::Quarantine);
        assert_eq!(books[0].when.min_severity, Some(Severity::Critical));
    }

    #[test]
    fn a_full_playbook_parses() {
        let books = parse(
            "t.yml",
            r#"
playbooks:
  - name: contain
    mode: dry_run
    when: {min_severity: high, tags: [attack.t1110]}
    actions:
      - action: quarantine
        expires: 2h
      - action: revoke
      - action: disconnect
        approval: true
      - action: move_group
        group: contained
      - action: webhook
        url: https://siem.example/hook
        secret_env: HOOK_SECRET
      - action: forward
        url: syslog+tls://siem.example:6514
        format: ocsf
"#,
        )
        .unwrap();
        let b = &books[0];
        assert_eq!(
            b.actions[5].kind,
            ActionKind::Forward {
                url: "syslog+tls://siem.example:6514".into(),
                format: SiemFormat::Ocsf,
                ca_file: None
            }
        );
        assert!(!b.actions[5].kind.needs_device());
        assert_eq!(
            ActionKind::from_stored("forward", &b.actions[5].kind.params()),
            Some(b.actions[5].kind.clone())
        );
        assert!(b.dry_run);
        assert_eq!(b.when.min_severity, Some(Severity::High));
        assert_eq!(b.actions[0].expires, Some(Duration::from_secs(7200)));
        assert!(!b.actions[0].approval);
        assert!(
            b.actions[1].approval,
            "revoke waits for approval by default"
        );
        assert_eq!(
            b.actions[1].kind,
            ActionKind::Revoke {
                reason: RevocationReason::KeyCompromise
            }
        );
        assert!(b.actions[2].approval);
    }

    #[test]
    fn mistakes_are_named() {
        for (yaml, needle) in [
            ("playbooks: [{name: a, actions: []}]", "has no actions"),
            (
                "playbooks: [{name: a, actions: [{action: nuke}]}]",
                "unknown action \"nuke\"",
            ),
            (
                "playbooks: [{name: a, actions: [{action: disconnect, expires: 1h}]}]",
                "cannot expire",
            ),
            (
                "playbooks: [{name: a, actions: [{action: quarantine, expires: soon}]}]",
                "expires \"soon\"",
            ),
            (
                "playbooks: [{name: a, actions: [{action: quarantine, group: x}]}]",
                "takes no `group`",
            ),
            (
                "playbooks: [{name: a, actions: [{action: revoke, reason: bored}]}]",
                "reason",
            ),
            (
                "playbooks: [{name: a, actions: [{action: webhook, url: 'http://siem.example/', secret_env: S}]}]",
                "must be https",
            ),
            (
                "playbooks: [{name: a, actions: [{action: forward, url: 'syslog+tls://a:1'}, {action: forward, url: 'syslog+tls://b:1'}]}]",
                "two forward actions",
            ),
            (
                "playbooks: [{name: a, actions: [{action: forward, url: 'syslog+tcp://siem.example:514'}]}]",
                "only over TLS",
            ),
            (
                "playbooks: [{name: a, actions: [{action: quarantine, format: cef}]}]",
                "takes no `format`",
            ),
            (
                "playbooks: [{name: a, actions: [{action: webhook, url: 'https://x/'}]}]",
                "secret_env",
            ),
            (
                "playbooks: [{name: a, when: {min_severity: dire}, actions: [{action: rotate}]}]",
                "min_severity",
            ),
            (
                "playbooks: [{name: a, actions: [{action: rotate}]}, {name: a, actions: [{action: rotate}]}]",
                "two playbooks",
            ),
            (
                "playbooks: [{name: a, colour: red, actions: [{action: rotate}]}]",
                "unknown field",
            ),
        ] {
            let err = parse("t.yml", yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}: {err}");
            assert!(err.contains("t.yml"), "{err}");
        }
    }
}
