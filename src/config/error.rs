//! Configuration errors, each located: `PATH:LINE:COL`, or the command-line flag.

use std::path::{Path, PathBuf};

/// A configuration error, located in a file or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Something in a file, at a line and column.
    #[error("{}:{line}:{col}: {msg}", path.display())]
    At {
        /// The file (config or hosts file).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what is expected.
        msg: String,
    },
    /// A command-line flag.
    #[error("{flag}: {msg}")]
    Flag {
        /// The flag, e.g. `--listen`.
        flag: &'static str,
        /// What is wrong and what is expected.
        msg: String,
    },
    /// A file that cannot be read.
    #[error("{}: {msg}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
}

/// Turns byte offsets of one file into `PATH:LINE:COL` errors.
#[derive(Debug, Clone, Copy)]
pub struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator for `text`, read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Locator { path, text }
    }

    /// An error at byte `offset`.
    pub fn at(&self, offset: usize, msg: impl Into<String>) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::At {
            path: self.path.to_path_buf(),
            line,
            col,
            msg: msg.into(),
        }
    }
}
