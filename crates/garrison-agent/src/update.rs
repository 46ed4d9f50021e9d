//! The device's side of an update offer: verify the signed manifest against the pinned trust
//! root and the device's own state, then fetch every artifact over HTTPS with the device's
//! certificate, checking digest and size as the bytes arrive. Nothing is trusted before it
//! is verified: a manifest that is forged, signed by an unknown key, expired, for another
//! model or older than what is installed is refused before any download; an artifact that is
//! tampered with, truncated or too long is refused and deleted.
//!
//! What installs the verified artifacts (a script, swupdate, RAUC) is the caller's; the
//! simulator only pretends to.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use garrison_contract::UpdateNotice;
use garrison_update::{ArtifactCheck, DeviceState, Manifest, TrustRoot, verify_manifest};
use tokio::io::AsyncWriteExt;

/// Why an update offer was refused; the message goes into the `failed` report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateFailure {
    /// The notice carries no manifest or one that is not base64.
    #[error("the notice's manifest is missing or not base64")]
    NoManifest,
    /// The manifest failed verification.
    #[error("manifest refused: {0}")]
    Manifest(#[from] garrison_update::UpdateError),
    /// The notice's links do not match the manifest's artifacts.
    #[error("the notice offers {0}, which the manifest does not list with that digest and size")]
    Mismatch(String),
    /// The download failed (network, HTTP status, TLS).
    #[error("download of {name} failed: {detail}")]
    Download {
        /// The artifact.
        name: String,
        /// What happened.
        detail: String,
    },
    /// The artifact's bytes do not match the manifest.
    #[error("artifact {name} refused: {detail}")]
    Artifact {
        /// The artifact.
        name: String,
        /// Digest or size mismatch.
        detail: String,
    },
    /// Writing the artifact failed.
    #[error("cannot store {name}: {detail}")]
    Storage {
        /// The artifact.
        name: String,
        /// The I/O error.
        detail: String,
    },
}

/// Verifies the notice's manifest (`now` in Unix ms).
pub fn verify_notice(
    notice: &UpdateNotice,
    root: &TrustRoot,
    device: &DeviceState,
    now: i64,
) -> Result<Manifest, UpdateFailure> {
    let bytes = notice
        .manifest
        .as_deref()
        .and_then(|m| base64::engine::general_purpose::STANDARD.decode(m).ok())
        .ok_or(UpdateFailure::NoManifest)?;
    let manifest = verify_manifest(root, &bytes, device, now)?;
    for link in &notice.artifacts {
        let listed = manifest
            .artifacts
            .iter()
            .any(|a| a.name == link.name && a.sha256 == link.sha256 && a.size == link.size);
        if !listed {
            return Err(UpdateFailure::Mismatch(link.name.clone()));
        }
    }
    Ok(manifest)
}

/// Downloads every artifact of a verified `manifest` with `client` (which presents the device
/// certificate), checking digest and size as the bytes stream; writes them under `dir` when
/// given (a refused file is deleted) and returns their paths.
pub async fn download(
    notice: &UpdateNotice,
    manifest: &Manifest,
    client: &reqwest::Client,
    dir: Option<&Path>,
) -> Result<Vec<PathBuf>, UpdateFailure> {
    let mut files = Vec::new();
    for artifact in &manifest.artifacts {
        let link = notice
            .artifacts
            .iter()
            .find(|l| l.name == artifact.name)
            .ok_or_else(|| UpdateFailure::Mismatch(artifact.name.clone()))?;
        let download = |detail: String| UpdateFailure::Download {
            name: artifact.name.clone(),
            detail,
        };
        let mut response = client
            .get(&link.url)
            .send()
            .await
            .map_err(|e| download(e.to_string()))?;
        if !response.status().is_success() {
            return Err(download(format!("HTTP {}", response.status())));
        }
        let path = dir.map(|d| d.join(&artifact.name));
        let mut file = match &path {
            Some(p) => {
                Some(
                    tokio::fs::File::create(p)
                        .await
                        .map_err(|e| UpdateFailure::Storage {
                            name: artifact.name.clone(),
                            detail: e.to_string(),
                        })?,
                )
            }
            None => None,
        };
        let mut check = ArtifactCheck::new(manifest, &artifact.name)?;
        let outcome: Result<(), UpdateFailure> = async {
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| download(e.to_string()))?
            {
                check.update(&chunk).map_err(|e| UpdateFailure::Artifact {
                    name: artifact.name.clone(),
                    detail: e.to_string(),
                })?;
                if let Some(f) = &mut file {
                    f.write_all(&chunk)
                        .await
                        .map_err(|e| UpdateFailure::Storage {
                            name: artifact.name.clone(),
                            detail: e.to_string(),
                        })?;
                }
            }
            check.finish().map_err(|e| UpdateFailure::Artifact {
                name: artifact.name.clone(),
                detail: e.to_string(),
            })?;
            if let Some(f) = &mut file {
                f.sync_all().await.map_err(|e| UpdateFailure::Storage {
                    name: artifact.name.clone(),
                    detail: e.to_string(),
                })?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            if let Some(p) = &path {
                let _ = tokio::fs::remove_file(p).await;
            }
            return Err(e);
        }
        files.extend(path);
    }
    Ok(files)
}

/// The trust root to verify offers with: `pinned` as it is, or the server's newer root when
/// the chain of rotations from `pinned` to it verifies (each version signed by the threshold
/// of the one before, TUF's rule; the versions in between are fetched one by one), or — with
/// nothing pinned yet — the server's root, trusted on first use over the server-authenticated
/// TLS connection. The device then keeps what this returns.
pub async fn current_root(
    client: &reqwest::Client,
    server: &str,
    pinned: Option<&TrustRoot>,
) -> Result<TrustRoot, String> {
    let base = format!("{}/device/v1/root", server.trim_end_matches('/'));
    let fetch = async |url: &str| -> Result<Option<Vec<u8>>, String> {
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(format!("cannot fetch {url}: HTTP {}", response.status()));
        }
        Ok(Some(
            response.bytes().await.map_err(|e| e.to_string())?.to_vec(),
        ))
    };
    let Some(document) = fetch(&base).await? else {
        return pinned
            .cloned()
            .ok_or_else(|| "the server has no trust root pinned".to_owned());
    };
    let offered = TrustRoot::open(&document).map_err(|e| e.to_string())?;
    let Some(pinned) = pinned else {
        return Ok(offered);
    };
    let mut root = pinned.clone();
    while root.root_version < offered.root_version {
        let next = root.root_version + 1;
        let step = if next == offered.root_version {
            document.clone()
        } else {
            fetch(&format!("{base}/{next}"))
                .await?
                .ok_or_else(|| format!("the server does not have trust root version {next}"))?
        };
        root = root
            .rotate(&step)
            .map_err(|e| format!("root rotation to version {next} refused: {e}"))?;
    }
    Ok(root)
}
