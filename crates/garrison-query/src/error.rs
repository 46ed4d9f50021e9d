//! Why a query was refused: [`QueryError`].

/// A query that could not be parsed, with where and why.
///
/// Displays as `at 14: unknown field "modle" (did you mean "model"?)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
#[non_exhaustive]
pub struct QueryError {
    /// Byte offset into the query text where the problem was found.
    pub position: usize,
    /// What is wrong, as a sentence fragment for operators.
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}
