//! TCP connect probe: up when a connection to `port` is established within the timeout.
//!
//! The connection is closed at once (a normal FIN; nothing is sent). Refused connections (RST)
//! are `refused`, routing errors `unreachable`, silence `timeout`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};

use crate::model::{DownReason, ProbeOutcome};

/// Opens a TCP connection to `to`, from `source` if set (bound before connecting, any port).
pub async fn open(to: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(to).await;
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// Connects to `addr:port` (from `source` if set), waiting at most `timeout`.
pub async fn connect(
    addr: IpAddr,
    port: u16,
    source: Option<IpAddr>,
    timeout: Duration,
) -> ProbeOutcome {
    let started = Instant::now();
    match tokio::time::timeout(timeout, open(SocketAddr::new(addr, port), source)).await {
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
