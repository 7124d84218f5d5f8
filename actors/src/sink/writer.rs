//! Writers the sink hands batches to, on a blocking thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::Record;
use crate::sink::SinkError;

/// Writes batches of results somewhere. Runs on a blocking thread, one batch at a time.
pub trait ResultWriter: Send + std::fmt::Debug + 'static {
    /// Writes the whole batch, or fails without leaving a partial record behind.
    fn write_batch(&mut self, batch: &[Record]) -> std::io::Result<()>;

    /// What it writes to, for logs.
    fn describe(&self) -> String;
}

/// Appends one JSON object per line to a file.
///
/// A batch is serialised into memory first and appended with a single `write_all`, so lines are
/// never interleaved; if the write fails part-way (disk full), the file is truncated back to its
/// length before the batch, so it holds complete lines only and the batch can be retried.
#[derive(Debug)]
pub struct JsonLinesWriter {
    path: PathBuf,
    file: File,
    len: u64,
    buf: Vec<u8>,
}

impl JsonLinesWriter {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let open = || -> std::io::Result<(File, u64)> {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let len = file.metadata()?.len();
            Ok((file, len))
        };
        let (file, len) = open().map_err(|source| SinkError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonLinesWriter {
            path: path.to_path_buf(),
            file,
            len,
            buf: Vec::new(),
        })
    }
}

impl ResultWriter for JsonLinesWriter {
    fn describe(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }

    fn write_batch(&mut self, batch: &[Record]) -> std::io::Result<()> {
        self.buf.clear();
        for r in batch {
            match r {
                Record::Result(r) => serde_json::to_writer(&mut self.buf, &r.line()),
                Record::Event(e) => serde_json::to_writer(&mut self.buf, &e.line()),
            }
            .map_err(std::io::Error::other)?;
            self.buf.push(b'\n');
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Remove a partial batch; if even that fails, the next open sees the tail.
                if let Err(trunc) = self.file.set_len(self.len) {
                    tracing::warn!(path = %self.path.display(), error = %trunc, "could not cut a partial batch from the results file");
                }
                Err(err)
            }
        }
    }
}
