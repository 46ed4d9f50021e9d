//! The agent's command line, shared by `garrison agent` and the standalone `garrison-agent`
//! binary (which is what goes on devices: it has none of the server in it).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use garrison_contract::encode;
use garrison_core::{DeviceId, now_ms};

use crate::{
    collect::Collector,
    est::Credential,
    runtime::{AgentConfig, UpdateOptions, run},
};

/// Files hashed by default: changes to them are reported as `file_changed` events.
pub const DEFAULT_WATCH: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/ssh/sshd_config",
    "/etc/crontab",
];

/// Options of the agent.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Garrison's HTTPS address, for enrollment (e.g. https://garrison.example:8443).
    #[arg(
        long,
        env = "GARRISON_AGENT_SERVER",
        value_name = "URL",
        required_unless_present = "once"
    )]
    pub server: Option<String>,
    /// The broker as HOST:PORT [default: the server's host, port 8883].
    #[arg(long, env = "GARRISON_AGENT_MQTT", value_name = "HOST:PORT")]
    pub mqtt: Option<String>,
    /// Garrison's root CA certificate (the server's `garrison-data/ca.pem`).
    #[arg(
        long,
        env = "GARRISON_AGENT_CA_CERT",
        value_name = "FILE",
        required_unless_present = "once"
    )]
    pub ca_cert: Option<PathBuf>,
    /// This device's id: its certificate's CN and MQTT client id [default: the host name].
    #[arg(long, env = "GARRISON_AGENT_DEVICE_ID", value_name = "ID")]
    pub device_id: Option<String>,
    /// A bootstrap token for the first enrollment (`garrison enroll token create`). Prefer
    /// GARRISON_AGENT_TOKEN or --token-file: a flag's value is visible to other users in `ps`.
    #[arg(
        long,
        env = "GARRISON_AGENT_TOKEN",
        hide_env_values = true,
        conflicts_with_all = ["claim_cert", "token_file"]
    )]
    pub token: Option<String>,
    /// Read the bootstrap token from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "claim_cert")]
    pub token_file: Option<PathBuf>,
    /// A factory claim certificate to enroll with (PEM), with --claim-key.
    #[arg(long, value_name = "FILE", requires = "claim_key")]
    pub claim_cert: Option<PathBuf>,
    /// The claim certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "claim_cert")]
    pub claim_key: Option<PathBuf>,
    /// Where the device key (0600) and certificate are kept.
    #[arg(
        long,
        env = "GARRISON_AGENT_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/garrison-agent"
    )]
    pub state_dir: PathBuf,
    /// Read facts below this directory instead of / (for images and containers).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// A file to watch for changes (repeatable) [default: /etc/passwd, /etc/shadow,
    /// /etc/ssh/sshd_config, /etc/crontab].
    #[arg(long = "watch", value_name = "PATH")]
    pub watch: Vec<String>,
    /// Telemetry interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub telemetry_interval: Duration,
    /// How often facts are re-read to detect changes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub scan_interval: Duration,
    /// The inventory is sent at least this often, changed or not.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "6h")]
    pub inventory_interval: Duration,
    /// How often the auth log is read for login events.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub events_interval: Duration,
    /// Print the inventory this device would report, as JSON, and exit (no server needed).
    #[arg(long)]
    pub once: bool,
    /// Install updates with this command; the verified artifacts' paths are appended
    /// (`"swupdate -i"`, `"rauc install"`, a script). Without it, offers are refused.
    #[arg(long, value_name = "COMMAND")]
    pub update_installer: Option<String>,
    /// After an install, this command decides whether the new software is healthy (exit 0).
    #[arg(long, value_name = "COMMAND")]
    pub update_health_check: Option<String>,
    /// When the health check fails, this command restores the previous software.
    #[arg(long, value_name = "COMMAND")]
    pub update_rollback: Option<String>,
    /// Each update command is stopped after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
    pub update_timeout: Duration,
    /// The vendor releases for this device name (default: the hardware manufacturer read).
    #[arg(long)]
    pub update_vendor: Option<String>,
    /// The device class releases for this device name (default: the hardware model read).
    #[arg(long)]
    pub update_class: Option<String>,
}

