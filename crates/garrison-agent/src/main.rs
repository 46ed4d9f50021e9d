//! `garrison-agent`: the device agent as a small standalone binary, without the server.

use std::process::ExitCode;

use clap::Parser;

/// Garrison's device agent: enrolls this device over EST, keeps its key on the device, and
/// reports inventory, telemetry and security events to Garrison over MQTT with mutual TLS.
///
/// First run: `garrison-agent --server https://garrison:8443 --ca-cert ca.pem --token gbt_…`
/// (the token from `garrison enroll token create <device-id>`). `--once` prints what it would
/// report and exits.
#[derive(Debug, Parser)]
#[command(name = "garrison-agent", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    args: garrison_agent::cli::AgentArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GARRISON_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // One thread: a device agent should not compete with the device's own work.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(garrison_agent::cli::run_agent(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
