//! Logging: structured `tracing` events to stderr, INFO by default, `RUST_LOG` to change; as
//! text lines, or one JSON object per line (`[log] format = "json"`, `--log-format json`).
//!
//! ractor's own per-actor spans and session chatter stay at WARN (ractor_cluster's at ERROR,
//! since membership logs every change that matters) whatever `RUST_LOG` says, unless it names
//! them (`RUST_LOG=info,ractor=debug`): `RUST_LOG=info`, as one tunes ringpoll, must not bury
//! its lines under the actor framework's. An empty `RUST_LOG` means the default, and a
//! `RUST_LOG` that does not parse is reported and replaced by the default.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset or empty.
const DEFAULT: &str = "info";
/// Added to every filter whose directives do not name these targets.
const QUIET: [&str; 2] = ["ractor=warn", "ractor_cluster=error"];

/// The filter for `RUST_LOG` = `spec`, and a complaint when `spec` does not parse.
fn filter(spec: Option<&str>) -> (EnvFilter, Option<String>) {
    let spec = spec.map(str::trim).filter(|s| !s.is_empty());
    let (mut filter, complaint, text) = match spec.map(|s| (s, EnvFilter::try_new(s))) {
        Some((s, Ok(f))) => (f, None, s),
        Some((s, Err(e))) => (
            EnvFilter::new(DEFAULT),
            Some(format!(
                "RUST_LOG={s:?} is not a valid filter ({e}); using {DEFAULT:?}"
            )),
            DEFAULT,
        ),
        None => (EnvFilter::new(DEFAULT), None, DEFAULT),
    };
    for quiet in QUIET {
        let target = quiet.split('=').next().unwrap_or(quiet);
        let named = text.split(',').any(|d| {
            let t = d.split(['=', '[']).next().unwrap_or("").trim();
            t == target || t.starts_with(&format!("{target}::"))
        });
        if !named {
            filter = filter.add_directive(quiet.parse().expect("a valid directive"));
        }
    }
    (filter, complaint)
}

/// Installs the global subscriber, writing `format` to stderr.
pub fn init(format: LogFormat) {
    let (filter, complaint) = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr is a pipe nobody reads any more: a closed
        // terminal, a dead collector) is dropped. Reporting it would be eprintln!, which
        // panics on the same broken pipe and took the node down with it.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line, the event's fields beside timestamp, level, target and message
        // (no span nesting: ringpoll's events carry what they mean in their own fields).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Some(c) = complaint {
        tracing::warn!("{c}");
    }
}

#[cfg(test)]
mod tests {
    use super::filter;

    fn shown(spec: Option<&str>) -> String {
        let (f, _) = filter(spec);
        f.to_string()
    }

    #[test]
    fn ractor_stays_quiet_unless_named_and_empty_means_the_default() {
        for spec in [None, Some(""), Some("  "), Some("info"), Some("debug")] {
            let f = shown(spec);
            assert!(
                f.contains("ractor=warn") && f.contains("ractor_cluster=error"),
                "{spec:?}: {f}"
            );
        }
        assert!(shown(Some("")).contains("info"));
        let f = shown(Some("info,ractor=debug"));
        assert!(
            f.contains("ractor=debug") && !f.contains("ractor=warn"),
            "{f}"
        );
        assert!(f.contains("ractor_cluster=error"), "{f}");
        let f = shown(Some("ractor_cluster::node=info"));
        assert!(!f.contains("ractor_cluster=error"), "{f}");
        let (f, complaint) = filter(Some("info,=bogus[["));
        assert!(complaint.is_some_and(|c| c.contains("is not a valid filter")));
        assert!(f.to_string().contains("info"));
    }
}
