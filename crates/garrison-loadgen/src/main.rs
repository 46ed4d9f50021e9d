//! `garrison-loadgen`: the load generator behind `bench/mqtt.sh` and `bench/est.sh`.
//!
//! It drives any MQTT broker that speaks mutual TLS — Garrison's embedded broker and Mosquitto
//! alike — with the same client code (rumqttc 0.25 on rustls + aws-lc-rs) and the same
//! per-device certificates, so the two can be compared side by side:
//!
//! - `pubsub`: N publishers (optionally paired with N subscribers) publish at QoS 0 or 1, flat out
//!   or paced, each payload carrying a sequence number and a send timestamp. Reports the
//!   publisher-side rate (QoS 1: PUBACKs/s; QoS 0: PUBLISH packets written/s), the
//!   publish→PUBACK round trip (QoS 1), and — with subscribers — the delivered rate, end-to-end
//!   latency and lost / duplicate / out-of-order counts. With `--metrics-url` it also reads
//!   Garrison's `garrison_intake_messages_total` before and after, to check that every
//!   acknowledged message reached the intake.
//! - `handshakes`: C workers loop over TCP connect + full mTLS handshake (no resumption) +
//!   CONNECT + CONNACK + DISCONNECT; reports handshakes/s.
//! - `idle`: opens N mTLS MQTT connections and holds them (for RSS-per-connection figures).
//! - `est`: generates unique P-256 CSRs in process, then enrolls them over EST
//!   (`/.well-known/est/simpleenroll`) with C concurrent HTTP/1.1 connections; reports
//!   certificates/s and latency, and can write each issued certificate and key to a directory
//!   (the certificate directory the MQTT modes read).
#![forbid(unsafe_code)]

mod est;
mod mqtt;
mod seed;
mod stats;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use rustls::{
    ClientConfig, RootCertStore,
    client::Resumption,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// MQTT and EST load generator for Garrison and Mosquitto (mutual TLS).
#[derive(Parser, Debug)]
#[command(
    name = "garrison-loadgen",
    version,
    about,
    long_about = "MQTT and EST load generator for benchmarking Garrison's embedded broker side \
by side with Mosquitto, using the same client code and the same per-device certificates.\n\n\
Certificates: --certs DIR holds NAME.pem (device certificate) and NAME.key (its private key) \
for each device; the MQTT client id is NAME (Garrison requires it to equal the certificate's \
CN). Files are used in name order. `est --out DIR` writes such a directory.\n\n\
Results go to stdout as `key: value` lines, or as one JSON object with --json."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Publish from N devices (QoS 0/1, flat out or paced); optionally subscribe and verify.
    Pubsub(mqtt::PubsubArgs),
    /// Full mTLS connect + CONNECT/CONNACK + DISCONNECT in a loop; reports handshakes/s.
    Handshakes(mqtt::HandshakeArgs),
    /// Open N mTLS MQTT connections and hold them open.
    Idle(mqtt::IdleArgs),
    /// Generate CSRs and enroll them over EST; reports certificates/s.
    Est(est::EstArgs),
    /// Write a simulated fleet (devices, certificates, inventories) straight into a store.
    SeedFleet(seed::SeedArgs),
}

/// Where the broker is and which certificates to use.
#[derive(Args, Debug, Clone)]
struct Target {
    /// Broker host (also the TLS server name checked against the broker's certificate).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker mTLS port.
    #[arg(long)]
    port: u16,
    /// PEM file with the CA certificate(s) the broker's server certificate chains to.
    #[arg(long)]
    ca: PathBuf,
    /// Directory of NAME.pem + NAME.key per device (client id = NAME).
    #[arg(long)]
    certs: PathBuf,
    /// TLS version the client offers: "1.2", "1.3" or "any".
    #[arg(long, default_value = "any")]
    tls_version: String,
    /// Print one JSON object instead of `key: value` lines.
    #[arg(long)]
    json: bool,
}

/// One device identity from the certificate directory.
#[derive(Clone)]
struct Identity {
    name: String,
    config: Arc<ClientConfig>,
}

fn load_identities(target: &Target, need: usize) -> anyhow::Result<Vec<Identity>> {
    let ca = std::fs::read(&target.ca)
        .with_context(|| format!("cannot read {}", target.ca.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots
            .add(cert.context("bad CA PEM")?)
            .context("bad CA certificate")?;
    }
    let mut names: Vec<String> = std::fs::read_dir(&target.certs)
        .with_context(|| format!("cannot read {}", target.certs.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".pem")?.to_owned();
            target
                .certs
                .join(format!("{stem}.key"))
                .exists()
                .then_some(stem)
        })
        .collect();
    names.sort();
    if names.len() < need {
        bail!(
            "{} holds {} device certificates (NAME.pem + NAME.key); {need} needed",
            target.certs.display(),
            names.len()
        );
    }
    names.truncate(need);
    let versions: &[&rustls::SupportedProtocolVersion] = match target.tls_version.as_str() {
        "1.2" => &[&rustls::version::TLS12],
        "1.3" => &[&rustls::version::TLS13],
        "any" => rustls::ALL_VERSIONS,
        other => bail!("--tls-version must be 1.2, 1.3 or any, not {other}"),
    };
    names
        .into_iter()
        .map(|name| {
            let config = client_config(&target.certs, &name, roots.clone(), versions)?;
            Ok(Identity { name, config })
        })
        .collect()
}

fn client_config(
    dir: &Path,
    name: &str,
    roots: RootCertStore,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> anyhow::Result<Arc<ClientConfig>> {
    let cert_file = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}.key"));
    let chain = CertificateDer::pem_file_iter(&cert_file)
        .with_context(|| format!("cannot read {}", cert_file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad PEM in {}", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .with_context(|| format!("cannot read a private key from {}", key_file.display()))?;
    let mut config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .with_context(|| format!("{name}: certificate and key do not fit"))?;
    // Every connection is a full handshake: no session tickets, no session-id resumption.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Prints a report as `key: value` lines or one JSON object.
fn report(json: bool, fields: &[(&str, serde_json::Value)]) {
    if json {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        for (k, v) in fields {
            match v {
                serde_json::Value::String(s) => println!("{k}: {s}"),
                other => println!("{k}: {other}"),
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // reqwest and rumqttc both pull in rustls; pin one process-wide provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::Pubsub(args) => mqtt::pubsub(args).await,
            Mode::Handshakes(args) => mqtt::handshakes(args).await,
            Mode::Idle(args) => mqtt::idle(args).await,
            Mode::Est(args) => est::run(args).await,
            Mode::SeedFleet(args) => seed::run(args).await,
        }
    })
}
