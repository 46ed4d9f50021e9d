//! The errors a caller can act on: a path that cannot be read, a rule set that cannot be built.

use std::path::PathBuf;

/// Why detection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A rule path given by the caller does not exist or cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The rules that loaded one by one could not be combined (for example a cycle between
    /// correlation rules, or a filter that cannot be applied).
    #[error("the rule set cannot be built: {0}")]
    Build(String),
}
