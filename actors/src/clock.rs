//! The actors' clock: tokio's (paused and advanced by tests), read as a std [`Instant`] for
//! the pure modules, which take time as an argument.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Now, by tokio's clock.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock time since the Unix epoch (zero for a clock set before it), which slots and
/// rounds are counted from.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
