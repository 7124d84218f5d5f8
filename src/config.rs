//! `config.toml`: read, parse, validate.
//!
//! - [`raw`]: the serde mirror of the file (every key optional where it has a default, spans
//!   kept for errors; unknown keys rejected).
//! - [`validate`]: raw → [`Settings`], one function per section; every error names where it is
//!   (`PATH:LINE:COL`), what is wrong and what is expected, and nothing starts
//!   half-configured. [`targets`] expands `[[targets]]` groups, [`ssh`] loads their SSH keys.
//! - [`settings`]: the validated result, and the command-line [`Overrides`].
//! - [`defaults`]: the default of every key; [`error`]: [`ConfigError`] and its locator.
//!
//! Durations are strings such as `"30s"` or `"500ms"` (humantime).

pub mod defaults;
pub mod error;
pub mod raw;
pub mod settings;
mod ssh;
mod targets;
pub mod validate;

use std::path::Path;

pub use defaults::*;
pub use error::{ConfigError, Locator};
use raw::RawConfig;
pub use settings::{CookieSource, Overrides, Settings};

/// Reads, parses and validates `path` with `overrides` applied.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        msg: format!("cannot read the config file: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(path, &text, base, overrides)
}

/// Parses and validates config `text` (read from `path`; relative paths in it are relative to
/// `base`).
pub fn parse(
    path: &Path,
    text: &str,
    base: &Path,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let loc = Locator::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        loc.at(offset, e.message().trim_end().to_string())
    })?;
    validate::validate(raw, &loc, base, overrides)
}

#[cfg(test)]
mod tests;
