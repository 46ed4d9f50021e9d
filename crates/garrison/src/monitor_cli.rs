//! `garrison alert …`, `garrison response …` and `garrison playbook list`: the REST client
//! side of monitoring and response.

use std::process::ExitCode;

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
