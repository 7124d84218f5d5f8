//! Why a sink cannot start.

use std::path::PathBuf;

/// The sink cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The results file cannot be opened for appending.
    #[error("cannot open results file {path}: {error}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}
