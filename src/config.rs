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
pub mod sources;
mod ssh;
mod targets;
pub mod text;
pub mod validate;

use std::path::Path;

pub use defaults::*;
pub use error::{ConfigError, Locator};
use raw::RawConfig;
pub use settings::{CookieSource, LogFormat, Overrides, Settings};
use sources::SourceReader;
use text::read_text;

/// Reads, parses and validates `path` with `overrides` applied; every source must be good.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let text = read(path)?;
    parse(path, &text, base_of(path), overrides)
}

/// This machine's host name (gethostname(2)), the node's name when none is configured.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The text of config file `path`.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    read_text(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        msg: format!("cannot read the config file: {e}"),
    })
}

/// The directory relative paths in config file `path` are relative to.
pub fn base_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Parses and validates config `text` (read from `path`; relative paths in it are relative to
/// `base`); every source must be good.
pub fn parse(
    path: &Path,
    text: &str,
    base: &Path,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    parse_with(path, text, base, overrides, SourceReader::first())
}

/// Like [`parse`], reading the target sources through `sources` (which knows their last good
/// content, and whether a failing one may keep it).
pub fn parse_with(
    path: &Path,
    text: &str,
    base: &Path,
    overrides: &Overrides,
    sources: SourceReader<'_>,
) -> Result<Settings, ConfigError> {
    let loc = Locator::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let msg = e.message().trim_end();
        match key_at(text, offset) {
            Some(key) if !msg.contains(&key) => loc.at(offset, format!("{key}: {msg}")),
            _ => loc.at(offset, msg.to_string()),
        }
    })?;
    validate::validate(raw, &loc, base, overrides, sources)
}

/// The dotted key whose value starts at `offset` (`probe.max_pps` for the `-5` of
/// `max_pps = -5` under `[probe]`), when the value is on its key's line; for messages from
/// serde, which name the type expected but not the key.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let key = before[line_start..].trim_end().strip_suffix('=')?.trim();
    let valid = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !valid(key) {
        return None;
    }
    // The table the line is in: the nearest header above it.
    let table = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let name = l
            .strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .or_else(|| l.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
        Some(name.trim().to_string())
    });
    Some(match table {
        Some(t) if valid(&t) => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
mod tests;
