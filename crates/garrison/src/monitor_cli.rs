//! `garrison alert …`, `garrison response …`, `garrison playbook list` and `garrison intel …`:
//! the REST client side of monitoring and response.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use crate::{
    client::{Remote, RemoteArgs, encode},
    inventory_cli::print_all,
    output,
};

const ALERT_COLUMNS: &[&str] = &[
    "id",
    "severity",
    "title",
    "device",
    "status",
    "occurrences",
    "techniques",
    "last_seen",
];
const INCIDENT_COLUMNS: &[&str] = &[
    "severity",
    "device",
    "rule",
    "alerts",
    "occurrences",
    "techniques",
    "titles",
    "last_seen",
];
const RESPONSE_COLUMNS: &[&str] = &[
    "id",
    "action",
    "device",
    "status",
    "playbook",
    "detail",
    "created_at",
];
const PLAYBOOK_COLUMNS: &[&str] = &[
    "name",
    "dry_run",
    "min_severity",
    "rules",
    "tags",
    "description",
];

/// Alert statuses.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlertStatusArg {
    New,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl AlertStatusArg {
    fn as_str(self) -> &'static str {
        match self {
            AlertStatusArg::New => "new",
            AlertStatusArg::Acknowledged => "acknowledged",
            AlertStatusArg::Resolved => "resolved",
            AlertStatusArg::FalsePositive => "false_positive",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Open alerts grouped into incidents, one per device, the worst first.
    Incidents {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only incidents with an alert at least this severe.
        #[arg(long)]
        severity: Option<String>,
    },
    /// List alerts, newest first (open ones unless --all or --status).
    List {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Include resolved and false-positive alerts.
        #[arg(long, conflicts_with = "status")]
        all: bool,
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<AlertStatusArg>,
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// This severity or worse: info, low, medium, high, critical.
        #[arg(long)]
        severity: Option<String>,
    },
    /// Show an alert with its evidence, notes and the response actions it caused.
    Show {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Alert id.
        id: String,
    },
    /// Mark an alert acknowledged (someone is on it).
    Ack(AlertChange),
    /// Mark an alert resolved.
    Resolve(AlertChange),
    /// Mark an alert a false positive.
    FalsePositive(AlertChange),
    /// Reopen a closed alert.
    Reopen(AlertChange),
    /// Add a note without changing the status.
    Note {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Alert id.
        id: String,
        /// The note.
        note: String,
    },
}

/// An alert and an optional note.
#[derive(Debug, clap::Args)]
pub struct AlertChange {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Alert id.
    id: String,
    /// A note for the record.
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Debug, Subcommand)]
pub enum ResponseCommand {
    /// List response actions, newest first.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only this status (pending_approval, executed, dry_run, failed, …).
        #[arg(long)]
        status: Option<String>,
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// Only this alert's.
        #[arg(long)]
        alert: Option<String>,
    },
    /// Approve a pending action; it is carried out at once.
    Approve {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Response action id.
        id: String,
    },
    /// Reject a pending action.
    Reject {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Response action id.
        id: String,
    },
    /// Undo an executed action (lift its quarantine, remove the group membership).
    Undo {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Response action id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Import a threat-intelligence file as a named source (replacing an earlier import of
    /// that name): a list (one address, network, domain or SHA-256 per line), CSV
    /// (`indicator,type,confidence,expires`), a STIX 2.1 bundle or MISP feed JSON. It is in
    /// force at once and hunted for in the device events already stored.
    Import {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The file.
        file: std::path::PathBuf,
        /// Source name (default: the file's name without its extension).
        #[arg(long)]
        name: Option<String>,
        /// How to read it (default: from the extension; .json is STIX or MISP).
        #[arg(long, value_parser = ["list", "csv", "json"])]
        format: Option<String>,
    },
    /// The imported sources.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Remove an imported source.
    Delete {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Source name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// The playbooks in force on the server.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// `alert …`
pub async fn alert(command: AlertCommand) -> anyhow::Result<ExitCode> {
    let (change, status) = match command {
        AlertCommand::Incidents { remote, severity } => {
            let r = Remote::from_args(&remote)?;
            let path = match severity {
                Some(s) => format!("/api/v1/incidents?severity={}", encode(&s)),
                None => "/api/v1/incidents".to_owned(),
            };
            let list = r.get(&path).await?;
            let items = list.as_array().cloned().unwrap_or_default();
            output::print_list(r.output, &items, INCIDENT_COLUMNS);
            return Ok(ExitCode::SUCCESS);
        }
        AlertCommand::List {
            remote,
            all,
            status,
            device,
            severity,
        } => {
            let mut query = Vec::new();
            match status {
                Some(s) => query.push(format!("status={}", s.as_str())),
                None if !all => query.push("open=true".to_owned()),
                None => {}
            }
            if let Some(d) = device {
                query.push(format!("device={}", encode(&d)));
            }
            if let Some(s) = severity {
                query.push(format!("severity={}", encode(&s)));
            }
            return print_all(
                remote,
                &format!("/api/v1/alerts?{}", query.join("&")),
                ALERT_COLUMNS,
            )
            .await;
        }
        AlertCommand::Show { remote, id } => {
            let r = Remote::from_args(&remote)?;
            let a = r.get(&format!("/api/v1/alerts/{}", encode(&id))).await?;
            output::print_object(r.output, &a);
            return Ok(ExitCode::SUCCESS);
        }
        AlertCommand::Note { remote, id, note } => (AlertChange { remote, id, note }, None),
        AlertCommand::Ack(c) => (c, Some(AlertStatusArg::Acknowledged)),
        AlertCommand::Resolve(c) => (c, Some(AlertStatusArg::Resolved)),
        AlertCommand::FalsePositive(c) => (c, Some(AlertStatusArg::FalsePositive)),
        AlertCommand::Reopen(c) => (c, Some(AlertStatusArg::New)),
    };
    let r = Remote::from_args(&change.remote)?;
    let a = r
        .post(
            &format!("/api/v1/alerts/{}", encode(&change.id)),
            json!({"status": status.map(AlertStatusArg::as_str), "note": change.note}),
        )
        .await?;
    output::print_object(r.output, &a);
    Ok(ExitCode::SUCCESS)
}

/// `response …`
pub async fn response(command: ResponseCommand) -> anyhow::Result<ExitCode> {
    let (remote, id, verb) = match command {
        ResponseCommand::List {
            remote,
            status,
            device,
            alert,
        } => {
            let mut query = Vec::new();
            for (key, value) in [("status", status), ("device", device), ("alert", alert)] {
                if let Some(v) = value {
                    query.push(format!("{key}={}", encode(&v)));
                }
            }
            return print_all(
                remote,
                &format!("/api/v1/responses?{}", query.join("&")),
                RESPONSE_COLUMNS,
            )
            .await;
        }
        ResponseCommand::Approve { remote, id } => (remote, id, "approve"),
        ResponseCommand::Reject { remote, id } => (remote, id, "reject"),
        ResponseCommand::Undo { remote, id } => (remote, id, "undo"),
    };
    let r = Remote::from_args(&remote)?;
    let done = r
        .post(
            &format!("/api/v1/responses/{}/{verb}", encode(&id)),
            json!({}),
        )
        .await?;
    output::print_object(r.output, &done);
    Ok(ExitCode::SUCCESS)
}

/// `playbook …`
pub async fn playbook(command: PlaybookCommand) -> anyhow::Result<ExitCode> {
    match command {
        PlaybookCommand::List { remote } => {
            let r = Remote::from_args(&remote)?;
            let list = r.get("/api/v1/playbooks").await?;
            let items = list.as_array().cloned().unwrap_or_default();
            output::print_list(r.output, &items, PLAYBOOK_COLUMNS);
            Ok(ExitCode::SUCCESS)
        }
    }
}

const INTEL_COLUMNS: &[&str] = &[
    "name",
    "format",
    "indicators",
    "skipped",
    "imported_at",
    "imported_by",
];

/// `intel …`
pub async fn intel(command: IntelCommand) -> anyhow::Result<ExitCode> {
    match command {
        IntelCommand::Import {
            remote,
            file,
            name,
            format,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .with_context(|| format!("{} has no file name: pass --name", file.display()))?,
            };
            let extension = file
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let format = format.unwrap_or_else(|| match extension.as_str() {
                "json" => "json".into(),
                "csv" => "csv".into(),
                _ => "list".into(),
            });
            let r = Remote::from_args(&remote)?;
            let imported = r
                .send_raw(
                    reqwest::Method::PUT,
                    &format!("/api/v1/intel/sources/{}?format={format}", encode(&name)),
                    "application/octet-stream",
                    bytes,
                )
                .await?;
            if matches!(r.output, output::Format::Json) {
                output::print_object(r.output, &imported);
            } else {
                let skipped = imported["skipped_count"].as_u64().unwrap_or(0);
                println!(
                    "{} {}: {} indicators in force ({}), {skipped} entries skipped; a retro-hunt over stored events is running",
                    if imported["replaced"] == true {
                        "replaced"
                    } else {
                        "imported"
                    },
                    imported["name"].as_str().unwrap_or(&name),
                    imported["indicators"],
                    imported["format"].as_str().unwrap_or("?"),
                );
                for s in imported["skipped"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(10)
                {
                    println!(
                        "  skipped {}: {}",
                        s["entry"].as_str().unwrap_or("?"),
                        s["reason"].as_str().unwrap_or("?")
                    );
                }
                if skipped > 10 {
                    println!(
                        "  … and {} more (-o json lists the first 100)",
                        skipped - 10
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        IntelCommand::List { remote } => {
            let r = Remote::from_args(&remote)?;
            let list = r.get("/api/v1/intel/sources").await?;
            let items = list.as_array().cloned().unwrap_or_default();
            output::print_list(r.output, &items, INTEL_COLUMNS);
            Ok(ExitCode::SUCCESS)
        }
        IntelCommand::Delete { remote, name } => {
            let r = Remote::from_args(&remote)?;
            r.delete(&format!("/api/v1/intel/sources/{}", encode(&name)))
                .await?;
            println!("removed {name}; its indicators no longer match");
            Ok(ExitCode::SUCCESS)
        }
    }
}
