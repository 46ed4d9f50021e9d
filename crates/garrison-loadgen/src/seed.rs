//! The `seed-fleet` mode: writes a large simulated fleet straight into a Garrison store —
//! devices with real certificates, inventory reports with their fact history and summaries —
//! for the audit and search benchmarks, which need 100,000 devices faster than they could
//! enroll and report over the network.
//!
//! It writes through the same `Store` methods the server uses, so the rows are exactly what
//! the server would have written; the facts come from the simulator's profiles.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use clap::Args;
use garrison_core::{
    DeviceId, TenantId, Username,
    audit::{Actor, AuditRecord},
    device::CertificateKind,
    now_ms,
};
use garrison_sim::Weakness;
use garrison_store::{
    Store,
    identity::{EnrollmentGrant, IssueRequest, NewBootstrapToken, NewCertificate},
    inventory::InventoryWrite,
};

/// Options of `seed-fleet`.
#[derive(Args, Debug)]
pub(crate) struct SeedArgs {
    /// The store: sqlite://PATH (a server's DATA/garrison.db) or postgres://…
    #[arg(long)]
    database_url: String,
    /// Devices to add.
    #[arg(long, default_value_t = 100_000)]
    devices: usize,
    /// Device id prefix.
    #[arg(long, default_value = "fleet")]
    prefix: String,
    /// Share of devices with weak postures.
    #[arg(long, default_value_t = 0.2)]
    weak_share: f64,
    /// Devices per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

fn record(tenant: &TenantId, action: &str, target: &str) -> AuditRecord {
    AuditRecord::new(tenant, Actor::system("seed-fleet"), action, target)
}

/// Certificates signed by a throwaway CA: the audit reads their keys and validity, nothing
/// verifies them against the server's CA. Devices planned with a shared factory key get
/// `shared_key` instead of a key of their own, as the simulator gives them.
fn certificates(
    devices: &[(DeviceId, bool)],
    shared_key: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let _ = ca_cert;
    devices
        .iter()
        .map(|(id, shared)| {
            let key = if *shared {
                rcgen::KeyPair::from_pem(shared_key)?
            } else {
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?
            };
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, id.as_str());
            let serial: [u8; 16] = {
                let mut s = [0u8; 16];
                aws_lc_rs::rand::fill(&mut s).map_err(|_| anyhow::anyhow!("no randomness"))?;
                s[0] |= 0x40;
                s[0] &= 0x7f;
                s
            };
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
            let cert = params.signed_by(&key, &issuer)?;
            Ok((hex::encode(serial), cert.pem()))
        })
        .collect()
}

/// `seed-fleet`.
pub(crate) async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = garrison_store::open(&args.database_url)
        .await
        .context("cannot open the store")?;
    store.migrate().await?;
    let tenant = TenantId::default();
    let plan = garrison_sim::plan(&args.prefix, args.devices, args.weak_share)?;
    let token = format!("seed{:012x}", now_ms());
    store
        .bootstrap_token_create(
            NewBootstrapToken {
                id: token.clone(),
                tenant: tenant.clone(),
                device_pattern: format!("{}-*", args.prefix),
                secret_hash: "unusable".into(),
                max_uses: i64::try_from(args.devices).unwrap_or(i64::MAX),
                expires_at: now_ms() + 3_600_000,
                created_by: Username::new("seed-fleet")?,
                certificate_validity_ms: None,
            },
            record(&tenant, "bootstrap_token.create", &token),
        )
        .await?;
    let started = Instant::now();
    let far = now_ms() + 90 * 86_400_000;
    // As the simulator's expiring-certificate token gives them: ten days.
    let soon = now_ms() + 10 * 86_400_000;
    let shared_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_pem();
    for chunk in plan.chunks(args.batch.max(1)) {
        let devices: Vec<(DeviceId, bool)> = chunk
            .iter()
            .map(|d| (d.id.clone(), d.weaknesses.contains(&Weakness::SharedKey)))
            .collect();
        let key = shared_key.clone();
        let certs = tokio::task::spawn_blocking(move || certificates(&devices, &key)).await??;
        let batch: Vec<IssueRequest> = chunk
            .iter()
            .zip(certs)
            .map(|(d, (serial, pem))| IssueRequest {
                tenant: tenant.clone(),
                device: d.id.clone(),
                grant: EnrollmentGrant::Token { id: token.clone() },
                cert: NewCertificate {
                    fingerprint: format!("seed:{serial}"),
                    serial,
                    kind: CertificateKind::Device,
                    subject: d.id.to_string(),
                    pem,
                    not_before: now_ms() - 1000,
                    not_after: if d.weaknesses.contains(&Weakness::ExpiringCertificate) {
                        soon
                    } else {
                        far
                    },
                },
                audit: record(&tenant, "certificate.issue", d.id.as_str()),
            })
            .collect();
        for result in store.certificate_record_issue_batch(batch).await? {
            result.context("a seeded issuance was refused")?;
        }
        let received = now_ms();
        let writes: Vec<InventoryWrite> = chunk
            .iter()
            .map(|d| {
                let mut inventory = garrison_sim::profile::inventory(
                    d.profile,
                    d.index,
                    &d.weaknesses,
                    false,
                    received,
                );
                inventory.device_id = Some(d.id.to_string());
                InventoryWrite {
                    tenant: tenant.clone(),
                    device: d.id.clone(),
                    received_at: received,
                    summary: garrison_inventory::facts::summarize(&inventory),
                    changes: garrison_inventory::facts::changes(None, &inventory, received),
                    drift: Vec::new(),
                    inventory,
                }
            })
            .collect();
        store.inventory_record_batch(&writes).await?;
        let done = chunk.last().map_or(0, |d| d.index + 1);
        // As the server does: keep lookups indexed where autovacuum is off (a no-op where
        // the statistics are fresh; otherwise a plan cached on the empty tables scans them).
        store.refresh_statistics().await?;
        if done % 10_000 == 0 || done == args.devices {
            println!(
                "seeded {done} devices ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64().max(0.001)
            );
        }
    }
    store.close().await;
    println!("seed_seconds: {:.1}", started.elapsed().as_secs_f64());
    Ok(())
}
