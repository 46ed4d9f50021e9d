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

use crate::{session::Session, update};

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
    /// Reads the state; a missing file is the factory state.
    pub fn load(state_dir: &Path) -> InstalledState {
        std::fs::read(state_dir.join("update-state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the state atomically.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::keystore::write_atomic(&state_dir.join("update-state.json"), &bytes, 0o600)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Publishes a device's `update/status` reports for one notice.
pub struct Reporter<'a> {
    /// The session to publish on.
    pub session: &'a Session,
    /// The device id, echoed in each report.
    pub device: String,
    /// The notice being answered.
    pub notice: &'a UpdateNotice,
}

impl Reporter<'_> {
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
            .session
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
        let mut err = Vec::new();
        if let Some(s) = &mut stderr {
            let _ = s.take(64 * 1024).read_to_end(&mut err).await;
        }
        (child.wait().await, err)
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
    reporter: &Reporter<'_>,
    now: i64,
) -> Option<Manifest> {
    if notice.action == UpdateAction::Cancel {
        return None;
    }
    let installed = InstalledState::load(state_dir);
    let device = DeviceState {
        vendor: config.vendor.clone(),
        class: config.class.clone(),
        installed_sequence: installed.sequence,
    };
    let manifest = match update::verify_notice(notice, root, &device, now) {
        Ok(m) => m,
        Err(e) => {
            reporter
                .report(UpdateState::Failed, Some(e.to_string()))
                .await;
            return None;
        }
    };
    let dir = state_dir.join("updates").join(&notice.campaign);
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
    if let Err(e) = state.save(state_dir) {
        tracing::error!(error = %e, "Cannot record the installed release; anti-rollback relies on it");
    }
    let _ = std::fs::remove_dir_all(&dir);
    reporter.report(UpdateState::Succeeded, None).await;
    Some(manifest)
}
