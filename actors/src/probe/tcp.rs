//! TCP connect probe: up when a connection to `port` is established within the timeout.
//!
//! The connection is closed at once (a normal FIN; nothing is sent). Refused connections (RST)
//! are `refused`, routing errors `unreachable`, silence `timeout`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::model::{DownReason, ProbeOutcome};

/// Connects to `addr:port`, waiting at most `timeout`.
pub async fn connect(addr: IpAddr, port: u16, timeout: Duration) -> ProbeOutcome {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(SocketAddr::new(addr, port))).await {
        Ok(Ok(stream)) => {
            let rtt = started.elapsed();
            drop(stream);
            ProbeOutcome::Up { rtt }
        }
        Ok(Err(err)) => ProbeOutcome::Down {
            reason: DownReason::from_io(&err),
        },
        Err(_) => ProbeOutcome::Down {
            reason: DownReason::Timeout,
        },
    }
}
