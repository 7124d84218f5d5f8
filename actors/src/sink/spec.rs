//! Where results go, as configured under `[results]` and `[[sinks]]`.

use std::path::PathBuf;
use std::time::Duration;

use super::error::SinkError;
use super::sqlite::SqliteWriter;
use super::writer::{JsonLinesWriter, ResultWriter};

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
            SinkSpec::Sqlite { path, retention } => Box::new(SqliteWriter::open(path, *retention)?),
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
