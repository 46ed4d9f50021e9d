//! `garrison release`: signing keys, the trust root and release manifests, on the machine that
//! holds the keys — typically offline. Nothing here talks to a server: the server (and every
//! device) only verifies what these commands produce.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::Subcommand;
use garrison_core::now_ms;
use garrison_update::{
    Algorithm, Artifact, ArtifactCheck, DeviceState, Manifest, PublicKey, SignedManifest,
    SigningKey, TrustRoot, verify_manifest,
};
use serde_json::json;

use crate::{
    devices::write_new,
    local::read_new_passphrase,
    output::{self, Format},
};

/// Where an encrypted key's passphrase may come from instead of the terminal.
const PASSPHRASE_ENV: &str = "GARRISON_RELEASE_KEY_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Make a signing key pair: KEY.key (private, PKCS#8 PEM, mode 0600) and KEY.pub (public,
    /// SubjectPublicKeyInfo PEM). Keep root keys and release keys on separate, offline
    /// machines.
    #[command(
        after_help = "Examples:\n  garrison release keygen root-1 --encrypt\n  garrison release keygen release-2026 --algorithm ecdsa-p256"
    )]
    Keygen {
        /// Path prefix of the two files.
        #[arg(value_name = "KEY")]
        out: PathBuf,
        /// ed25519 or ecdsa-p256.
        #[arg(long, default_value = "ed25519")]
        algorithm: Algorithm,
        /// Encrypt the private key with a passphrase (PKCS#8 PBES2), asked twice.
        #[arg(long)]
        encrypt: bool,
        /// Read the passphrase from standard input instead of the terminal.
        #[arg(long, requires = "encrypt")]
        passphrase_stdin: bool,
    },
    /// Make and sign a trust root: the root keys with their threshold, and the release keys.
    /// Devices pin it; a new version (--previous) must be signed by the threshold of the old
    /// root's keys and of its own, so give every key needed with --sign-with.
    #[command(
        after_help = "Examples:\n  garrison release root --root-key r1.pub --root-key r2.pub --root-key r3.pub --threshold 2 \\\n      --release-key release-2026.pub --sign-with r1.key --sign-with r2.key --out root.cose\n  garrison release root --previous root.cose --root-key r2.pub --root-key r3.pub --root-key r4.pub \\\n      --threshold 2 --release-key release-2027.pub --sign-with r1.key --sign-with r2.key \\\n      --sign-with r3.key --out root-v2.cose"
    )]
    Root {
        /// A root key's public half (repeatable).
        #[arg(long = "root-key", value_name = "PUB", required = true)]
        root_keys: Vec<PathBuf>,
        /// Root signatures a trust root needs.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// A release key's public half (repeatable).
        #[arg(long = "release-key", value_name = "PUB", required = true)]
        release_keys: Vec<PathBuf>,
        /// A private key to sign with (repeatable).
        #[arg(long = "sign-with", value_name = "KEY", required = true)]
        sign_with: Vec<PathBuf>,
        /// The root this one replaces: the new version is its version + 1, and is checked as
        /// a device would check the rotation.
        #[arg(long, value_name = "ROOT")]
        previous: Option<PathBuf>,
        /// Devices refuse every release once the root is this old, e.g. 365d [default:
        /// never].
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        /// Where to write the signed root.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a release: hash each artifact (streamed), write the manifest as a COSE_Sign1
    /// signed by a release key.
    #[command(
        disable_version_flag = true,
        after_help = "Example:\n  garrison release sign --key release-2026.key --vendor acme --model AV-CAM-220 \\\n      --sequence 57 --version 5.7.0 --expires-in 180d rootfs.swu --out cam-5.7.0.cose"
    )]
    Sign {
        /// The release key (private).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Vendor identifier devices check.
        #[arg(long)]
        vendor: String,
        /// Device class (model) devices check.
        #[arg(long)]
        model: String,
        /// Sequence number: devices install only a release with a larger one than theirs.
        #[arg(long)]
        sequence: u64,
        /// The release's version, for people.
        #[arg(long)]
        version: String,
        /// Devices refuse the release after this long, e.g. 180d [default: never].
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        /// Release notes.
        #[arg(long)]
        description: Option<String>,
        /// The artifacts (their file names become the artifact names).
        #[arg(required = true, value_name = "ARTIFACT")]
        artifacts: Vec<PathBuf>,
        /// Where to write the signed manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Pin the trust root on a server (admins): the first one, or the next version of a
    /// rotation (which the server checks against the pinned one).
    Pin {
        #[command(flatten)]
        remote: crate::client::RemoteArgs,
        /// The signed trust root.
        #[arg(value_name = "ROOT")]
        root: PathBuf,
    },
    /// Publish a signed release on a server: upload the artifacts it names that the server
    /// does not hold yet (from DIR, checked against the manifest first), then the manifest,
    /// which the server verifies against its pinned root.
    #[command(after_help = "Example:\n  garrison release publish cam-5.7.0.cose --artifacts dist/")]
    Publish {
        #[command(flatten)]
        remote: crate::client::RemoteArgs,
        /// The signed manifest.
        #[arg(value_name = "MANIFEST")]
        manifest: PathBuf,
        /// Directory holding the artifacts under their manifest names.
        #[arg(long, value_name = "DIR", default_value = ".")]
        artifacts: PathBuf,
    },
    /// List the releases a server holds, newest first.
    List {
        #[command(flatten)]
        remote: crate::client::RemoteArgs,
    },
    /// Verify a signed manifest as a device would: against a trust root, and optionally a
    /// device's vendor, model and installed sequence, and the artifacts themselves. Exits 1
    /// if anything fails.
    Verify {
        /// The trust root the device pins.
        #[arg(long, value_name = "ROOT")]
        root: PathBuf,
        /// The signed manifest.
        #[arg(value_name = "MANIFEST")]
        manifest: PathBuf,
        /// The device's vendor [default: the manifest's].
        #[arg(long)]
        vendor: Option<String>,
        /// The device's model [default: the manifest's].
        #[arg(long)]
        model: Option<String>,
        /// The sequence number installed on the device.
        #[arg(long, default_value_t = 0)]
        installed_sequence: u64,
        /// A directory holding the artifacts, to check their size and SHA-256.
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

pub async fn run(command: ReleaseCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReleaseCommand::Pin { remote, root } => {
            let remote = crate::client::Remote::from_args(&remote)?;
            let bytes =
                std::fs::read(&root).with_context(|| format!("cannot read {}", root.display()))?;
            let pinned = remote
                .send_raw(
                    reqwest::Method::PUT,
                    "/api/v1/updates/root",
                    "application/cose",
                    bytes,
                )
                .await?;
            match remote.output {
                Format::Json => output::print_object(Format::Json, &pinned),
                Format::Table => println!(
                    "Pinned trust root version {} ({} release key(s)).",
                    pinned["version"],
                    pinned["release_keys"].as_array().map_or(0, Vec::len)
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Publish {
            remote,
            manifest,
            artifacts,
        } => publish(&remote, &manifest, &artifacts).await,
        ReleaseCommand::List { remote } => {
            let remote = crate::client::Remote::from_args(&remote)?;
            let items = remote.get_all("/api/v1/updates/releases").await?;
            output::print_list(
                remote.output,
                &items,
                &[
                    "id",
                    "vendor",
                    "model",
                    "version",
                    "sequence",
                    "signed_by",
                    "created_at",
                ],
            );
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Keygen {
            out,
            algorithm,
            encrypt,
            passphrase_stdin,
        } => keygen(&out, algorithm, encrypt, passphrase_stdin),
        ReleaseCommand::Root {
            root_keys,
            threshold,
            release_keys,
            sign_with,
            previous,
            expires_in,
            out,
        } => {
            let previous = previous.map(|p| read_root(&p)).transpose()?;
            let root = TrustRoot {
                root_version: previous.as_ref().map_or(1, |p| p.root_version + 1),
                root_keys: read_public_keys(&root_keys)?,
                root_threshold: threshold,
                release_keys: read_public_keys(&release_keys)?,
                created_at: now_ms(),
                expires_at: expires_in.map(|d| now_ms().saturating_add(millis(d))),
            };
            let keys = sign_with
                .iter()
                .map(|p| read_signing_key(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let refs: Vec<&SigningKey> = keys.iter().collect();
            let signed = root.sign(&refs).context("cannot sign the trust root")?;
            if let Some(previous) = &previous {
                previous.rotate(&signed).context(
                    "devices pinning the previous root would refuse this one: sign with the threshold of its keys too",
                )?;
            }
            write_file(&out, &signed)?;
            println!(
                "Wrote trust root version {} to {}: {} root key(s), threshold {}, {} release key(s).",
                root.root_version,
                out.display(),
                root.root_keys.len(),
                root.root_threshold,
                root.release_keys.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Sign {
            key,
            vendor,
            model,
            sequence,
            version,
            expires_in,
            description,
            artifacts,
            out,
        } => {
            let key = read_signing_key(&key)?;
            let mut listed = Vec::new();
            for path in &artifacts {
                listed.push(hash_artifact(path)?);
            }
            let manifest = Manifest {
                manifest_version: 1,
                vendor,
                class: model,
                sequence,
                version,
                artifacts: listed,
                created_at: now_ms(),
                expires_at: expires_in.map(|d| now_ms().saturating_add(millis(d))),
                description,
            };
            let signed =
                SignedManifest::sign(&manifest, &key).context("cannot sign the release")?;
            write_file(&out, signed.as_bytes())?;
            println!(
                "Signed {} {} {} (sequence {}) with release key {}: {} artifact(s), written to {}.",
                manifest.vendor,
                manifest.class,
                manifest.version,
                manifest.sequence,
                key.public_key().id(),
                manifest.artifacts.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Verify {
            root,
            manifest,
            vendor,
            model,
            installed_sequence,
            artifacts,
            output,
        } => verify(
            &root,
            &manifest,
            vendor,
            model,
            installed_sequence,
            artifacts.as_deref(),
            output,
        ),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn keygen(
    out: &Path,
    algorithm: Algorithm,
    encrypt: bool,
    passphrase_stdin: bool,
) -> anyhow::Result<ExitCode> {
    let key = SigningKey::generate(algorithm)?;
    let private_path = out.with_extension("key");
    let public_path = out.with_extension("pub");
    let private = if encrypt {
        let passphrase = read_new_passphrase(passphrase_stdin, "signing key")?;
        garrison_pki::encrypt_private_key(&key.to_pem(), &passphrase)?
    } else {
        key.to_pem()
    };
    write_new(&private_path, &private, 0o600)?;
    write_new(&public_path, &key.public_key().to_pem(), 0o644)?;
    println!(
        "Wrote {} key {} ({}, {}) and its public half {}.",
        algorithm.name(),
        key.public_key().id(),
        private_path.display(),
        if encrypt {
            "encrypted"
        } else {
            "not encrypted: keep it offline"
        },
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

fn read_public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|p| {
            PublicKey::from_pem(&read_text(p, "public key")?)
                .with_context(|| format!("{} is not a usable public key", p.display()))
        })
        .collect()
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = read_text(path, "private key")?;
    let pem = if text.contains("ENCRYPTED PRIVATE KEY") {
        let passphrase = match std::env::var(PASSPHRASE_ENV) {
            Ok(p) => p,
            Err(_) => rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
                .with_context(|| format!("cannot read from the terminal; set {PASSPHRASE_ENV}"))?,
        };
        garrison_pki::decrypt_private_key(&text, &passphrase)
            .with_context(|| format!("cannot decrypt {} (wrong passphrase?)", path.display()))?
    } else {
        text
    };
    SigningKey::from_pem(&pem)
        .with_context(|| format!("{} is not a usable signing key", path.display()))
}

fn read_root(path: &Path) -> anyhow::Result<TrustRoot> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the trust root {}", path.display()))?;
    TrustRoot::open(&bytes).with_context(|| format!("{} is not a valid trust root", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Streams `path` through SHA-256 with a progress bar (on a terminal).
fn hash_artifact(path: &Path) -> anyhow::Result<Artifact> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?
        .to_owned();
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::output::bytes_progress(len, &name);
    let mut stream = garrison_update::Sha256Stream::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        stream.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let (sha256, size) = stream.finish();
    Ok(Artifact { name, sha256, size })
}

fn verify(
    root: &Path,
    manifest_path: &Path,
    vendor: Option<String>,
    model: Option<String>,
    installed_sequence: u64,
    artifacts: Option<&Path>,
    output: Format,
) -> anyhow::Result<ExitCode> {
    let root = read_root(root)?;
    let bytes = std::fs::read(manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let unverified = SignedManifest::parse(&bytes)
        .with_context(|| format!("{} is not a signed manifest", manifest_path.display()))?;
    let device = DeviceState {
        vendor: vendor.unwrap_or_else(|| unverified.manifest().vendor.clone()),
        class: model.unwrap_or_else(|| unverified.manifest().class.clone()),
        installed_sequence,
    };
    let manifest = match verify_manifest(&root, &bytes, &device, now_ms()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("REFUSED: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut results = Vec::new();
    let mut failed = false;
    if let Some(dir) = artifacts {
        for a in &manifest.artifacts {
            let outcome = check_artifact(&manifest, &dir.join(&a.name));
            failed |= outcome.is_err();
            results.push(json!({
                "artifact": a.name,
                "result": match &outcome { Ok(()) => "ok".to_owned(), Err(e) => format!("{e:#}") },
            }));
        }
    }
    let report = json!({
        "verdict": if failed { "refused" } else { "verified" },
        "vendor": manifest.vendor,
        "model": manifest.class,
        "version": manifest.version,
        "sequence": manifest.sequence,
        "signed_by": unverified.key().as_str(),
        "root_version": root.root_version,
        "artifacts": manifest.artifacts,
        "checked": results,
    });
    output::print_object(output, &report);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn check_artifact(manifest: &Manifest, path: &Path) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut check = ArtifactCheck::new(manifest, name)?;
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n])?;
    }
    check.finish()?;
    Ok(())
}

async fn publish(
    remote: &crate::client::RemoteArgs,
    manifest_path: &Path,
    dir: &Path,
) -> anyhow::Result<ExitCode> {
    let remote = crate::client::Remote::from_args(remote)?;
    let bytes = std::fs::read(manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let signed = SignedManifest::parse(&bytes)
        .with_context(|| format!("{} is not a signed manifest", manifest_path.display()))?;
    let manifest = signed.manifest();
    for a in &manifest.artifacts {
        let path = format!("/api/v1/updates/artifacts/{}", a.sha256);
        if remote.exists(&path).await? {
            println!("  {} is already on the server.", a.name);
            continue;
        }
        let file = dir.join(&a.name);
        check_artifact(manifest, &file)
            .with_context(|| format!("{} does not match the manifest", file.display()))?;
        let bar = output::bytes_progress(a.size, &a.name);
        remote.upload_file(&path, &file, bar).await?;
        println!("  uploaded {} ({} bytes).", a.name, a.size);
    }
    let release = remote
        .send_raw(
            reqwest::Method::POST,
            "/api/v1/updates/releases",
            "application/cose",
            bytes,
        )
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &release),
        Format::Table => println!(
            "Published {} {} {} (sequence {}) as release {}.",
            manifest.vendor,
            manifest.class,
            manifest.version,
            manifest.sequence,
            release["id"].as_str().unwrap_or("?")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
