//! The store's one error type.

use garrison_core::InvalidId;

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong talking to storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key is taken (e.g. a username).
    #[error("{what} already exists")]
    Conflict {
        /// What collided, e.g. `operator "alice"`.
        what: String,
    },
    /// The record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A business rule refused the change (a used-up token, a request that is not pending).
    #[error("{reason}")]
    Refused {
        /// What stands in the way, phrased for the person who asked.
        reason: String,
    },
    /// A stored value could not be read back as its domain type: the database was edited by
    /// something other than Garrison.
    #[error("stored {what} is invalid: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The URL names no supported backend.
    #[error("unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl {
        /// The URL with its password redacted.
        url: String,
    },
    /// Could not connect.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with its password redacted.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether trying again may succeed: connection and pool trouble, SQLite's busy and
    /// locked states, PostgreSQL serialization failures, deadlocks and restarts. Anything else
    /// (a constraint, bad data) will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    matches!(
                        code.as_ref(),
                        "5" | "6"
                            | "261"
                            | "262"
                            | "517"
                            | "40001"
                            | "40P01"
                            | "55P03"
                            | "57P01"
                            | "57P02"
                            | "57P03"
                    ) || code.starts_with("08")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

impl From<InvalidId> for StoreError {
    fn from(e: InvalidId) -> Self {
        StoreError::corrupt(e.kind, e)
    }
}

/// Maps a unique-key violation to [`StoreError::Conflict`], everything else to `Database`.
pub(crate) fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what: what() }
        }
        _ => StoreError::Database(e),
    }
}
