//! Local administration: commands that work on the data directory and database directly, for
//! the operator at the server's console (`admin init`, `admin reset-password`, `audit verify`).

use std::process::ExitCode;

use anyhow::{Context, bail};
use garrison_core::{
    TenantId, Username,
    audit::{Actor, AuditRecord},
};

use crate::{config::Config, setup};

fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Actor::system(&format!("cli({user})"))
}

/// Opens and prepares the store as `serve` would (master key checked, schema migrated).
async fn open_prepared(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<dyn garrison_store::Store>> {
    let settings = config.resolve()?;
    setup::init_logging(config);
    setup::prepare_data_dir(&settings.data_dir)?;
    let store = setup::open_store(&settings).await?;
    let key = setup::master_key(&settings, store.as_ref()).await?;
    setup::migrate(store.as_ref(), &key).await?;
    Ok(store)
}

pub async fn admin_init(config: Config, username: &str) -> anyhow::Result<ExitCode> {
    let store = open_prepared(&config).await?;
    let tenant = TenantId::default();
    let created = setup::create_first_admin(store.as_ref(), &tenant, username, cli_actor()).await?;
    store.close().await;
    match created {
        Some(password) => {
            setup::print_credential(username, &password, "Garrison created the admin account.");
            Ok(ExitCode::SUCCESS)
        }
        None => bail!(
            "operators already exist, so there is nothing to initialise; use `garrison admin reset-password --username NAME` to regain access"
        ),
    }
}

pub async fn reset_password(config: Config, username: &str) -> anyhow::Result<ExitCode> {
    let store = open_prepared(&config).await?;
    let tenant = TenantId::default();
    let name = Username::new(username)?;
    if store.operator_get(&tenant, &name).await?.is_none() {
        bail!("no operator named {username:?}; `garrison admin init` creates the first admin");
    }
    let password = garrison_api::generate_password()?;
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || garrison_api::hash_secret(&p)).await??
    };
    let record = AuditRecord::new(
        &tenant,
        cli_actor(),
        "operator.password_reset",
        format!("operator:{name}"),
    );
    store
        .operator_set_password(&tenant, &name, &hash, record)
        .await?;
    store.close().await;
    setup::print_credential(
        username,
        &password,
        "Password reset; the operator's sessions were ended.",
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn audit_verify(config: Config, expect_head: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = config.resolve()?;
    setup::init_logging(&config);
    let store = setup::open_store(&settings).await?;
    if !store.is_initialized().await? {
        bail!(
            "no Garrison database at {}; start `garrison serve` first",
            garrison_store::redact_url(&settings.database_url)
        );
    }
    let result = store
        .audit_verify()
        .await
        .context("cannot read the audit log")?;
    store.close().await;
    match result.first_break {
        Some(b) => {
            println!("Audit chain BROKEN at entry {}: {}", b.seq, b.detail);
            println!(
                "{} entries before it verified; last good head {}",
                result.verified, result.head
            );
            Ok(ExitCode::from(1))
        }
        None => {
            if let Some(expected) = expect_head
                && !expected.eq_ignore_ascii_case(&result.head.to_hex())
            {
                println!(
                    "Audit chain intact but its head is {} where {expected} was expected: newer entries were removed or the chain was replaced",
                    result.head
                );
                return Ok(ExitCode::from(1));
            }
            println!(
                "Audit chain intact: {} entries, head {}",
                result.verified, result.head
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `garrison ca init`: creates the CA before the first `serve`, optionally keeping the root
/// key offline — written encrypted to `offline_root` and never stored by the server.
pub async fn ca_init(
    config: Config,
    algorithm: Option<garrison_pki::KeyAlgorithm>,
    offline_root: Option<std::path::PathBuf>,
    passphrase_stdin: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(path) = &offline_root
        && path.exists()
    {
        bail!(
            "{} already exists; choose a new file for the root key (it is never overwritten)",
            path.display()
        );
    }
    let passphrase = match &offline_root {
        Some(_) => Some(read_new_passphrase(passphrase_stdin, "root key")?),
        None => None,
    };
    let settings = config.resolve()?;
    let store = open_prepared(&config).await?;
    let _lock = setup::lock_data_dir(&settings.data_dir)?;
    let key = setup::master_key(&settings, store.as_ref()).await?;
    let tenant = TenantId::default();
    let created = setup::create_ca(
        store.as_ref(),
        &key,
        &tenant,
        setup::NewCa {
            organization: &config.pki.organization,
            algorithm: algorithm.unwrap_or(settings.key_algorithm),
            actor: cli_actor(),
        },
        offline_root.is_none(),
    )
    .await?;
    let Some(generated) = created else {
        store.close().await;
        bail!(
            "this installation already has a CA; `ca init` only creates one (its root is in {}/ca.pem)",
            settings.data_dir.display()
        );
    };
    if let (Some(path), Some(passphrase)) = (&offline_root, &passphrase) {
        let sealed = garrison_pki::encrypt_private_key(&generated.root_key_pem, passphrase)?;
        setup::write_private(path, sealed.as_bytes())?;
    }
    let (ca, fingerprint) = setup::certificate_authority(
        store.as_ref(),
        &key,
        &tenant,
        setup::NewCa {
            organization: &config.pki.organization,
            algorithm: settings.key_algorithm,
            actor: cli_actor(),
        },
    )
    .await?;
    let ca_file = setup::write_ca_file(&settings.data_dir, &ca)?;
    store.close().await;
    println!(
        "Created the CA. Root certificate: {} (SHA-256 {fingerprint})",
        ca_file.display()
    );
    match &offline_root {
        Some(path) => println!(
            "The root private key is NOT stored by the server. It is in {} (encrypted PKCS#8;\n\
             `openssl pkey -in FILE` opens it with the passphrase). Move it to offline storage now.",
            path.display()
        ),
        None => println!("The root and issuing keys are sealed in the store with the master key."),
    }
    Ok(ExitCode::SUCCESS)
}

/// A new passphrase for `what` (a key), typed twice or read from standard input.
pub(crate) fn read_new_passphrase(stdin: bool, what: &str) -> anyhow::Result<String> {
    let passphrase = if stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = rpassword::prompt_password(format!("Passphrase for the {what}: "))
            .context("cannot read from the terminal; use --passphrase-stdin")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the passphrases differ");
        }
        first
    };
    if passphrase.chars().count() < 12 {
        bail!("the {what} passphrase must be at least 12 characters");
    }
    Ok(passphrase)
}