fn words(command: &str) -> Vec<String> {
    command.split_whitespace().map(str::to_owned).collect()
}

fn default_device_id(root: &std::path::Path) -> anyhow::Result<DeviceId> {
    let name = std::fs::read_to_string(root.join("proc/sys/kernel/hostname"))
        .or_else(|_| std::fs::read_to_string(root.join("etc/hostname")))
        .context("no --device-id given and the host name cannot be read")?;
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    DeviceId::new(cleaned).context("the host name is not a usable device id; pass --device-id")
}

/// `host:port` of the server's URL, for the broker default.
fn server_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// Runs the agent with these options until SIGINT/SIGTERM.
pub async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let watch: Vec<String> = if args.watch.is_empty() {
        DEFAULT_WATCH.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.watch.clone()
    };
    let device = match &args.device_id {
        Some(id) => DeviceId::new(id.clone()).context("--device-id")?,
        None => default_device_id(&args.root)?,
    };
    if args.once {
        let mut inventory = Collector::new(&args.root)
            .watch_files(watch)
            .inventory(now_ms());
        inventory.device_id = Some(device.to_string());
        println!("{}", String::from_utf8_lossy(&encode(&inventory)));
        return Ok(());
    }
    let (Some(server), Some(ca_file)) = (&args.server, &args.ca_cert) else {
        bail!("--server and --ca-cert are required");
    };
    if !server.starts_with("https://") {
        bail!("--server must be an https:// URL (Garrison serves EST over TLS only)");
    }
    let ca_pem = std::fs::read(ca_file)
        .with_context(|| format!("cannot read the CA certificate {}", ca_file.display()))?;
    let (mqtt_host, mqtt_port) = match &args.mqtt {
        Some(hp) => {
            let (h, p) = hp.rsplit_once(':').context("--mqtt must be HOST:PORT")?;
            (h.to_owned(), p.parse::<u16>().context("--mqtt port")?)
        }
        None => (
            server_host(server)
                .context("cannot tell the broker's host from --server; pass --mqtt")?,
            8883,
        ),
    };
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let credential = match (&token, &args.claim_cert, &args.claim_key) {
        (Some(t), _, _) => Credential::Token(t.clone()),
        (None, Some(c), Some(k)) => Credential::Claim {
            cert_pem: std::fs::read_to_string(c)
                .with_context(|| format!("cannot read {}", c.display()))?,
            key_pem: std::fs::read_to_string(k)
                .with_context(|| format!("cannot read {}", k.display()))?,
        },
        _ => Credential::None,
    };
    let config = AgentConfig {
        device,
        server: server.clone(),
        mqtt_host,
        mqtt_port,
        ca_pem,
        state_dir: args.state_dir.clone(),
        credential,
        root: args.root.clone(),
        watch,
        telemetry_interval: args.telemetry_interval.max(Duration::from_secs(1)),
        scan_interval: args.scan_interval.max(Duration::from_secs(1)),
        inventory_interval: args.inventory_interval,
        events_interval: args.events_interval.max(Duration::from_millis(100)),
        renew_check_interval: Duration::from_secs(3600),
        installer: args
            .update_installer
            .as_deref()
            .map(|installer| UpdateOptions {
                installer: words(installer),
                health_check: args.update_health_check.as_deref().map(words),
                rollback: args.update_rollback.as_deref().map(words),
                timeout: args.update_timeout,
                vendor: args.update_vendor.clone(),
                class: args.update_class.clone(),
            }),
    };
    run(config, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_host_defaults_to_the_servers() {
        assert_eq!(
            server_host("https://g.example:8443").as_deref(),
            Some("g.example")
        );
        assert_eq!(
            server_host("https://10.0.0.5/").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(server_host("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(server_host("http://x"), None);
    }
}
