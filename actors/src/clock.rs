//! The actors' clock: tokio's (paused and advanced by tests), read as a std [`Instant`] for
//! the pure modules, which take time as an argument.

use std::time::Instant;

/// Now, by tokio's clock.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
