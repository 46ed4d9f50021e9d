//! Start-up steps shared by `serve` and the local admin commands: the data directory and its
//! lock, the master key, opening and migrating the store, the CA, and the first admin account.
//!
//! Order matters for "a wrong master key changes nothing": the key is checked against the value
//! stored at first start *before* migrations or any other write.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use garrison_core::{
    Role, TenantId, Username,
    audit::{Actor, AuditRecord},
};
use garrison_pki::{
    CertificateAuthority, KeyAlgorithm, MasterKey, PkiError, certificate_fingerprint,
};
use garrison_store::{NewOperator, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Settings};

const META_KEY_CHECK: &str = "master_key_check";
const META_KEY_ID: &str = "master_key_id";
const CA_SECRET: &str = "ca/bundle";

/// Sets up logging to standard error from the configuration (RUST_LOG overrides the level).
pub fn init_logging(config: &Config) {
    use std::io::IsTerminal;
    init_logging_to(config, std::io::stderr, std::io::stderr().is_terminal());
}

/// Sets up logging to `writer` (the demo logs to a file, keeping the terminal for the tour).
pub fn init_logging_to<W>(config: &Config, writer: W, ansi: bool)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if config.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.with_ansi(ansi).try_init()
    };
}

/// Creates the data directory (mode 0700) if needed.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    restrict(dir, 0o700);
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) {}

/// Holds an exclusive lock on the data directory for the life of the server, so two servers
/// never share one directory.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<fs::File> {
    let path = dir.join("garrison.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => bail!(
            "another garrison server is using the data directory {}; stop it or choose another with --data-dir",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Opens the store named by the settings.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    garrison_store::open(&settings.database_url)
        .await
        .with_context(|| "cannot open the database".to_string())
}

/// Where the master key file is when none is configured.
pub fn default_master_key_path() -> PathBuf {
    dirs::config_dir()
        .map(|d| d.join("garrison").join("master.key"))
        .unwrap_or_else(|| PathBuf::from("garrison-master.key"))
}

/// Finds the master key, creating it only for a fresh installation, and checks it against the
/// installation's stored check value. Writes nothing to the store.
pub async fn master_key(settings: &Settings, store: &dyn Store) -> anyhow::Result<MasterKey> {
    let stored_check = if store.is_initialized().await? {
        store.meta_get(META_KEY_CHECK).await?
    } else {
        None
    };
    let stored_id = if stored_check.is_some() {
        store.meta_get(META_KEY_ID).await?
    } else {
        None
    };
    let expected = stored_id.as_deref().unwrap_or("unknown");
    let key = if let Ok(text) = std::env::var("GARRISON_MASTER_KEY") {
        MasterKey::from_text(&text).context("GARRISON_MASTER_KEY is not a valid master key")?
    } else {
        let path = settings
            .master_key_file
            .clone()
            .unwrap_or_else(default_master_key_path);
        if path.exists() {
            warn_if_readable_by_others(&path);
            let text = fs::read_to_string(&path)
                .with_context(|| format!("cannot read master key file {}", path.display()))?;
            MasterKey::from_text(&text)
                .with_context(|| format!("master key file {} is not a valid key", path.display()))?
        } else if stored_check.is_some() {
            bail!(
                "this installation's secrets are sealed with master key {expected}, but there is no key file at {} and GARRISON_MASTER_KEY is not set; supply the original key (nothing was changed)",
                path.display()
            );
        } else {
            create_key_file(&path)?
        }
    };
    if let Some(check) = stored_check {
        match key.verify_check_value(&check) {
            Ok(()) => {}
            Err(PkiError::WrongMasterKey { .. }) => bail!(
                "the master key supplied (id {}) is not the one this installation was created with (id {expected}); supply the original via GARRISON_MASTER_KEY or --master-key-file. Nothing was changed.",
                key.id()
            ),
            Err(e) => return Err(e).context("the stored master key check value is unreadable"),
        }
    }
    Ok(key)
}

