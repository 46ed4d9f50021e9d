//! `garrison campaign …` and `garrison window …`: the REST client side of update campaigns
//! and the groups' maintenance windows.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::{
    client::{Remote, RemoteArgs, encode},
    inventory_cli::print_all,
    output,
};

const CAMPAIGN_COLUMNS: &[&str] = &[
    "id",
    "name",
    "release",
    "state",
    "phase",
    "devices",
    "reason",
    "updated_at",
];
const DEVICE_COLUMNS: &[&str] = &[
    "device",
    "phase",
    "stage",
    "attempts",
    "next_attempt_at",
    "updated_at",
    "reason",
];
const HISTORY_COLUMNS: &[&str] = &["at", "stage", "reported", "attempt", "reason"];
const WINDOW_COLUMNS: &[&str] = &["group", "open", "window"];

/// What devices are asked to do.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActionArg {
    /// Install without asking.
    Forced,
    /// Install; devices may defer.
    Soft,
    /// Download and verify only.
    DownloadOnly,
}

impl ActionArg {
    fn as_str(self) -> &'static str {
        match self {
            ActionArg::Forced => "forced",
            ActionArg::Soft => "soft",
            ActionArg::DownloadOnly => "download-only",
        }
    }
}

/// `garrison campaign create`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["group", "query"])))]
pub struct CreateArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The release's id (`garrison release list`).
    #[arg(long)]
    release: String,
    /// A name for people (default: "rollout of RELEASE").
    #[arg(long)]
    name: Option<String>,
    /// Target a group's members.
    #[arg(long)]
    group: Option<String>,
    /// Target the devices a query matches (`model = "cam-x" and tag:site = berlin`).
    #[arg(long)]
    query: Option<String>,
    /// Cumulative phase percentages; a trailing `!` makes a phase wait for approval
    /// (`1,10!,100`).
    #[arg(long, default_value = "1,10,100")]
    phases: String,
    /// Percent of a phase that must succeed before the next starts.
    #[arg(long, default_value_t = 90)]
    success_threshold: u8,
    /// Percent of a phase whose failure aborts the campaign.
    #[arg(long, default_value_t = 10)]
    error_threshold: u8,
    /// Notices per minute at most.
    #[arg(long)]
    rate: Option<u32>,
    /// What devices are asked to do.
    #[arg(long, value_enum, default_value = "forced")]
    action: ActionArg,
    /// Attempts per device.
    #[arg(long, default_value_t = 3)]
    attempts: u32,
    /// Back-off before the first retry (doubles per retry).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
    retry_backoff: std::time::Duration,
    /// A device silent this long fails its attempt.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    device_timeout: std::time::Duration,
    /// Require the release's SBOM to pass the server's policy before starting.
    #[arg(long)]
    sbom_gate: bool,
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Start a campaign: the target is resolved now; devices are put in phases.
    Create(Box<CreateArgs>),
    /// Campaigns, newest first.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// One campaign with its counts per phase and stage.
    Show {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Campaign id.
        id: String,
    },
    /// Start the next phase of a campaign waiting for approval.
    Approve {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Campaign id.
        id: String,
    },
    /// Stop a campaign; devices working on it are told to stop.
    Cancel {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Campaign id.
        id: String,
    },
    /// A campaign's devices, or one device's history in it.
    Devices {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Campaign id.
        id: String,
        /// Only devices at this stage (`failed`, `succeeded`, `pending`, …).
        #[arg(long)]
        stage: Option<String>,
        /// Show this device's history instead.
        #[arg(long)]
        device: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WindowCommand {
    /// Every group's maintenance window, and whether it is open now.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Campaigns notify a group's devices only inside its window.
    Set {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The group.
        group: String,
        /// Opening time, HH:MM.
        #[arg(long)]
        start: String,
        /// How long it stays open.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Weekdays (`sat,sun`); default every day.
        #[arg(long, value_delimiter = ',')]
        days: Vec<String>,
        /// Offset of local time from UTC in minutes (`60` for UTC+1).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        utc_offset: i16,
    },
    /// Remove a group's window.
    Delete {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The group.
        group: String,
    },
}

/// `1,10!,100` → `[{"percent": 1, "approval": "automatic"}, …]`.
fn parse_phases(text: &str) -> anyhow::Result<Vec<Value>> {
    text.split(',')
        .map(|p| {
            let p = p.trim();
            let (number, approval) = match p.strip_suffix('!') {
                Some(n) => (n, "manual"),
                None => (p, "automatic"),
            };
            let percent: u8 = number.parse().map_err(|_| {
                anyhow::anyhow!(
                    "--phases: {p:?} is not a percentage; write cumulative percentages like 1,10!,100"
                )
            })?;
            Ok(json!({"percent": percent, "approval": approval}))
        })
        .collect()
}

pub async fn campaign(command: CampaignCommand) -> anyhow::Result<ExitCode> {
    match command {
        CampaignCommand::Create(args) => {
            let r = Remote::from_args(&args.remote)?;
            let target = match (&args.group, &args.query) {
                (Some(g), _) => json!({"group": g}),
                (None, Some(q)) => json!({"query": q}),
                (None, None) => anyhow::bail!("give --group or --query"),
            };
            let body = json!({
                "name": args.name.clone().unwrap_or_else(|| format!("rollout of {}", args.release)),
                "release": args.release,
                "target": target,
                "phases": parse_phases(&args.phases)?,
                "success_threshold": args.success_threshold,
                "error_threshold": args.error_threshold,
                "rate_per_minute": args.rate,
                "action": args.action.as_str(),
                "max_attempts": args.attempts,
                "retry_backoff_ms": u64::try_from(args.retry_backoff.as_millis()).unwrap_or(u64::MAX),
                "device_timeout_ms": u64::try_from(args.device_timeout.as_millis()).unwrap_or(u64::MAX),
                "sbom_gate": args.sbom_gate,
            });
            let created = r.post("/api/v1/updates/campaigns", body).await?;
            output::print_object(r.output, &created);
        }
        CampaignCommand::List { remote } => {
            return print_all(remote, "/api/v1/updates/campaigns", CAMPAIGN_COLUMNS).await;
        }
        CampaignCommand::Show { remote, id } => {
            let r = Remote::from_args(&remote)?;
            let c = r
                .get(&format!("/api/v1/updates/campaigns/{}", encode(&id)))
                .await?;
            output::print_object(r.output, &c);
        }
        CampaignCommand::Approve { remote, id } => decide(remote, &id, "approve").await?,
        CampaignCommand::Cancel { remote, id } => decide(remote, &id, "cancel").await?,
        CampaignCommand::Devices {
            remote,
            id,
            stage,
            device,
        } => {
            if let Some(device) = device {
                let r = Remote::from_args(&remote)?;
                let history = r
                    .get(&format!(
                        "/api/v1/updates/campaigns/{}/devices/{}",
                        encode(&id),
                        encode(&device)
                    ))
                    .await?;
                let items = history.as_array().cloned().unwrap_or_default();
                output::print_list(r.output, &items, HISTORY_COLUMNS);
            } else {
                let mut path = format!("/api/v1/updates/campaigns/{}/devices", encode(&id));
                if let Some(s) = stage {
                    path.push_str(&format!("?stage={}", encode(&s)));
                }
                return print_all(remote, &path, DEVICE_COLUMNS).await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `POST /api/v1/updates/campaigns/{id}/{verb}` and prints the campaign as it is after.
async fn decide(remote: RemoteArgs, id: &str, verb: &str) -> anyhow::Result<()> {
    let r = Remote::from_args(&remote)?;
    let c = r
        .post(
            &format!("/api/v1/updates/campaigns/{}/{verb}", encode(id)),
            json!({}),
        )
        .await?;
    output::print_object(r.output, &c);
    Ok(())
}

pub async fn window(command: WindowCommand) -> anyhow::Result<ExitCode> {
    match command {
        WindowCommand::List { remote } => {
            let r = Remote::from_args(&remote)?;
            let list = r.get("/api/v1/updates/windows").await?;
            let items = list.as_array().cloned().unwrap_or_default();
            output::print_list(r.output, &items, WINDOW_COLUMNS);
        }
        WindowCommand::Set {
            remote,
            group,
            start,
            duration,
            days,
            utc_offset,
        } => {
            let r = Remote::from_args(&remote)?;
            r.put(
                &format!("/api/v1/updates/windows/{}", encode(&group)),
                json!({
                    "days": days,
                    "start": start,
                    "duration_minutes": duration.as_secs() / 60,
                    "utc_offset_minutes": utc_offset,
                }),
            )
            .await?;
            println!("Maintenance window of {group} set");
        }
        WindowCommand::Delete { remote, group } => {
            let r = Remote::from_args(&remote)?;
            r.delete(&format!("/api/v1/updates/windows/{}", encode(&group)))
                .await?;
            println!("Maintenance window of {group} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
