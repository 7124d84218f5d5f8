//! The result sink: a bounded buffer in front of a writer.
//!
//! - [`batch`]: the bounded buffer and its overflow policy (pure).
//! - [`writer`]: the [`ResultWriter`] trait and the JSON-lines file writer.
//! - [`actor`]: the [`ResultSink`](actor::ResultSink) actor.
//!
//! Results are appended to the buffer as they arrive; the buffer is handed to the writer, on a
//! blocking thread, at least every `flush_interval` and whenever a batch is full. While the
//! writer is busy or failing, results wait in the buffer; when the buffer is full the oldest are
//! dropped and counted (logged at most once per flush interval). A failed write is retried on the
//! next flush, so a writer that recovers (disk space freed) loses nothing that still fit.

pub mod actor;
pub mod batch;
pub mod sqlite;
pub mod writer;

pub use actor::{DrainReport, ResultSink, SinkArgs, SinkMsg, SinkStatus};
pub use writer::{JsonLinesWriter, ResultWriter};

use std::path::PathBuf;
use std::time::Duration;

/// One place results go (`[[sinks]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// A JSON-lines file, appended to.
    Jsonl {
        /// The file.
        path: PathBuf,
    },
    /// A SQLite database (WAL): `latest` and `events` tables.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Rows older than this are deleted; `None` keeps everything.
        retention: Option<Duration>,
    },
}

impl SinkSpec {
    /// Opens the writer.
    pub fn open(&self) -> Result<Box<dyn ResultWriter>, SinkError> {
        Ok(match self {
            SinkSpec::Jsonl { path } => Box::new(JsonLinesWriter::open(path)?),
            SinkSpec::Sqlite { path, retention } => {
                Box::new(sqlite::SqliteWriter::open(path, *retention)?)
            }
        })
    }
}

/// The sink's settings, as configured under `[results]` and `[[sinks]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkSettings {
    /// Where results go (at least one).
    pub sinks: Vec<SinkSpec>,
    /// Results held in memory at most while the writer is busy or failing.
    pub buffer: usize,
    /// Longest time a result waits before it is written.
    pub flush_interval: Duration,
}

/// The sink cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The results file cannot be opened for appending.
    #[error("cannot open results file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
