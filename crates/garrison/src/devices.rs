//! The device-identity commands over the REST API: `device`, `cert` and `enroll`.
//!
//! They call `/api/v1/devices`, `/api/v1/certificates` and `/api/v1/enrollment/…` with the
//! saved profile (see `client.rs`) and print tables or, with `--output json`, the API's JSON.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{
    cli::{CertCommand, DeviceCommand, EnrollClaimCommand, EnrollCommand, EnrollTokenCommand},
    client::{ApiFailure, Remote, RemoteArgs, encode},
    inventory_cli,
    output::{self, Format},
};

const CERT_COLUMNS: &[&str] = &["serial", "subject", "kind", "status", "not_after"];
const TOKEN_COLUMNS: &[&str] = &[
    "id",
    "device_pattern",
    "uses",
    "max_uses",
    "status",
    "expires_at",
    "created_by",
];
const CLAIM_COLUMNS: &[&str] = &[
    "name",
    "serial",
    "uses",
    "max_uses",
    "not_after",
    "revoked_at",
    "created_by",
];
const REQUEST_COLUMNS: &[&str] = &[
    "device_id",
    "status",
    "source",
    "decided_by",
    "serial",
    "updated_at",
];

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// `device …`
pub async fn device(command: DeviceCommand) -> anyhow::Result<ExitCode> {
    match command {
        DeviceCommand::List {
            remote,
            query,
            export,
        } => inventory_cli::device_list(remote, query, export).await,
        DeviceCommand::Fields { remote } => inventory_cli::device_fields(remote).await,
        DeviceCommand::Inventory { remote, id } => {
            inventory_cli::device_json(remote, &id, "inventory").await
        }
        DeviceCommand::Sbom { remote, id } => inventory_cli::device_json(remote, &id, "sbom").await,
        DeviceCommand::History {
            remote,
            id,
            fact,
            limit,
        } => inventory_cli::device_history(remote, &id, fact, limit).await,
        DeviceCommand::Tag {
            remote,
            id,
            set,
            remove,
        } => inventory_cli::device_tag(remote, &id, set, remove).await,
        DeviceCommand::Events {
            remote,
            device,
            limit,
        } => inventory_cli::device_feed(remote, "events", device, limit).await,
        DeviceCommand::Drift {
            remote,
            device,
            limit,
        } => inventory_cli::device_feed(remote, "drift", device, limit).await,
        DeviceCommand::Unmanaged { remote } => inventory_cli::device_unmanaged(remote).await,
        DeviceCommand::Show { remote, id } => device_show(remote, &id).await,
        DeviceCommand::Quarantine { remote, id } => device_quarantine(remote, &id, true).await,
        DeviceCommand::Release { remote, id } => device_quarantine(remote, &id, false).await,
        DeviceCommand::Rotate { remote, id } => device_rotate(remote, &id).await,
        DeviceCommand::Send {
            remote,
            id,
            channel,
            payload,
        } => device_send(remote, &id, channel.as_str(), &payload).await,
    }
}

/// `cert …`
pub async fn cert(command: CertCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertCommand::List {
            remote,
            device,
            kind,
            expiring_within,
        } => {
            let mut query = Vec::new();
            if let Some(d) = device {
                query.push(format!("subject={}", encode(&d)));
            }
            if let Some(k) = kind {
                query.push(format!("kind={}", k.as_str()));
            }
            if let Some(e) = expiring_within {
                query.push(format!("expiring_within={}", encode(&e)));
            }
            let path = if query.is_empty() {
                "/api/v1/certificates".to_owned()
            } else {
                format!("/api/v1/certificates?{}", query.join("&"))
            };
            list(remote, &path, CERT_COLUMNS).await
        }
        CertCommand::Show {
            remote,
            serial,
            pem,
        } => cert_show(remote, &serial, pem).await,
        CertCommand::Revoke {
            remote,
            serial,
            reason,
        } => cert_revoke(remote, &serial, reason.as_str()).await,
    }
}

