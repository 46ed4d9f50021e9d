//! The monitor's errors.

/// What can go wrong setting up or running monitoring.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A playbook file is malformed.
    #[error("playbooks in {file}: {reason}")]
    Playbook {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A threat-intelligence file is malformed.
    #[error("threat intelligence in {file}, line {line}: {reason}")]
    Intel {
        /// The file.
        file: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The detection rules did not load.
    #[error("detection rules: {0}")]
    Rules(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] garrison_store::StoreError),
    /// A request cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
    /// No such thing.
    #[error("{0} not found")]
    NotFound(String),
}