fn create_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let key = MasterKey::generate()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        restrict(parent, 0o700);
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create master key file {}", path.display()))?;
    writeln!(file, "{}", key.to_base64())?;
    file.sync_all()?;
    tracing::warn!(
        path = %path.display(), key_id = %key.id(),
        "Created a new master key file. It seals the CA's private keys: back it up apart from the data directory. In production supply it from a secret store via GARRISON_MASTER_KEY or master_key_file"
    );
    Ok(key)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "The master key file is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Migrates the schema and records the master key's check value (first start only).
pub async fn migrate(store: &dyn Store, key: &MasterKey) -> anyhow::Result<()> {
    store.migrate().await.context("database migration failed")?;
    let check = store
        .meta_put_if_absent(META_KEY_CHECK, &key.check_value()?)
        .await?;
    // Another replica may have initialised the store first, with another key.
    key.verify_check_value(&check).map_err(|_| {
        anyhow::anyhow!(
            "another server initialised this database with a different master key; supply that key"
        )
    })?;
    store.meta_put_if_absent(META_KEY_ID, &key.id()).await?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct CaBundle {
    root_cert_pem: String,
    /// Absent when the root key is kept offline (`garrison ca init --offline-root`).
    #[serde(default)]
    root_key_pem: Option<String>,
    issuing_cert_pem: String,
    issuing_key_pem: String,
}

/// How a new CA is made.
pub struct NewCa<'a> {
    /// Organization named in the CA certificates.
    pub organization: &'a str,
    /// Key type of the root and issuing CA.
    pub algorithm: KeyAlgorithm,
    /// Who creates it, for the audit log.
    pub actor: Actor,
}

/// Creates the CA unless one exists; returns the generated hierarchy when this call created
/// it. With `keep_root_key = false` the root's private key is not stored — the caller must
/// take it offline.
pub async fn create_ca(
    store: &dyn Store,
    key: &MasterKey,
    tenant: &TenantId,
    new: NewCa<'_>,
    keep_root_key: bool,
) -> anyhow::Result<Option<garrison_pki::GeneratedCa>> {
    if store.secret_get(tenant, CA_SECRET).await?.is_some() {
        return Ok(None);
    }
    let generated = CertificateAuthority::generate_with(new.organization, new.algorithm)?;
    let bundle = CaBundle {
        root_cert_pem: generated.root_cert_pem.clone(),
        root_key_pem: keep_root_key.then(|| generated.root_key_pem.clone()),
        issuing_cert_pem: generated.issuing_cert_pem.clone(),
        issuing_key_pem: generated.issuing_key_pem.clone(),
    };
    let sealed = key.seal(&serde_json::to_vec(&bundle)?, CA_SECRET)?;
    let fingerprint = root_fingerprint(&bundle.root_cert_pem)?;
    let record =
        AuditRecord::new(tenant, new.actor, "pki.ca_create", "ca:root").after(serde_json::json!({
            "organization": new.organization,
            "root_fingerprint": fingerprint,
            "key_algorithm": new.algorithm.as_str(),
            "root_key_offline": !keep_root_key,
        }));
    if store
        .secret_put_if_absent(tenant, CA_SECRET, &sealed, record)
        .await?
    {
        tracing::info!(%fingerprint, "Created Garrison's certificate authority (root and issuing CA)");
        Ok(Some(generated))
    } else {
        Ok(None)
    }
}

/// The CA, created on first start, and the root's fingerprint.
pub async fn certificate_authority(
    store: &dyn Store,
    key: &MasterKey,
    tenant: &TenantId,
    new: NewCa<'_>,
) -> anyhow::Result<(CertificateAuthority, String)> {
    create_ca(store, key, tenant, new, true).await?;
    let sealed = store
        .secret_get(tenant, CA_SECRET)
        .await?
        .context("the CA bundle vanished from the store")?;
    let bundle: CaBundle = serde_json::from_slice(&key.open(&sealed, CA_SECRET)?)
        .context("the stored CA bundle is corrupt")?;
    let ca = CertificateAuthority::load(
        &bundle.root_cert_pem,
        &bundle.issuing_cert_pem,
        &bundle.issuing_key_pem,
    )?;
    let fingerprint = root_fingerprint(&bundle.root_cert_pem)?;
    Ok((ca, fingerprint))
}

