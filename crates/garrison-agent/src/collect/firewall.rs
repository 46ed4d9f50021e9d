//! Whether a packet filter guards the device's inbound traffic, read from the rule set the
//! kernel holds: `nft -j list ruleset` (nftables, and iptables on its nf_tables backend), then
//! `iptables-save` and `ip6tables-save` (the legacy tables nft cannot show).
//!
//! The rule set is only reachable over netlink, so these tools are the way to read it, and
//! they need root: under any other user, or without the tools, the state is unknown. A
//! configuration file such as `/etc/nftables.conf` is never read — it says what would be
//! loaded, not what is.
//!
//! "Filters" means some packet addressed to the device can be dropped or rejected: a base
//! chain on the input hook with policy drop, or a drop or reject verdict in a rule reachable
//! from one (following `jump` and `goto`). Rules elsewhere — Docker's isolation chains on
//! FORWARD, NAT — do not protect the device and do not count.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use serde_json::Value;

use super::{root::Root, tools};

/// How long one tool may run.
const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn collect(root: &Root) -> Option<bool> {
    let nft = tools::output(root, "nft", &["-j", "list", "ruleset"], TIMEOUT)
        .and_then(|out| nft_filters_input(&out));
    // `iptables-save` is whichever backend the system chose; where both are installed the
    // legacy tables are only visible to the `-legacy` tools.
    let mut answers = vec![nft];
    for tool in [
        "iptables-save",
        "ip6tables-save",
        "iptables-legacy-save",
        "ip6tables-legacy-save",
    ] {
        answers.push(
            tools::output(root, tool, &[], TIMEOUT)
                .map(|out| iptables_filters_input(&String::from_utf8_lossy(&out))),
        );
    }
    if answers.contains(&Some(true)) {
        Some(true)
    } else if answers.contains(&Some(false)) {
        Some(false)
    } else {
        None
    }
}

/// `nft -j list ruleset` output: whether it filters inbound traffic (`None` if it is not
/// that output).
pub(crate) fn nft_filters_input(json: &[u8]) -> Option<bool> {
    let doc: Value = serde_json::from_slice(json).ok()?;
    let items = doc.get("nftables")?.as_array()?;
    let mut rules: HashMap<(&str, &str, &str), Vec<&Value>> = HashMap::new();
    let mut input_chains = Vec::new();
    for item in items {
        if let Some(chain) = item.get("chain") {
            if text(chain, "hook") == "input" {
                if text(chain, "policy") == "drop" {
                    return Some(true);
                }
                input_chains.push((
                    text(chain, "family"),
                    text(chain, "table"),
                    text(chain, "name"),
                ));
            }
        } else if let Some(rule) = item.get("rule") {
            let key = (
                text(rule, "family"),
                text(rule, "table"),
                text(rule, "chain"),
            );
            if let Some(expr) = rule.get("expr") {
                rules.entry(key).or_default().push(expr);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut pending = input_chains;
    while let Some(chain) = pending.pop() {
        if !seen.insert(chain) {
            continue;
        }
        for expr in rules.get(&chain).into_iter().flatten() {
            let mut targets = Vec::new();
            if drops(expr, &mut targets) {
                return Some(true);
            }
            pending.extend(targets.into_iter().map(|t| (chain.0, chain.1, t)));
        }
    }
    Some(false)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Whether an nft rule expression holds a drop or reject verdict (including iptables'
/// `xt` targets and verdict maps); collects the chains it jumps or goes to.
fn drops<'a>(v: &'a Value, targets: &mut Vec<&'a str>) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(key, value)| match key.as_str() {
            "drop" | "reject" => true,
            "jump" | "goto" => {
                if let Some(t) = value.get("target").and_then(Value::as_str) {
                    targets.push(t);
                }
                false
            }
            "xt" => {
                value.get("type").and_then(Value::as_str) == Some("target")
                    && matches!(
                        value.get("name").and_then(Value::as_str),
                        Some("DROP" | "REJECT")
                    )
            }
            _ => drops(value, targets),
        }),
        Value::Array(items) => items.iter().any(|i| drops(i, targets)),
        _ => false,
    }
}

/// `iptables-save` output: whether its filter table drops or rejects anything reaching
/// INPUT.
pub(crate) fn iptables_filters_input(text: &str) -> bool {
    let mut table = "";
    let mut policies: HashMap<&str, &str> = HashMap::new();
    let mut targets: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if table != "filter" {
            continue;
        } else if let Some(rest) = line.strip_prefix(':') {
            let mut f = rest.split_whitespace();
            if let (Some(chain), Some(policy)) = (f.next(), f.next()) {
                policies.insert(chain, policy);
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let mut words = rest.split_whitespace();
            let Some(chain) = words.next() else { continue };
            let mut words = words.peekable();
            while let Some(w) = words.next() {
                if (w == "-j" || w == "-g" || w == "--jump" || w == "--goto")
                    && let Some(target) = words.peek()
                {
                    targets.entry(chain).or_default().push(target);
                }
            }
        }
    }
    let mut seen = HashSet::new();
    let mut pending = vec!["INPUT"];
    while let Some(chain) = pending.pop() {
        if !seen.insert(chain) {
            continue;
        }
        if policies.get(chain) == Some(&"DROP") {
            return true;
        }
        for target in targets.get(chain).into_iter().flatten() {
            match *target {
                "DROP" | "REJECT" => return true,
                other => pending.push(other),
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/firewall/", $name))
        };
    }

    #[test]
    fn nft_rule_sets_from_the_real_tool() {
        for (name, json, filters) in [
            ("policy drop", fixture!("nft-policy-drop.json"), true),
            (
                "goto a rejecting chain",
                fixture!("nft-goto-reject.json"),
                true,
            ),
            (
                "iptables-nft policy DROP",
                fixture!("nft-ufw-like.json"),
                true,
            ),
            ("accept everything", fixture!("nft-accept-all.json"), false),
            (
                "Docker's FORWARD drops only",
                fixture!("nft-docker-only.json"),
                false,
            ),
        ] {
            assert_eq!(nft_filters_input(json.as_bytes()), Some(filters), "{name}");
        }
        let empty =
            r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}"#;
        assert_eq!(nft_filters_input(empty.as_bytes()), Some(false));
        assert_eq!(nft_filters_input(b"Error: Operation not permitted"), None);
        assert_eq!(nft_filters_input(br#"{"other": []}"#), None);
    }

    #[test]
    fn iptables_save_output_from_the_real_tool() {
        assert!(iptables_filters_input(fixture!("iptables-ufw-like.txt")));
        assert!(iptables_filters_input(fixture!(
            "iptables-legacy-reject.txt"
        )));
        assert!(!iptables_filters_input(fixture!(
            "iptables-docker-only.txt"
        )));
        assert!(!iptables_filters_input(""));
        // A loop between user chains ends.
        let looped = "*filter\n:INPUT ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -j a\nCOMMIT\n";
        assert!(!iptables_filters_input(looped));
        // A DROP in another table is not a filter.
        let nat = "*nat\n:PREROUTING DROP [0:0]\n-A INPUT -j DROP\nCOMMIT\n";
        assert!(!iptables_filters_input(nat));
    }

    #[test]
    fn a_fixture_tree_never_runs_the_hosts_tools() {
        let root = Root::new(std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian-gateway"
        )));
        assert_eq!(collect(&root), None);
    }
}
