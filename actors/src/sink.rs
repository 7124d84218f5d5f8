//! The result sink: a bounded buffer in front of a writer.
//!
//! - [`batch`]: the bounded buffer and its overflow policy (pure).
//! - [`writer`]: the [`ResultWriter`] trait and the JSON-lines file writer; [`sqlite`]: the
//!   SQLite writer.
//! - [`spec`]: where results go, as configured; [`error`]: why a writer cannot open.
//! - [`actor`]: the [`ResultSink`](actor::ResultSink) actor.
//!
//! A new output format is a new [`ResultWriter`] and a [`SinkSpec`] variant; no actor changes.
//!
//! Results are appended to the buffer as they arrive; the buffer is handed to the writer, on a
//! blocking thread, at least every `flush_interval` and whenever a batch is full. While the
//! writer is busy or failing, results wait in the buffer; when the buffer is full the oldest are
//! dropped and counted (logged at most once per flush interval). A failed write is retried on the
//! next flush, so a writer that recovers (disk space freed) loses nothing that still fit.

pub mod actor;
pub mod batch;
pub mod error;
pub mod spec;
pub mod sqlite;
pub mod writer;

pub use actor::{DrainReport, ResultSink, SinkArgs, SinkMsg, SinkStatus};
pub use error::SinkError;
pub use spec::{SinkSettings, SinkSpec};
pub use writer::{JsonLinesWriter, ResultWriter};
