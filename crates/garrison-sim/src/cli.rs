//! `garrison sim`'s command line.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use garrison_agent::est::{Credential, EstClient};

use crate::{Endpoint, Fleet, Scenario, SimConfig, default_state_dir, expected_findings};

/// Options of `garrison sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Garrison's HTTPS address, for enrollment.
    #[arg(
        long,
        env = "GARRISON_SIM_SERVER",
        value_name = "URL",
        default_value = "https://127.0.0.1:8443"
    )]
    pub server: String,
    /// The broker as HOST:PORT.
    #[arg(
        long,
        env = "GARRISON_SIM_MQTT",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8883"
    )]
    pub mqtt: String,
    /// Garrison's root CA certificate (the server's `garrison-data/ca.pem`).
    #[arg(
        long,
        env = "GARRISON_SIM_CA_CERT",
        value_name = "FILE",
        default_value = "garrison-data/ca.pem"
    )]
    pub ca_cert: PathBuf,
    /// A bootstrap token that admits the fleet's ids (`garrison enroll token create 'sim-*'
    /// --uses N`). Without one, devices wait in the approval queue.
    #[arg(long, env = "GARRISON_SIM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A bootstrap token that shortens the certificates it enrolls (`garrison enroll token
    /// create 'sim-*' --uses N --certificate-validity 7d`): weak devices planned with an
    /// expiring certificate enroll with it. Without one the fleet plans no such device.
    #[arg(long, env = "GARRISON_SIM_EXPIRING_TOKEN", hide_env_values = true)]
    pub expiring_token: Option<String>,
    /// Number of devices.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub devices: usize,
    /// Device id prefix (ids are PREFIX-cam-0003 and so on).
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Share of devices with a weak posture (default password, telnet, old firmware, …).
    #[arg(long, default_value_t = 0.2)]
    pub weak_share: f64,
    /// Telemetry interval per device.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub telemetry_interval: Duration,
    /// Where device keys and certificates are kept, so a second run reuses them.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// A scenario: KIND:DEVICE[,DEVICE…][@DELAY], e.g. mirai:sim-cam-0003@60s (repeatable).
    /// Kinds: mirai, c2-beacon, port-scan, firmware-tamper, credential-stuffing,
    /// reconnect-storm.
    #[arg(long = "scenario", value_name = "SPEC")]
    pub scenarios: Vec<Scenario>,
    /// Stop after this long (default: run until interrupted).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Write the fleet's plan and the findings its weaknesses must produce to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub ground_truth: Option<PathBuf>,
    /// Concurrent enrollments.
    #[arg(long, default_value_t = 16)]
    pub enroll_concurrency: usize,
    /// Connections started per second.
    #[arg(long, default_value_t = 500)]
    pub connect_rate: u32,
    /// Share of devices (0–1) whose update installs fail their health check and roll back.
    #[arg(long, default_value_t = 0.0)]
    pub update_failure_rate: f64,
}

impl SimArgs {
    /// The fleet configuration these options describe.
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        if !(0.0..=1.0).contains(&self.weak_share) {
            bail!("--weak-share must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.update_failure_rate) {
            bail!("--update-failure-rate must be between 0 and 1");
        }
        let ca_pem = std::fs::read(&self.ca_cert).with_context(|| {
            format!(
                "cannot read the CA certificate {} (pass --ca-cert; the server writes it to its data directory)",
                self.ca_cert.display()
            )
        })?;
        let (host, port) = self
            .mqtt
            .rsplit_once(':')
            .context("--mqtt must be HOST:PORT")?;
        Ok(SimConfig {
            endpoint: Endpoint {
                est: EstClient::new(&self.server, ca_pem.clone()),
                ca_pem: Arc::new(ca_pem),
                mqtt_host: host.to_owned(),
                mqtt_port: port.parse().context("--mqtt port")?,
                credential: self
                    .token
                    .clone()
                    .map_or(Credential::None, Credential::Token),
                expiring_credential: self.expiring_token.clone().map(Credential::Token),
                state_dir: Some(self.state_dir.clone().unwrap_or_else(default_state_dir)),
                telemetry_interval: self.telemetry_interval.max(Duration::from_secs(1)),
                update_failure_rate: self.update_failure_rate,
            },
            devices: self.devices,
            prefix: self.prefix.clone(),
            weak_share: self.weak_share,
            scenarios: self.scenarios.clone(),
            enroll_concurrency: self.enroll_concurrency,
            connect_rate: self.connect_rate,
            progress: true,
        })
    }
}

/// Writes the plan and its expected findings.
pub fn write_ground_truth(
    path: &std::path::Path,
    fleet: &[crate::PlannedDevice],
) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "devices": fleet,
        "expected_findings": expected_findings(fleet),
    });
    std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `garrison sim` until interrupted or `--duration` passes.
pub async fn run_sim(
    args: SimArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = args.config()?;
    let (fleet, report) = Fleet::start(config).await?;
    if let Some(path) = &args.ground_truth {
        write_ground_truth(path, fleet.plan())?;
    }
    let rss = resident_kib();
    println!(
        "Simulating {} devices: {} enrolled now ({:.1} s), {} connected in {:.1} s ({:.0}/s){}",
        report.devices,
        report.enrolled,
        report.enroll_seconds,
        report.connected,
        report.connect_seconds,
        report.connected as f64 / report.connect_seconds.max(0.001),
        rss.map(|k| format!("; RSS {:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_default(),
    );
    if report.connected < report.devices {
        eprintln!(
            "warning: {} devices did not connect within two minutes; check the broker address and the server log",
            report.devices - report.connected
        );
    }
    match args.duration {
        Some(d) => {
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                () = shutdown => {}
            }
        }
        None => shutdown.await,
    }
    fleet.stop().await;
    println!("Simulation stopped.");
    Ok(())
}

/// This process's resident memory, KiB (Linux).
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