fn root_fingerprint(pem: &str) -> anyhow::Result<String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .context("the root certificate is not PEM")?;
    Ok(certificate_fingerprint(&der))
}

/// Writes the root certificate to `<data-dir>/ca.pem` for clients to trust.
pub fn write_ca_file(data_dir: &Path, ca: &CertificateAuthority) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("ca.pem");
    fs::write(&path, ca.root_pem()).with_context(|| format!("cannot write {}", path.display()))?;
    restrict(&path, 0o644);
    Ok(path)
}

/// Files the embedded broker reads its TLS identity from (it takes paths, not keys in memory).
pub struct BrokerTlsFiles {
    /// Server certificate chain (leaf + issuing CA).
    pub cert: PathBuf,
    /// Server private key, 0600.
    pub key: PathBuf,
    /// Anchors client certificates must chain to (issuing + root CA).
    pub client_ca: PathBuf,
}

/// Issues the broker's server certificate and writes it, its key (created 0600 before anything
/// is written to it) and the client CA set under `<data-dir>/broker/`.
pub fn write_broker_tls_files(
    data_dir: &Path,
    ca: &CertificateAuthority,
    names: &[String],
    validity: time::Duration,
) -> anyhow::Result<BrokerTlsFiles> {
    let dir = data_dir.join("broker");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    restrict(&dir, 0o700);
    let identity = ca.issue_server(names, validity)?;
    let files = BrokerTlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: dir.join("clients-ca.pem"),
    };
    fs::write(
        &files.cert,
        format!("{}{}", identity.cert_pem, ca.issuing_pem()),
    )
    .with_context(|| format!("cannot write {}", files.cert.display()))?;
    write_private(&files.key, identity.key_pem.as_bytes())?;
    fs::write(
        &files.client_ca,
        format!("{}{}", ca.issuing_pem(), ca.root_pem()),
    )
    .with_context(|| format!("cannot write {}", files.client_ca.display()))?;
    Ok(files)
}

/// Creates `path` with mode 0600 (before anything is written to it) and writes `content`.
pub fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    restrict(path, 0o600);
    file.write_all(content)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Creates an admin account with a random password; `Ok(None)` if operators already exist.
pub async fn create_first_admin(
    store: &dyn Store,
    tenant: &TenantId,
    username: &str,
    actor: Actor,
) -> anyhow::Result<Option<String>> {
    if store.operators_count(tenant).await? > 0 {
        return Ok(None);
    }
    let username = Username::new(username)?;
    let password = garrison_api::generate_password()?;
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || garrison_api::hash_secret(&p)).await??
    };
    let record = AuditRecord::new(
        tenant,
        actor,
        "operator.create",
        format!("operator:{username}"),
    );
    match store
        .operator_create(
            NewOperator {
                tenant: tenant.clone(),
                username,
                role: Role::Admin,
                password_hash: hash,
            },
            record,
        )
        .await
    {
        Ok(_) => Ok(Some(password)),
        // Another replica created it at the same moment.
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Prints a credential once, on standard output (never into the log).
pub fn print_credential(username: &str, password: &str, what: &str) {
    println!();
    println!("  ┌──────────────────────────────────────────────────────────────┐");
    println!("  │ {what:<61}│");
    println!("  │   username: {username:<49}│");
    println!("  │   password: {password:<49}│");
    println!("  │ It is shown only this once and stored only as a hash.        │");
    println!("  └──────────────────────────────────────────────────────────────┘");
    println!();
}
