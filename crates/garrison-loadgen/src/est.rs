//! The `est` mode: CSR generation and EST simpleenroll under concurrency.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Args;
use serde_json::json;

use crate::{
    report,
    stats::{Samples, num},
};

/// Options of `est`.
#[derive(Args, Debug)]
pub(crate) struct EstArgs {
    /// Garrison's API base URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    url: String,
    /// PEM file with Garrison's root CA (DATA/ca.pem).
    #[arg(long)]
    ca: PathBuf,
    /// Bootstrap token (the HTTP Basic password; the user is the device id).
    #[arg(long, env = "LOADGEN_EST_TOKEN", hide_env_values = true)]
    token: String,
    /// Certificates to request (one unique P-256 CSR each, generated before the clock starts).
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Concurrent HTTP/1.1 keep-alive connections.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Device ids are PREFIX-000000, PREFIX-000001, …
    #[arg(long, default_value = "dev")]
    prefix: String,
    /// Write each issued certificate and its key as DIR/ID.pem and DIR/ID.key (after the
    /// measurement).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object instead of `key: value` lines.
    #[arg(long)]
    json: bool,
}

struct Request {
    id: String,
    key_pem: String,
    body: String,
}

fn make_csrs(prefix: &str, range: std::ops::Range<usize>) -> anyhow::Result<Vec<Request>> {
    range
        .map(|i| {
            let id = format!("{prefix}-{i:06}");
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = rcgen::CertificateParams::default();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, id.clone());
            let csr = params.serialize_request(&key)?;
            Ok(Request {
                body: STANDARD.encode(csr.der()),
                key_pem: key.serialize_pem(),
                id,
            })
        })
        .collect()
}

/// `est`: enroll `count` CSRs with `concurrency` connections.
pub(crate) async fn run(args: EstArgs) -> anyhow::Result<()> {
    let ca =
        std::fs::read(&args.ca).with_context(|| format!("cannot read {}", args.ca.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&ca)?;

    // CSRs on all cores, before the clock starts.
    let t = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = args.count.div_ceil(threads).max(1);
    let mut jobs = Vec::new();
    for start in (0..args.count).step_by(chunk) {
        let prefix = args.prefix.clone();
        let end = (start + chunk).min(args.count);
        jobs.push(tokio::task::spawn_blocking(move || {
            make_csrs(&prefix, start..end)
        }));
    }
    let mut requests = Vec::with_capacity(args.count);
    for job in jobs {
        requests.extend(job.await??);
    }
    let csr_seconds = t.elapsed().as_secs_f64();
    let requests = Arc::new(requests);

    let url = format!(
        "{}/.well-known/est/simpleenroll",
        args.url.trim_end_matches('/')
    );
    let next = Arc::new(AtomicUsize::new(0));
    let responses: Arc<Mutex<Vec<Option<String>>>> =
        Arc::new(Mutex::new(vec![None; requests.len()]));
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let client = reqwest::Client::builder()
            .tls_certs_only(roots.clone())
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1)
            .build()?;
        let (requests, next, url, token) = (
            requests.clone(),
            next.clone(),
            url.clone(),
            args.token.clone(),
        );
        let (responses, statuses, keep) = (responses.clone(), statuses.clone(), args.out.is_some());
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(r) = requests.get(i) else { break };
                let t = Instant::now();
                let result = client
                    .post(&url)
                    .basic_auth(&r.id, Some(&token))
                    .header("content-type", "application/pkcs10")
                    .body(r.body.clone())
                    .send()
                    .await;
                let status = match result {
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.text().await.unwrap_or_default();
                        samples.push(t.elapsed());
                        if status.as_u16() == 200
                            && keep
                            && let Ok(mut all) = responses.lock()
                        {
                            all[i] = Some(text);
                        }
                        status.as_u16().to_string()
                    }
                    Err(e) => format!("error: {e}"),
                };
                if let Ok(mut map) = statuses.lock() {
                    *map.entry(status).or_default() += 1;
                }
            }
            samples
        }));
    }
    let mut samples = Samples::default();
    for w in workers {
        samples.merge(w.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let statuses = statuses.lock().map(|m| m.clone()).unwrap_or_default();
    let issued = statuses.get("200").copied().unwrap_or(0);

    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        let responses = responses.lock().map(|r| r.clone()).unwrap_or_default();
        for (r, body) in requests.iter().zip(responses) {
            let Some(body) = body else { continue };
            let der = STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .with_context(|| format!("{}: the response is not base64", r.id))?;
            let Some(cert) = first_certificate(&der) else {
                bail!("{}: no certificate in the PKCS#7 response", r.id);
            };
            std::fs::write(dir.join(format!("{}.pem", r.id)), pem("CERTIFICATE", cert))?;
            std::fs::write(dir.join(format!("{}.key", r.id)), &r.key_pem)?;
        }
    }

    report(
        args.json,
        &[
            ("mode", json!("est")),
            ("requested", json!(requests.len())),
            ("concurrency", json!(args.concurrency)),
            ("csr_generation_s", num(Some(csr_seconds), 3)),
            ("elapsed_s", num(Some(elapsed), 3)),
            ("issued", json!(issued)),
            ("certs_per_s", num(Some(issued as f64 / elapsed), 0)),
            ("p50_ms", num(samples.percentile_ms(50.0), 3)),
            ("p99_ms", num(samples.percentile_ms(99.0), 3)),
            ("statuses", json!(statuses)),
        ],
    );
    if issued as usize != requests.len() {
        bail!(
            "{} of {} requests were not issued",
            requests.len() - issued as usize,
            requests.len()
        );
    }
    Ok(())
}

/// One DER element: (tag, content, rest after the element).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let content = b.get(header..header + len)?;
    Some((tag, content, &b[header + len..]))
}

/// The first certificate of a certs-only PKCS#7 (RFC 5652 SignedData) as DER.
fn first_certificate(p7: &[u8]) -> Option<&[u8]> {
    let (_, content_info, _) = tlv(p7)?;
    let (_, _, rest) = tlv(content_info)?; // contentType
    let (_, explicit, _) = tlv(rest)?; // [0] EXPLICIT
    let (_, signed_data, _) = tlv(explicit)?;
    let (_, _, rest) = tlv(signed_data)?; // version
    let (_, _, rest) = tlv(rest)?; // digestAlgorithms
    let (_, _, rest) = tlv(rest)?; // encapContentInfo
    let (tag, certs, _) = tlv(rest)?;
    if tag != 0xa0 {
        return None;
    }
    let (_, _, after) = tlv(certs)?;
    Some(&certs[..certs.len() - after.len()])
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
