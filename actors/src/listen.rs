//! Binding a listener whose address the process this one replaces may still hold.
//!
//! A deploy script or a service manager with a fast restart starts the new process while the
//! old one is still handing its targets over. The old one closes its listeners when its drain
//! starts; should it not have yet (it is slow, or stuck), the new one retries the bind for
//! [`BIND_RETRY`], saying so once, instead of exiting at once. Any other error, and an address
//! still taken after that, is returned.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

/// How long an address in use is retried.
pub const BIND_RETRY: Duration = Duration::from_secs(5);
/// The pause between two tries.
const PAUSE: Duration = Duration::from_millis(100);

/// Binds `addr` for `what` (named in the log line), retrying while the address is in use for
/// up to `within`.
pub async fn bind(addr: SocketAddr, what: &str, within: Duration) -> std::io::Result<TcpListener> {
    let tries = within.as_millis().div_ceil(PAUSE.as_millis()).max(1);
    let mut told = false;
    for _ in 0..tries {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if !std::mem::replace(&mut told, true) {
                    tracing::warn!(
                        %addr,
                        what,
                        "{addr} ({what}) is in use; retrying for up to {within:?} (the process this one replaces may still be stopping)"
                    );
                }
                tokio::time::sleep(PAUSE).await;
            }
            other => return other,
        }
    }
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_freed_while_retrying_is_taken_and_one_never_freed_is_an_error() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let l = bind(addr, "test", Duration::from_secs(5)).await.unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
        release.await.unwrap();

        let started = std::time::Instant::now();
        let e = bind(addr, "test", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
