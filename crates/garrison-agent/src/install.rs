//! Installing an update on the device: everything after the offer is verified and its
//! artifacts are on disk ([`crate::update`]). A configurable installer does the work — a
//! script, `swupdate -i`, `rauc install` — with the artifact paths as its last arguments; a
//! health check decides whether the new software is good; a failed health check runs the
//! rollback command. Every stage is reported on `update/status`, and the installed release's
//! sequence number is kept in the state directory so an older release is refused even after
//! a restart.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use garrison_contract::{
    Channel, SCHEMA_VERSION, UpdateAction, UpdateNotice, UpdateState, UpdateStatus, encode,
};
use garrison_update::{DeviceState, Manifest, TrustRoot};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::{session::Publisher, update};

/// How this device installs updates.
#[derive(Debug, Clone)]
pub struct InstallerConfig {
    /// The installer and its first arguments; the artifact paths are appended
    /// (`["swupdate", "-i"]`, `["rauc", "install"]`, `["/usr/local/sbin/install-update"]`).
    pub installer: Vec<String>,
    /// Run after a successful install; exit 0 means healthy.
    pub health_check: Option<Vec<String>>,
    /// Run when the health check fails, to restore the previous software.
    pub rollback: Option<Vec<String>>,
    /// Each command is stopped after this long (and counts as failed).
    pub timeout: Duration,
    /// The device's vendor and class as its releases name them.
    pub vendor: String,
    /// The device class (model).
    pub class: String,
}

/// What the device remembers between updates (`update-state.json` in the state directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledState {
    /// Sequence number of the installed release (0: the factory image).
    pub sequence: u64,
    /// Its version.
    pub version: Option<String>,
}

