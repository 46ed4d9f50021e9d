//! The inventory and posture commands over the REST API: device search and export, facts,
//! history, tags, events, drift, unmanaged devices, groups, findings, audit runs and firmware
//! policies.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::{
    cli::{
        ExportArg, FindingCommand, FirmwareCommand, GroupCommand, GroupSpecArgs, PostureCommand,
    },
    client::{Remote, RemoteArgs, encode},
    output::{self, Format},
};

const DEVICE_COLUMNS: &[&str] = &[
    "id",
    "model",
    "firmware",
    "class",
    "online",
    "risk",
    "open_findings",
    "worst_severity",
    "groups",
];
const FINDING_COLUMNS: &[&str] = &["id", "check", "severity", "device", "status", "first_seen"];

pub(crate) async fn print_all(
    args: RemoteArgs,
    path: &str,
    columns: &[&str],
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let items = remote.get_all(path).await?;
    output::print_list(remote.output, &items, columns);
    Ok(ExitCode::SUCCESS)
}

async fn print_page(args: RemoteArgs, path: &str, columns: &[&str]) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let page = remote.get(path).await?;
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    output::print_list(remote.output, &items, columns);
    Ok(ExitCode::SUCCESS)
}

async fn print_export(args: RemoteArgs, path: &str) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let text = remote.send_text(reqwest::Method::GET, path, None).await?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `device list`.
pub async fn device_list(
    args: RemoteArgs,
    query: Option<String>,
    export: Option<ExportArg>,
) -> anyhow::Result<ExitCode> {
    let q = query.map(|q| format!("q={}", encode(&q)));
    match export {
        Some(format) => {
            let mut path = format!("/api/v1/export/devices?format={}", format.as_str());
            if let Some(q) = q {
                path.push('&');
                path.push_str(&q);
            }
            print_export(args, &path).await
        }
        None => {
            let path = match q {
                Some(q) => format!("/api/v1/devices?{q}"),
                None => "/api/v1/devices".into(),
            };
            print_all(args, &path, DEVICE_COLUMNS).await
        }
    }
}

