//! Writers the sink hands batches to, on a blocking thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::SinkError;
use crate::model::Record;

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
        let (file, len) = open()
            .and_then(|(file, len)| {
                let len = cut_partial_line(&file, path, len)?;
                Ok((file, len))
            })
            .map_err(|error| SinkError::Open {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(JsonLinesWriter {
            path: path.to_path_buf(),
            file,
            len,
            buf: Vec::new(),
        })
    }
}

/// A regular file that does not end with a newline ends with a line cut short (the process
/// was killed mid-write, or a truncation failed): that line was never complete, so it is cut
/// off, and lines appended after it stay whole. Returns the file's length afterwards.
fn cut_partial_line(file: &File, path: &Path, len: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    if len == 0 || !file.metadata()?.is_file() {
        return Ok(len);
    }
    let mut reader = File::open(path)?;
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(part)?;
        if first && part.last() == Some(&b'\n') {
            return Ok(len);
        }
        first = false;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    file.set_len(end)?;
    tracing::warn!(path = %path.display(), cut = len - end, "the results file ended with a partial line (a crash mid-write?); it was cut off");
    Ok(end)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reopened(content: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, content).unwrap();
        let w = JsonLinesWriter::open(&path).unwrap();
        assert_eq!(w.len, std::fs::metadata(&path).unwrap().len());
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_removed_on_open() {
        assert_eq!(reopened(b""), b"");
        assert_eq!(
            reopened(b"{\"a\":1}\n{\"b\":2}\n"),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(reopened(b"{\"a\":1}\n{\"b\":"), b"{\"a\":1}\n");
        assert_eq!(reopened(b"{\"a\""), b"");
        // A partial tail longer than one read chunk, after a long file.
        let mut long = vec![b'x'; 100_000];
        long.push(b'\n');
        let whole = long.len();
        long.extend(std::iter::repeat_n(b'y', 150_000));
        assert_eq!(reopened(&long).len(), whole);
    }
}
