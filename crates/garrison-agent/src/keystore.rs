//! Where the device's private key and certificate live.
//!
//! [`KeyStore`] is the seam for hardware-backed storage (a TPM, a secure element, PKCS#11):
//! the agent only asks it for a key to sign a CSR with, for the TLS identity, and to replace
//! the key on rotation. [`FileKeyStore`] keeps them as files in a state directory, the key
//! readable by its owner only (0600), written atomically so a crash mid-rotation leaves the
//! old identity or the new one, never half of each.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

/// What can go wrong with stored keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key could not be generated or read.
    #[error("key: {0}")]
    Key(String),
}

/// A device's stored identity: its private key (PEM, PKCS#8) and, once enrolled, its
/// certificate chain (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Certificate, PEM (absent until enrolled).
    pub cert_pem: Option<String>,
}

/// Storage for the device's key and certificate.
pub trait KeyStore: Send + Sync {
    /// The current identity, creating a key if there is none.
    fn load_or_create(&self) -> Result<StoredIdentity, KeyStoreError>;
    /// A fresh key for a rotation, kept aside until [`KeyStore::commit`].
    fn new_pending_key(&self) -> Result<String, KeyStoreError>;
    /// Makes `cert_pem` the current certificate; with `pending` the pending key becomes the
    /// current key in the same step.
    fn commit(&self, cert_pem: &str, pending: bool) -> Result<(), KeyStoreError>;
}

/// A key store in a directory: `device.key` (0600), `device.pem`, `device.key.new` while a
/// rotation is in flight.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Generates a P-256 key as PKCS#8 PEM.
pub fn generate_key() -> Result<String, KeyStoreError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| KeyStoreError::Key(e.to_string()))?;
    Ok(key.serialize_pem())
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename) with `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyStoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp).map_err(io(&tmp))?;
        file.write_all(contents).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}

impl FileKeyStore {
    /// A store in `dir` (created 0700 if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileKeyStore, KeyStoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        }
        Ok(FileKeyStore { dir })
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("device.key")
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("device.pem")
    }

    fn pending_path(&self) -> PathBuf {
        self.dir.join("device.key.new")
    }

    fn read_optional(path: &Path) -> Result<Option<String>, KeyStoreError> {
        match fs::read_to_string(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path)(e)),
        }
    }
}

impl KeyStore for FileKeyStore {
    fn load_or_create(&self) -> Result<StoredIdentity, KeyStoreError> {
        let key_path = self.key_path();
        let key_pem = match Self::read_optional(&key_path)? {
            Some(k) => k,
            None => {
                let k = generate_key()?;
                write_atomic(&key_path, k.as_bytes(), 0o600)?;
                k
            }
        };
        Ok(StoredIdentity {
            key_pem,
            cert_pem: Self::read_optional(&self.cert_path())?,
        })
    }

    fn new_pending_key(&self) -> Result<String, KeyStoreError> {
        let k = generate_key()?;
        write_atomic(&self.pending_path(), k.as_bytes(), 0o600)?;
        Ok(k)
    }

    fn commit(&self, cert_pem: &str, pending: bool) -> Result<(), KeyStoreError> {
        if pending {
            // The certificate first: a crash between the two renames leaves the new
            // certificate with the old key, which fails TLS and is re-enrolled from the
            // pending key still on disk.
            write_atomic(&self.cert_path(), cert_pem.as_bytes(), 0o644)?;
            let pending = self.pending_path();
            fs::rename(&pending, self.key_path()).map_err(io(&pending))
        } else {
            write_atomic(&self.cert_path(), cert_pem.as_bytes(), 0o644)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_rotation_swaps_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path().join("state")).unwrap();
        let first = store.load_or_create().unwrap();
        assert!(first.cert_pem.is_none());
        assert_eq!(
            store.load_or_create().unwrap().key_pem,
            first.key_pem,
            "kept"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("state/device.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.commit("CERT1", false).unwrap();
        let pending = store.new_pending_key().unwrap();
        assert_ne!(pending, first.key_pem);
        store.commit("CERT2", true).unwrap();
        let now = store.load_or_create().unwrap();
        assert_eq!(
            (now.key_pem, now.cert_pem.as_deref()),
            (pending, Some("CERT2"))
        );
    }
}
