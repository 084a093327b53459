//! Offload metadata of frames: what the guest's kernel left undone in a frame it sent (so the
//! engine need not check it), and what the engine leaves undone in a frame to the guest (so the
//! guest's kernel takes it as done). The TAP carries it in a virtio-net header.

/// What the header of a frame from the guest says, as far as the engine cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxOffload {
    /// The transport checksum need not (or cannot) be verified: it is partial (to be filled by
    /// "hardware") or the kernel verified it already.
    pub checksum_trusted: bool,
    /// A UDP super-datagram, to be sent on as datagrams of this many payload bytes (USO).
    pub udp_segment: Option<u16>,
}

/// What a frame to the guest leaves to the guest's kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// Where the checksum to fill starts (from the frame's first byte) and where in there it
    /// goes; `None` for a frame whose checksums are all complete.
    pub partial_checksum: Option<(u16, u16)>,
    /// A TCP super-packet: its segment size, whether it is IPv6, and its header length.
    pub tcp_segments: Option<TcpGso>,
    /// A UDP super-datagram: its datagrams' size and its header length.
    pub udp_segments: Option<UdpGso>,
}

/// A UDP super-datagram to the guest (USO): one frame standing for datagrams of one size
/// (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpGso {
    /// The UDP payload of each datagram.
    pub segment_size: u16,
    /// The bytes of headers (Ethernet, IP, UDP) before the payload.
    pub header_len: u16,
}

/// A TCP super-packet to the guest (GSO): one frame standing for many segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpGso {
    /// The TCP payload of each segment the super-packet stands for.
    pub segment_size: u16,
    /// Whether it is TCP over IPv6.
    pub ipv6: bool,
    /// The bytes of headers (Ethernet, IP, TCP) before the payload.
    pub header_len: u16,
}
