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
use garrison_update::{
    ArtifactCheck, DeviceState, Manifest, TrustRoot, verify_manifest, verify_release,
};
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

/// Whether the offer is the release this device already runs — validly signed, for this
/// vendor and class, with the installed sequence number: a retry after a `succeeded` report
/// was lost, to be answered with `succeeded` again rather than refused as a rollback.
pub fn already_installed(
    notice: &UpdateNotice,
    root: &TrustRoot,
    device: &DeviceState,
    now: i64,
) -> bool {
    if device.installed_sequence == 0 {
        return false;
    }
    let Some(bytes) = notice
        .manifest
        .as_deref()
        .and_then(|m| base64::engine::general_purpose::STANDARD.decode(m).ok())
    else {
        return false;
    };
    verify_release(root, &bytes, now).is_ok_and(|m| {
        m.vendor == device.vendor
            && m.class == device.class
            && m.sequence == device.installed_sequence
    })
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
/// TLS connection. Returns the root with its signed document when it is new to the device,
/// which then keeps it.
pub async fn current_root(
    client: &reqwest::Client,
    server: &str,
    pinned: Option<&TrustRoot>,
) -> Result<(TrustRoot, Option<Vec<u8>>), String> {
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
            .map(|p| (p.clone(), None))
            .ok_or_else(|| "the server has no trust root pinned".to_owned());
    };
    let offered = TrustRoot::open(&document).map_err(|e| e.to_string())?;
    let Some(pinned) = pinned else {
        return Ok((offered, Some(document)));
    };
    if offered.root_version <= pinned.root_version {
        return Ok((pinned.clone(), None));
    }
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
    Ok((root, Some(document)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_contract::{ArtifactLink, SCHEMA_VERSION, UpdateAction};
    use garrison_update::{Algorithm, Artifact, Sha256Stream, SignedManifest, SigningKey};

    const NOW: i64 = 1_800_000_000_000;

    /// A one-shot HTTP server answering any request with `body`, claiming `length` bytes.
    async fn serve_once(body: Vec<u8>, length: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            }
        });
        format!("http://{addr}/artifact")
    }

    struct Offer {
        root: TrustRoot,
        notice: UpdateNotice,
        manifest: Manifest,
        image: Vec<u8>,
    }

    fn offer(url: &str) -> Offer {
        let root_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let release = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let root = TrustRoot {
            root_version: 1,
            root_keys: vec![root_key.public_key()],
            root_threshold: 1,
            release_keys: vec![release.public_key()],
            created_at: NOW,
            expires_at: None,
        };
        let image: Vec<u8> = (0..100_000u32).map(|i| (i % 249) as u8).collect();
        let mut digest = Sha256Stream::default();
        digest.update(&image);
        let (sha256, size) = digest.finish();
        let manifest = Manifest {
            manifest_version: 1,
            vendor: "acme".into(),
            class: "cam".into(),
            sequence: 5,
            version: "5.0.0".into(),
            artifacts: vec![Artifact {
                name: "image.swu".into(),
                sha256: sha256.clone(),
                size,
            }],
            created_at: NOW,
            expires_at: None,
            description: None,
        };
        let signed = SignedManifest::sign(&manifest, &release).unwrap();
        let notice = UpdateNotice {
            schema: SCHEMA_VERSION,
            campaign: "c1".into(),
            attempt: 1,
            action: UpdateAction::Forced,
            manifest: Some(base64::engine::general_purpose::STANDARD.encode(signed.as_bytes())),
            artifacts: vec![ArtifactLink {
                name: "image.swu".into(),
                sha256,
                size,
                url: url.into(),
            }],
        };
        Offer {
            root,
            notice,
            manifest,
            image,
        }
    }

    fn device(installed: u64) -> DeviceState {
        DeviceState {
            vendor: "acme".into(),
            class: "cam".into(),
            installed_sequence: installed,
        }
    }

    #[tokio::test]
    async fn an_intact_artifact_is_written_and_a_bad_one_is_refused_and_removed() {
        let client = reqwest::Client::new();
        let dir = tempfile::tempdir().unwrap();
        // Intact.
        let probe = offer("http://unused");
        let url = serve_once(probe.image.clone(), probe.image.len()).await;
        let mut o = offer(&url);
        o.image = probe.image;
        let manifest = verify_notice(&o.notice, &o.root, &device(4), NOW).unwrap();
        let files = download(&o.notice, &manifest, &client, Some(dir.path()))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&files[0]).unwrap(), o.image);

        // Tampered: one byte changed.
        let mut tampered = o.image.clone();
        tampered[50_000] ^= 1;
        o.notice.artifacts[0].url = serve_once(tampered, o.image.len()).await;
        let e = download(&o.notice, &o.manifest, &client, Some(dir.path()))
            .await
            .unwrap_err();
        assert!(matches!(e, UpdateFailure::Artifact { .. }), "{e}");
        assert!(
            !dir.path().join("image.swu").exists(),
            "a refused file is removed"
        );

        // Truncated: the connection ends before the promised length.
        o.notice.artifacts[0].url = serve_once(o.image[..60_000].to_vec(), o.image.len()).await;
        let e = download(&o.notice, &o.manifest, &client, Some(dir.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                UpdateFailure::Download { .. } | UpdateFailure::Artifact { .. }
            ),
            "{e}"
        );
        assert!(!dir.path().join("image.swu").exists());

        // Too long: refused at the first byte past the manifest's size.
        let mut longer = o.image.clone();
        longer.extend_from_slice(b"extra");
        o.notice.artifacts[0].url = serve_once(longer.clone(), longer.len()).await;
        let e = download(&o.notice, &o.manifest, &client, None)
            .await
            .unwrap_err();
        assert!(matches!(e, UpdateFailure::Artifact { .. }), "{e}");
    }

    #[test]
    fn offers_are_refused_before_any_download() {
        let o = offer("http://127.0.0.1:9/never");
        // Older than installed, for another model, or with links that disagree.
        assert!(matches!(
            verify_notice(&o.notice, &o.root, &device(5), NOW),
            Err(UpdateFailure::Manifest(_))
        ));
        let other = DeviceState {
            class: "plug".into(),
            ..device(0)
        };
        assert!(verify_notice(&o.notice, &o.root, &other, NOW).is_err());
        let mut lying = o.notice.clone();
        lying.artifacts[0].size += 1;
        assert!(matches!(
            verify_notice(&lying, &o.root, &device(0), NOW),
            Err(UpdateFailure::Mismatch(_))
        ));
        // Signed by a key the pinned root does not list.
        let stranger = offer("http://127.0.0.1:9/never");
        assert!(verify_notice(&o.notice, &stranger.root, &device(0), NOW).is_err());
        let mut unsigned = o.notice.clone();
        unsigned.manifest = None;
        assert!(matches!(
            verify_notice(&unsigned, &o.root, &device(0), NOW),
            Err(UpdateFailure::NoManifest)
        ));
    }
}
