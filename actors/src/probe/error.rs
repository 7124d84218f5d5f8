//! Why the prober cannot work at all (the node does not start).

/// The prober cannot work at all; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    /// Neither a raw nor a datagram ICMP socket could be opened.
    #[error("cannot open an ICMP socket: {error}")]
    IcmpSocket {
        /// The system's error, with what to do for permission errors.
        error: std::io::Error,
    },
}