/// `enroll …`
pub async fn enroll(command: EnrollCommand) -> anyhow::Result<ExitCode> {
    match command {
        EnrollCommand::Token(EnrollTokenCommand::Create {
            remote,
            pattern,
            uses,
            expires_in,
            certificate_validity,
        }) => token_create(remote, &pattern, uses, expires_in, certificate_validity).await,
        EnrollCommand::Token(EnrollTokenCommand::List { remote }) => {
            list(remote, "/api/v1/enrollment/tokens", TOKEN_COLUMNS).await
        }
        EnrollCommand::Token(EnrollTokenCommand::Revoke { remote, id }) => {
            token_revoke(remote, &id).await
        }
        EnrollCommand::Claim(EnrollClaimCommand::Create {
            remote,
            name,
            uses,
            valid_for,
            out_dir,
        }) => claim_create(remote, &name, uses, valid_for, &out_dir).await,
        EnrollCommand::Claim(EnrollClaimCommand::List { remote }) => {
            list(remote, "/api/v1/enrollment/claims", CLAIM_COLUMNS).await
        }
        EnrollCommand::Requests { remote, status } => {
            let path = match status {
                Some(s) => format!("/api/v1/enrollment/requests?status={}", s.as_str()),
                None => "/api/v1/enrollment/requests".to_owned(),
            };
            list(remote, &path, REQUEST_COLUMNS).await
        }
        EnrollCommand::Approve { remote, device } => decide(remote, &device, true).await,
        EnrollCommand::Reject { remote, device } => decide(remote, &device, false).await,
        EnrollCommand::Preauthorize {
            remote,
            device,
            public_key_sha256,
        } => preauthorize(remote, &device, public_key_sha256).await,
    }
}

/// Every page of a list route, as a table with `columns` or as a JSON array.
async fn list(args: RemoteArgs, path: &str, columns: &[&str]) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let items = remote.get_all(path).await?;
    output::print_list(remote.output, &items, columns);
    Ok(ExitCode::SUCCESS)
}

