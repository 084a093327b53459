//! What a flow is known by: its protocol and its two ends as the guest sees them.

use std::net::SocketAddr;

/// The protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo: the "port" is the echo identifier.
    Icmp,
}

/// A flow's key: protocol, the guest's address and port, the remote's as the guest sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: Proto,
    pub guest: SocketAddr,
    pub remote: SocketAddr,
}
