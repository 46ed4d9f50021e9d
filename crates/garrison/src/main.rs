//! `garrison`: the one binary. It parses the command line and wires the capability crates
//! together; behaviour lives in the crates (see `ARCHITECTURE.md`).
#![forbid(unsafe_code)]
// A binary has no public API: `pub` items here are visible to sibling modules only.
#![allow(unreachable_pub, missing_docs)]

mod campaign_cli;
mod cli;
mod client;
mod config;
mod demo;
mod devices;
mod inventory;
mod inventory_cli;
mod local;
mod monitor;
mod monitor_cli;
mod output;
mod release_cli;
mod rules_cli;
mod serve;
mod setup;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Both aws-lc-rs and ring may be compiled in; pick one explicitly for every TLS user.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