impl InstalledState {
    /// Reads the state; a missing file is the factory state, an unreadable one an error (so a
    /// damaged file cannot reset anti-rollback to zero).
    pub fn load(state_dir: &Path) -> Result<InstalledState, String> {
        let path = state_dir.join("update-state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is damaged ({e}); fix or remove it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(InstalledState::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Where the pinned trust root is kept.
    fn root_path(state_dir: &Path) -> PathBuf {
        state_dir.join("update-root.cose")
    }

    /// Writes the state atomically.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::keystore::write_atomic(&state_dir.join("update-state.json"), &bytes, 0o600)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Publishes a device's `update/status` reports for one notice.
#[derive(Clone)]
pub struct Reporter {
    /// The session to publish on.
    pub publisher: Publisher,
    /// The device id, echoed in each report.
    pub device: String,
    /// The notice being answered.
    pub notice: UpdateNotice,
}

impl Reporter {
    /// Reports `state` (with `reason` for failures and deferrals).
    pub async fn report(&self, state: UpdateState, reason: Option<String>) {
        let status = UpdateStatus {
            schema: SCHEMA_VERSION,
            device_id: Some(self.device.clone()),
            campaign: self.notice.campaign.clone(),
            attempt: Some(self.notice.attempt),
            state,
            reason,
        };
        if let Err(e) = self
            .publisher
            .publish(Channel::UpdateStatus, encode(&status))
            .await
        {
            tracing::warn!(error = %e, state = state.as_str(), "Cannot queue an update status");
        }
    }
}

/// Runs `command` with `args` appended; `Err` carries why it failed (exit status and the end
/// of its output), for the report.
async fn run(command: &[String], args: &[PathBuf], timeout: Duration) -> Result<(), String> {
    let Some((program, first)) = command.split_first() else {
        return Err("no command configured".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(first)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stderr = child.stderr.take();
    let outcome = tokio::time::timeout(timeout, async {
        // Read to the end (a full pipe would stall the installer), keeping the last 64 KiB.
        let mut tail: Vec<u8> = Vec::new();
        if let Some(s) = &mut stderr {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 64 * 1024 {
                    tail.drain(..tail.len() - 64 * 1024);
                }
            }
        }
        (child.wait().await, tail)
    })
    .await;
    match outcome {
        Err(_) => Err(format!(
            "{program} did not finish within {} s",
            timeout.as_secs()
        )),
        Ok((Err(e), _)) => Err(format!("{program}: {e}")),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), err)) => {
            let text = String::from_utf8_lossy(&err);
            let tail: String = text
                .trim()
                .chars()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(format!("{program} failed ({status}): {tail}"))
        }
    }
}

/// Answers an update notice end to end: verify, download into `dir`, install, check, roll back
/// if needed, report each stage. Returns the manifest when the new release is installed and
/// healthy (the caller then reports its inventory).
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    notice: &UpdateNotice,
    root: &TrustRoot,
    config: &InstallerConfig,
    state_dir: &Path,
    client: &reqwest::Client,
    reporter: &Reporter,
    now: i64,
) -> Option<Manifest> {
    if notice.action == UpdateAction::Cancel {
        return None;
    }
    let installed = match InstalledState::load(state_dir) {
        Ok(i) => i,
        Err(reason) => {
            reporter.report(UpdateState::Failed, Some(reason)).await;
            return None;
        }
    };
    let device = DeviceState {
        vendor: config.vendor.clone(),
        class: config.class.clone(),
        installed_sequence: installed.sequence,
    };
    if update::already_installed(notice, root, &device, now) {
        reporter
            .report(
                UpdateState::Succeeded,
                Some("this release is already installed".into()),
            )
            .await;
        return None;
    }
    let manifest = match update::verify_notice(notice, root, &device, now) {
        Ok(m) => m,
        Err(e) => {
            reporter
                .report(UpdateState::Failed, Some(e.to_string()))
                .await;
            return None;
        }
    };
    // A fixed directory: nothing the server sends names a path on the device.
    let dir = state_dir.join("update-download");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        reporter
            .report(
                UpdateState::Failed,
                Some(format!("cannot create {}: {e}", dir.display())),
            )
            .await;
        return None;
    }
    reporter.report(UpdateState::Downloading, None).await;
    let files = match update::download(notice, &manifest, client, Some(&dir)).await {
        Ok(f) => f,
        Err(e) => {
            reporter
                .report(UpdateState::Failed, Some(e.to_string()))
                .await;
            return None;
        }
    };
    reporter.report(UpdateState::Downloaded, None).await;
    reporter.report(UpdateState::Verified, None).await;
    if notice.action == UpdateAction::DownloadOnly {
        return None;
    }
    reporter.report(UpdateState::Installing, None).await;
    if let Err(reason) = run(&config.installer, &files, config.timeout).await {
        reporter.report(UpdateState::Failed, Some(reason)).await;
        return None;
    }
    reporter.report(UpdateState::Installed, None).await;
    if let Some(check) = &config.health_check
        && let Err(unhealthy) = run(check, &[], config.timeout).await
    {
        let Some(rollback) = &config.rollback else {
            reporter
                .report(
                    UpdateState::Failed,
                    Some(format!(
                        "health check failed and no rollback is configured: {unhealthy}"
                    )),
                )
                .await;
            return None;
        };
        match run(rollback, &[], config.timeout).await {
            Ok(()) => {
                reporter
                    .report(
                        UpdateState::RolledBack,
                        Some(format!(
                            "health check failed, previous software restored: {unhealthy}"
                        )),
                    )
                    .await;
            }
            Err(e) => {
                reporter
                    .report(
                        UpdateState::Failed,
                        Some(format!(
                            "health check failed ({unhealthy}) and so did the rollback ({e})"
                        )),
                    )
                    .await;
            }
        }
        return None;
    }
    let state = InstalledState {
        sequence: manifest.sequence,
        version: Some(manifest.version.clone()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = state.save(state_dir) {
        reporter
            .report(
                UpdateState::Failed,
                Some(format!(
                    "installed, but the installed release cannot be recorded (anti-rollback relies on it): {e}"
                )),
            )
            .await;
        return None;
    }
    reporter.report(UpdateState::Succeeded, None).await;
    Some(manifest)
}

/// The trust root this device pinned, if any (kept in the state directory, so a restart does
/// not fall back to trusting the server's root on first use again).
pub fn pinned_root(state_dir: &Path) -> Result<Option<TrustRoot>, String> {
    let path = InstalledState::root_path(state_dir);
    match std::fs::read(&path) {
        Ok(bytes) => TrustRoot::open(&bytes).map(Some).map_err(|e| {
            format!(
                "{} is not a trust root ({e}); restore or remove it",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Keeps `document` (a trust root the device now trusts) as the pinned root.
pub fn pin_root(state_dir: &Path, document: &[u8]) -> std::io::Result<()> {
    crate::keystore::write_atomic(&InstalledState::root_path(state_dir), document, 0o600)
        .map_err(|e| std::io::Error::other(e.to_string()))
}