async fn device_show(args: RemoteArgs, id: &str) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let device = remote
        .get(&format!("/api/v1/devices/{}", encode(id)))
        .await?;
    // The session lives in the broker; a server without one answers 503, and the device
    // is still worth showing.
    let session = match remote
        .get(&format!("/api/v1/devices/{}/session", encode(id)))
        .await
    {
        Ok(session) => Some(session),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == 503) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    match remote.output {
        Format::Json => {
            let mut shown = device;
            if let Some(map) = shown.as_object_mut() {
                map.insert("session".into(), session.unwrap_or(Value::Null));
            }
            output::print_object(Format::Json, &shown);
        }
        Format::Table => {
            inventory_cli::print_device_detail(&device);
            println!();
            match session {
                Some(session) => {
                    println!("MQTT session:");
                    output::print_object(Format::Table, &session);
                }
                None => println!("MQTT session: unknown (this server does not run the broker)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn device_quarantine(args: RemoteArgs, id: &str, on: bool) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let verb = if on { "quarantine" } else { "release" };
    let device = remote
        .post(&format!("/api/v1/devices/{}/{verb}", encode(id)), json!({}))
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &device),
        Format::Table if on => println!(
            "Device {id} quarantined: only its cmd and update channels stay open, from its next message."
        ),
        Format::Table => println!("Device {id} released from quarantine."),
    }
    Ok(ExitCode::SUCCESS)
}

async fn device_rotate(args: RemoteArgs, id: &str) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let device = remote
        .post(&format!("/api/v1/devices/{}/rotate", encode(id)), json!({}))
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &device),
        Format::Table => println!(
            "Asked device {id} to rotate its key. Its next renewal retires certificate {}.",
            text(&device, "current_serial")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--payload` argument: JSON text, `@FILE`, or `-` for standard input.
fn read_payload(arg: &str) -> anyhow::Result<Value> {
    let (text, source) = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the payload from standard input")?;
        (text, "standard input".to_owned())
    } else if let Some(file) = arg.strip_prefix('@') {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the payload file {file}"))?;
        (text, file.to_owned())
    } else {
        (arg.to_owned(), "--payload".to_owned())
    };
    serde_json::from_str(&text).with_context(|| format!("{source} is not valid JSON"))
}

async fn device_send(
    args: RemoteArgs,
    id: &str,
    channel: &str,
    payload: &str,
) -> anyhow::Result<ExitCode> {
    let payload = read_payload(payload)?;
    let remote = Remote::from_args(&args)?;
    remote
        .post(
            &format!("/api/v1/devices/{}/messages", encode(id)),
            json!({ "channel": channel, "payload": payload }),
        )
        .await?;
    match remote.output {
        Format::Json => output::print_object(
            Format::Json,
            &json!({ "device": id, "channel": channel, "accepted": true }),
        ),
        Format::Table => println!(
            "Handed to the broker for {id} on channel {channel} (QoS 1; delivered when the device is connected)."
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn cert_show(args: RemoteArgs, serial: &str, pem: bool) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let mut cert = remote
        .get(&format!("/api/v1/certificates/{}", encode(serial)))
        .await?;
    if pem {
        let text = cert
            .get("pem")
            .and_then(Value::as_str)
            .context("the server's answer has no PEM")?;
        print!("{}", text);
        if !text.ends_with('\n') {
            println!();
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(map) = cert.as_object_mut() {
        map.remove("pem");
    }
    output::print_object(remote.output, &cert);
    Ok(ExitCode::SUCCESS)
}

async fn cert_revoke(args: RemoteArgs, serial: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let mut cert = remote
        .post(
            &format!("/api/v1/certificates/{}/revoke", encode(serial)),
            json!({ "reason": reason }),
        )
        .await?;
    if let Some(map) = cert.as_object_mut() {
        map.remove("pem");
    }
    match remote.output {
        Format::Json => output::print_object(Format::Json, &cert),
        Format::Table => println!(
            "Revoked certificate {} ({} {}, reason {}); the CRL is updated and a connected device is disconnected.",
            text(&cert, "serial"),
            text(&cert, "kind"),
            text(&cert, "subject"),
            text(&cert, "revocation_reason"),
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_create(
    args: RemoteArgs,
    pattern: &str,
    uses: Option<i64>,
    expires_in: Option<String>,
    certificate_validity: Option<String>,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let mut body = json!({ "device_pattern": pattern });
    if let Some(n) = uses {
        body["max_uses"] = json!(n);
    }
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    if let Some(v) = certificate_validity {
        body["certificate_validity"] = json!(v);
    }
    let created = remote.post("/api/v1/enrollment/tokens", body).await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &created),
        Format::Table => {
            let info = &created["info"];
            let token = text(&created, "token");
            let max_uses = info.get("max_uses").and_then(Value::as_i64).unwrap_or(1);
            println!(
                "Created bootstrap token {} for devices matching {:?}: {} enrollment{}, until {}.",
                text(info, "id"),
                text(info, "device_pattern"),
                max_uses,
                if max_uses == 1 { "" } else { "s" },
                text(info, "expires_at"),
            );
            if let Some(v) = info.get("certificate_validity").and_then(Value::as_str) {
                println!(
                    "The certificates it enrolls are valid for {v}; renewals get the server's device validity."
                );
            }
            println!("Store it now; it is not shown again:\n\n    {token}\n");
            let device = if pattern.contains('*') {
                "DEVICE"
            } else {
                pattern
            };
            println!(
                "A device enrolls with it over EST: HTTP Basic with its device id as the user and \
                 this token as the password, posting a base64 DER CSR whose CN is its device id:\n"
            );
            println!(
                "    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                 -keyout device.key -subj /CN={device} -outform DER | openssl base64 > csr.b64"
            );
            println!(
                "    curl --cacert ca.pem -u {device}:{token} -H 'Content-Type: application/pkcs10' \
                 --data-binary @csr.b64 {}/.well-known/est/simpleenroll",
                remote.server.trim_end_matches('/')
            );
            println!(
                "\n(ca.pem is the server's root CA, in its data directory; the answer is the \
                 certificate as base64 PKCS#7.)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_revoke(args: RemoteArgs, id: &str) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let token = remote
        .delete(&format!("/api/v1/enrollment/tokens/{}", encode(id)))
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &token),
        Format::Table => println!(
            "Revoked bootstrap token {id} (for {:?}); devices can no longer enroll with it.",
            text(&token, "device_pattern")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` only if it does not exist, with `mode` on Unix, and writes `contents`.
pub(crate) fn write_new(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn claim_create(
    args: RemoteArgs,
    name: &str,
    uses: Option<i64>,
    valid_for: Option<String>,
    out_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let cert_path: PathBuf = out_dir.join(format!("{name}.pem"));
    let key_path: PathBuf = out_dir.join(format!("{name}.key"));
    // Refuse before asking the server: the key exists only in the answer, so it must have
    // somewhere to go.
    for path in [&cert_path, &key_path] {
        if path.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; not overwriting it (choose another --out-dir or move it away)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create the directory {}", out_dir.display()))?;
    let remote = Remote::from_args(&args)?;
    let mut body = json!({ "name": name });
    if let Some(n) = uses {
        body["max_uses"] = json!(n);
    }
    if let Some(v) = valid_for {
        body["valid_for"] = json!(v);
    }
    let created = remote.post("/api/v1/enrollment/claims", body).await?;
    let claim = &created["claim"];
    let serial = text(claim, "serial");
    let key = created
        .get("private_key_pem")
        .and_then(Value::as_str)
        .context("the server's answer has no private key")?;
    let certificate = created
        .get("certificate_pem")
        .and_then(Value::as_str)
        .context("the server's answer has no certificate")?;
    let lost = |e: anyhow::Error| {
        e.context(format!(
            "claim {name} was created but its key could not be saved; revoke it with \
             `garrison cert revoke {serial}` and create another"
        ))
    };
    write_new(&key_path, key, 0o600).map_err(lost)?;
    write_new(&cert_path, certificate, 0o644).map_err(lost)?;
    match remote.output {
        Format::Json => output::print_object(
            Format::Json,
            &json!({
                "claim": claim,
                "certificate_file": cert_path.display().to_string(),
                "key_file": key_path.display().to_string(),
            }),
        ),
        Format::Table => {
            println!(
                "Created claim {name} (serial {serial}, {} enrollments, until {}).",
                claim.get("max_uses").and_then(Value::as_i64).unwrap_or(0),
                text(claim, "not_after"),
            );
            println!("  certificate: {}", cert_path.display());
            println!(
                "  private key: {} (mode 0600; Garrison keeps no copy)",
                key_path.display()
            );
            println!(
                "\nA device enrolls with it as its TLS client certificate:\n\n    curl --cacert ca.pem \
                 --cert {} --key {} -H 'Content-Type: application/pkcs10' --data-binary @csr.b64 \
                 {}/.well-known/est/simpleenroll\n\nStop it with `garrison cert revoke {serial}`.",
                cert_path.display(),
                key_path.display(),
                remote.server.trim_end_matches('/'),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(args: RemoteArgs, device: &str, approve: bool) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let verb = if approve { "approve" } else { "reject" };
    let request = remote
        .post(
            &format!("/api/v1/enrollment/requests/{}/{verb}", encode(device)),
            json!({}),
        )
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &request),
        Format::Table if approve => println!(
            "Approved the enrollment of {device}; its next EST request gets its certificate."
        ),
        Format::Table => {
            println!("Rejected the enrollment of {device}; its further requests are refused.")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn preauthorize(
    args: RemoteArgs,
    device: &str,
    public_key_sha256: Option<String>,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let mut body = json!({ "device_id": device });
    if let Some(k) = &public_key_sha256 {
        body["public_key_sha256"] = json!(k);
    }
    let request = remote
        .post("/api/v1/enrollment/preauthorized", body)
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &request),
        Format::Table => match request.get("public_key_sha256").and_then(Value::as_str) {
            Some(k) => println!(
                "Pre-authorised {device} for the public key {k}: its first EST request with that key is issued at once."
            ),
            None => println!(
                "Pre-authorised {device} (any key): its first EST request is issued at once."
            ),
        },
    }
    Ok(ExitCode::SUCCESS)
}
