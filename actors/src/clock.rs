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

/// A duration in milliseconds, rounded to the microsecond, as result lines carry times. Rounded
/// on the integer nanoseconds, so one duration always gives one value (through f64 seconds,
/// 84.5 µs could round to 0.084 on one path and 0.085 on another).
pub fn ms(d: Duration) -> f64 {
    (d.as_nanos().saturating_add(500) / 1000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn milliseconds_are_rounded_to_the_microsecond_half_up() {
        use std::time::Duration;
        assert_eq!(super::ms(Duration::from_nanos(84_500)), 0.085);
        assert_eq!(super::ms(Duration::from_nanos(84_499)), 0.084);
        assert_eq!(super::ms(Duration::from_millis(1_234)), 1_234.0);
    }
}
