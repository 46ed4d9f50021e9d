//! The live view of who is revoked and who is quarantined, read on every broker connect,
//! publish and subscribe — so it lives in memory, behind locks held for a lookup only.
//!
//! It is loaded from the store at start and updated by [`IdentityService`](crate::IdentityService)
//! in the same call that changes the store; changes other replicas make to a shared store are
//! picked up by [`IdentityService::follow_store`](crate::IdentityService::follow_store).

use std::{
    collections::HashSet,
    sync::{PoisonError, RwLock},
};

use garrison_core::DeviceId;

/// Revoked certificate serials and quarantined devices.
#[derive(Debug, Default)]
pub struct Directory {
    revoked: RwLock<HashSet<String>>,
    quarantined: RwLock<HashSet<DeviceId>>,
}

impl Directory {
    pub(crate) fn new(
        revoked: impl IntoIterator<Item = String>,
        quarantined: impl IntoIterator<Item = DeviceId>,
    ) -> Directory {
        Directory {
            revoked: RwLock::new(revoked.into_iter().collect()),
            quarantined: RwLock::new(quarantined.into_iter().collect()),
        }
    }

    /// Whether the certificate with this serial (lowercase hex) has been revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(serial)
    }

    /// Whether the device is under the quarantine profile.
    pub fn is_quarantined(&self, device: &DeviceId) -> bool {
        self.quarantined
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(device)
    }

    pub(crate) fn add_revoked(&self, serial: &str) {
        self.revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(serial.to_owned());
    }

    pub(crate) fn set_quarantined(&self, device: &DeviceId, quarantined: bool) {
        let mut set = self
            .quarantined
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if quarantined {
            set.insert(device.clone());
        } else {
            set.remove(device);
        }
    }
}