/// `device fields`.
pub async fn device_fields(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let fields = remote.get("/api/v1/inventory/fields").await?;
    let items = fields.as_array().cloned().unwrap_or_default();
    output::print_list(remote.output, &items, &["name", "kind", "keyed", "doc"]);
    if matches!(remote.output, Format::Table) {
        println!(
            "\nOperators: = != < <= > >= ~ (glob), in (…), not in (…), has FIELD; and, or, not, ( )."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `device show`, table form: the device, its risk explained, its findings.
pub fn print_device_detail(device: &Value) {
    let mut plain = device.clone();
    let risk = plain.as_object_mut().and_then(|m| m.remove("risk_detail"));
    let findings = plain.as_object_mut().and_then(|m| m.remove("findings"));
    let telemetry = plain.as_object_mut().and_then(|m| m.remove("telemetry"));
    output::print_object(Format::Table, &plain);
    if let Some(risk) = risk {
        println!(
            "\nRisk {} ({}):",
            risk.get("score").unwrap_or(&Value::Null),
            risk.get("level").and_then(Value::as_str).unwrap_or("-")
        );
        for f in risk
            .get("factors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!(
                "  {:>4}  {:<9} {}",
                f.get("points").unwrap_or(&Value::Null),
                f.get("kind").and_then(Value::as_str).unwrap_or(""),
                f.get("detail").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    if let Some(findings) = findings.as_ref().and_then(Value::as_array)
        && !findings.is_empty()
    {
        println!("\nOpen findings:");
        for f in findings {
            println!(
                "  {:<9} {}",
                f.get("severity").and_then(Value::as_str).unwrap_or(""),
                f.get("check").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    if let Some(t) = telemetry.filter(|t| !t.is_null()) {
        println!("\nLatest telemetry: {t}");
    }
}

/// `device inventory` and `device sbom`: the JSON as the server returns it.
pub async fn device_json(args: RemoteArgs, id: &str, what: &str) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let value = remote
        .get(&format!("/api/v1/devices/{}/{what}", encode(id)))
        .await?;
    output::print_object(Format::Json, &value);
    Ok(ExitCode::SUCCESS)
}

/// `device history`.
pub async fn device_history(
    args: RemoteArgs,
    id: &str,
    fact: Option<String>,
    limit: u32,
) -> anyhow::Result<ExitCode> {
    let mut path = format!(
        "/api/v1/devices/{}/history?limit={}",
        encode(id),
        limit.clamp(1, 500)
    );
    if let Some(f) = fact {
        path.push_str(&format!("&fact={}", encode(&f)));
    }
    print_page(args, &path, &["at", "fact", "before", "after"]).await
}

/// `device tag`.
pub async fn device_tag(
    args: RemoteArgs,
    id: &str,
    set: Vec<(String, String)>,
    remove: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let set: serde_json::Map<String, Value> = set.into_iter().map(|(k, v)| (k, json!(v))).collect();
    let tags = remote
        .patch(
            &format!("/api/v1/devices/{}/tags", encode(id)),
            json!({ "set": set, "remove": remove }),
        )
        .await?;
    output::print_object(remote.output, &tags);
    Ok(ExitCode::SUCCESS)
}

/// `device events` and `device drift`.
pub async fn device_feed(
    args: RemoteArgs,
    what: &str,
    device: Option<String>,
    limit: u32,
) -> anyhow::Result<ExitCode> {
    let mut path = format!("/api/v1/{what}?limit={}", limit.clamp(1, 500));
    if let Some(d) = device {
        path.push_str(&format!("&device={}", encode(&d)));
    }
    let columns: &[&str] = if what == "drift" {
        &["at", "device", "severity", "kind", "detail"]
    } else {
        &["received_at", "device", "kind", "event"]
    };
    print_page(args, &path, columns).await
}

/// `device unmanaged`.
pub async fn device_unmanaged(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    print_all(
        args,
        "/api/v1/unmanaged",
        &[
            "kind",
            "identity",
            "address",
            "count",
            "last_seen",
            "detail",
        ],
    )
    .await
}

fn group_body(name: Option<&str>, spec: GroupSpecArgs) -> Value {
    let mut body = json!({
        "description": spec.description,
        "query": spec.query,
        "impact": spec.impact.map(|i| i.as_str()),
        "allowed_services": (!spec.allow.is_empty()).then_some(spec.allow),
    });
    if let (Some(n), Some(map)) = (name, body.as_object_mut()) {
        map.insert("name".into(), json!(n));
    }
    body
}

/// `group …`
pub async fn group(command: GroupCommand) -> anyhow::Result<ExitCode> {
    const COLUMNS: &[&str] = &[
        "name",
        "kind",
        "members",
        "impact",
        "query",
        "allowed_services",
    ];
    match command {
        GroupCommand::List { remote } => {
            let r = Remote::from_args(&remote)?;
            let groups = r.get("/api/v1/groups").await?;
            output::print_list(
                r.output,
                groups.as_array().map(Vec::as_slice).unwrap_or(&[]),
                COLUMNS,
            );
        }
        GroupCommand::Show { remote, name } => {
            let r = Remote::from_args(&remote)?;
            let group = r.get(&format!("/api/v1/groups/{}", encode(&name))).await?;
            let members = r
                .get_all(&format!("/api/v1/groups/{}/devices", encode(&name)))
                .await?;
            match r.output {
                Format::Json => {
                    let mut shown = group;
                    if let Some(m) = shown.as_object_mut() {
                        m.insert("devices".into(), Value::Array(members));
                    }
                    output::print_object(Format::Json, &shown);
                }
                Format::Table => {
                    output::print_object(Format::Table, &group);
                    println!();
                    output::print_list(Format::Table, &members, DEVICE_COLUMNS);
                }
            }
        }
        GroupCommand::Create { remote, name, spec } => {
            let r = Remote::from_args(&remote)?;
            let group = r
                .post("/api/v1/groups", group_body(Some(&name), spec))
                .await?;
            output::print_object(r.output, &group);
        }
        GroupCommand::Update { remote, name, spec } => {
            let r = Remote::from_args(&remote)?;
            let group = r
                .put(
                    &format!("/api/v1/groups/{}", encode(&name)),
                    group_body(None, spec),
                )
                .await?;
            output::print_object(r.output, &group);
        }
        GroupCommand::Delete { remote, name } => {
            let r = Remote::from_args(&remote)?;
            r.delete(&format!("/api/v1/groups/{}", encode(&name)))
                .await?;
            println!("Deleted group {name}.");
        }
        GroupCommand::Add {
            remote,
            name,
            devices,
        } => {
            let r = Remote::from_args(&remote)?;
            let changed = r
                .post(
                    &format!("/api/v1/groups/{}/members", encode(&name)),
                    json!({ "add": devices }),
                )
                .await?;
            output::print_object(r.output, &changed);
        }
        GroupCommand::Remove {
            remote,
            name,
            devices,
        } => {
            let r = Remote::from_args(&remote)?;
            let changed = r
                .post(
                    &format!("/api/v1/groups/{}/members", encode(&name)),
                    json!({ "remove": devices }),
                )
                .await?;
            output::print_object(r.output, &changed);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `finding …`
pub async fn finding(command: FindingCommand) -> anyhow::Result<ExitCode> {
    match command {
        FindingCommand::List {
            remote,
            status,
            check,
            device,
            severity,
            export,
        } => {
            let mut query = vec![format!("status={}", status.as_str())];
            if let Some(c) = check {
                query.push(format!("check={}", encode(&c)));
            }
            if let Some(d) = device {
                query.push(format!("device={}", encode(&d)));
            }
            if let Some(s) = severity {
                query.push(format!("severity={}", encode(&s)));
            }
            match export {
                Some(format) => {
                    query.push(format!("format={}", format.as_str()));
                    print_export(
                        remote,
                        &format!("/api/v1/export/findings?{}", query.join("&")),
                    )
                    .await
                }
                None => {
                    print_all(
                        remote,
                        &format!("/api/v1/findings?{}", query.join("&")),
                        FINDING_COLUMNS,
                    )
                    .await
                }
            }
        }
        FindingCommand::Show { remote, id } => {
            let r = Remote::from_args(&remote)?;
            let f = r.get(&format!("/api/v1/findings/{}", encode(&id))).await?;
            output::print_object(r.output, &f);
            Ok(ExitCode::SUCCESS)
        }
        FindingCommand::Suppress {
            remote,
            id,
            reason,
            for_duration,
        } => {
            let r = Remote::from_args(&remote)?;
            let f = r
                .post(
                    &format!("/api/v1/findings/{}/suppress", encode(&id)),
                    json!({ "reason": reason, "for_duration": for_duration }),
                )
                .await?;
            output::print_object(r.output, &f);
            Ok(ExitCode::SUCCESS)
        }
        FindingCommand::Unsuppress { remote, id } => {
            let r = Remote::from_args(&remote)?;
            let f = r
                .post(
                    &format!("/api/v1/findings/{}/unsuppress", encode(&id)),
                    json!({}),
                )
                .await?;
            output::print_object(r.output, &f);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `posture …`
pub async fn posture(command: PostureCommand) -> anyhow::Result<ExitCode> {
    const RUN_COLUMNS: &[&str] = &[
        "started_at",
        "trigger",
        "devices",
        "opened",
        "resolved",
        "open",
        "duration_ms",
    ];
    match command {
        PostureCommand::Run { remote } => {
            let r = Remote::from_args(&remote)?;
            let run = r.post("/api/v1/posture/runs", json!({})).await?;
            output::print_object(r.output, &run);
        }
        PostureCommand::Runs { remote } => {
            return print_all(remote, "/api/v1/posture/runs", RUN_COLUMNS).await;
        }
        PostureCommand::Checks { remote } => {
            let r = Remote::from_args(&remote)?;
            let checks = r.get("/api/v1/posture/checks").await?;
            output::print_list(
                r.output,
                checks.as_array().map(Vec::as_slice).unwrap_or(&[]),
                &["id", "severity", "scope", "etsi", "owasp", "title"],
            );
        }
        PostureCommand::Firmware(FirmwareCommand::List { remote }) => {
            let r = Remote::from_args(&remote)?;
            let list = r.get("/api/v1/posture/firmware-policies").await?;
            output::print_list(
                r.output,
                list.as_array().map(Vec::as_slice).unwrap_or(&[]),
                &["model", "minimum_version", "updated_by", "updated_at"],
            );
        }
        PostureCommand::Firmware(FirmwareCommand::Set {
            remote,
            model,
            version,
        }) => {
            let r = Remote::from_args(&remote)?;
            let p = r
                .put(
                    &format!("/api/v1/posture/firmware-policies/{}", encode(&model)),
                    json!({ "minimum_version": version }),
                )
                .await?;
            output::print_object(r.output, &p);
        }
        PostureCommand::Firmware(FirmwareCommand::Delete { remote, model }) => {
            let r = Remote::from_args(&remote)?;
            r.delete(&format!(
                "/api/v1/posture/firmware-policies/{}",
                encode(&model)
            ))
            .await
            .context("removing the policy")?;
            println!("Removed the firmware policy for {model}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
