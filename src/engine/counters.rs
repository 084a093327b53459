//! Counters of what the engine saw, sent and dropped; cheap enough to bump on every frame.

use super::Drop;

/// Counts of what the engine saw, sent and dropped since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames from the guest.
    pub frames_in: u64,
    /// Bytes of frames from the guest.
    pub bytes_in: u64,
    /// Frames to the guest.
    pub frames_out: u64,
    /// Bytes of frames to the guest.
    pub bytes_out: u64,
    /// Frames dropped as malformed (see [`crate::DropReason`] for each reason).
    pub dropped_malformed: u64,
    /// Frames dropped as of a kind the engine does not handle.
    pub dropped_unsupported: u64,
    /// Frames dropped as addressed to somebody the engine does not stand for.
    pub dropped_not_for_us: u64,
    /// Frames to the guest dropped for want of room.
    pub dropped_tx_queue_full: u64,
    /// New flows refused because the flow table was full.
    pub dropped_flow_table_full: u64,
    /// Frames dropped because their destination is not allowed.
    pub dropped_refused: u64,
    /// Frames dropped because a host socket could not be made or used.
    pub dropped_host_socket: u64,
    /// IP fragments whose datagram was given up (overlapping pieces, too many, no room).
    pub dropped_fragments: u64,
    /// IP fragments from the guest.
    pub ip_fragments_in: u64,
    /// IP datagrams put back together from the guest's fragments.
    pub ip_reassembled: u64,
    /// ARP replies sent for the virtual hosts.
    pub arp_replies: u64,
    /// ARP replies received from the guest.
    pub arp_replies_received: u64,
    /// Echo replies sent by the virtual hosts themselves.
    pub icmp_echo_replies: u64,
    /// ICMP errors sent to the guest (unreachable destinations).
    pub icmp_errors_sent: u64,
    /// Flows (TCP connections, UDP flows, echo flows) opened.
    pub flows_opened: u64,
    /// Connections into the guest (port forwards, SOCKS5, Engine::connect).
    pub forwarded_connections: u64,
    /// TCP payload bytes from the guest passed on.
    pub tcp_bytes_from_guest: u64,
    /// TCP payload bytes sent to the guest.
    pub tcp_bytes_to_guest: u64,
    /// TCP segments retransmitted to the guest after a timeout (and tail loss probes).
    pub tcp_retransmits: u64,
    /// TCP segments retransmitted to the guest in recovery started by its duplicate ACKs or
    /// SACKs.
    pub tcp_fast_retransmits: u64,
    /// TCP payload bytes retransmitted to the guest, however.
    pub tcp_bytes_retransmitted: u64,
    /// Loss recoveries started by the guest's duplicate ACKs or SACKs.
    pub tcp_loss_recoveries: u64,
    /// Retransmission timeouts toward the guest.
    pub tcp_timeouts: u64,
    /// Tail loss probes sent to the guest.
    pub tcp_tail_probes: u64,
    /// Retransmissions found lost again (the guest SACKed later data, the hole stayed).
    pub tcp_lost_retransmits: u64,
    /// Guest segments held because they came beyond a hole (or the host socket was full).
    pub tcp_segments_held: u64,
    /// Guest segments (or parts) that could not be held: beyond the window or out of room.
    pub tcp_segments_not_held: u64,
    /// TCP resets sent to the guest.
    pub tcp_resets: u64,
    /// UDP datagrams from the guest passed on.
    pub udp_datagrams_from_guest: u64,
    /// UDP datagrams sent to the guest.
    pub udp_datagrams_to_guest: u64,
    /// Router and neighbour advertisements sent (IPv6).
    pub ndp_adverts: u64,
    /// DHCPv6 replies sent.
    pub dhcpv6_replies: u64,
    /// DHCPv4 replies sent.
    pub dhcp_replies: u64,
    /// Frames from the guest whose checksum its kernel left to us (offloads).
    pub partial_checksums_in: u64,
    /// TCP super-packets sent to the guest (offloads).
    pub super_packets_out: u64,
}

impl Counters {
    /// Counts one frame dropped for `reason`.
    pub fn count_drop(&mut self, reason: Drop) {
        let counter = match reason {
            Drop::Malformed => &mut self.dropped_malformed,
            Drop::Unsupported => &mut self.dropped_unsupported,
            Drop::NotForUs => &mut self.dropped_not_for_us,
            Drop::TxQueueFull => &mut self.dropped_tx_queue_full,
            Drop::FlowTableFull => &mut self.dropped_flow_table_full,
            Drop::Refused => &mut self.dropped_refused,
            Drop::HostSocket => &mut self.dropped_host_socket,
            Drop::Fragments => &mut self.dropped_fragments,
        };
        *counter += 1;
    }

    /// Frames dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_unsupported
            + self.dropped_not_for_us
            + self.dropped_tx_queue_full
            + self.dropped_flow_table_full
            + self.dropped_refused
            + self.dropped_host_socket
            + self.dropped_fragments
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frames in {} ({} bytes), out {} ({} bytes); dropped: malformed {}, unsupported {}, \
             not for us {}, tx queue full {}, flow table full {}, refused {}, host socket {}, \
             fragments {}; ip fragments in {}, reassembled {}; \
             arp replies {} (received {}), echo replies {}, icmp errors {}; flows opened {}, forwarded connections {}; \
             tcp bytes from guest {}, to guest {}, retransmits {}, fast retransmits {}, \
             bytes retransmitted {}, loss recoveries {}, timeouts {}, tail probes {}, \
             lost retransmits {}, segments held {} (not held {}), resets {}; udp datagrams from guest {}, to guest {}; ndp adverts {}, \
             dhcpv6 replies {}, dhcp replies {}; offloads: partial checksums in {}, super-packets out {}",
            self.frames_in,
            self.bytes_in,
            self.frames_out,
            self.bytes_out,
            self.dropped_malformed,
            self.dropped_unsupported,
            self.dropped_not_for_us,
            self.dropped_tx_queue_full,
            self.dropped_flow_table_full,
            self.dropped_refused,
            self.dropped_host_socket,
            self.dropped_fragments,
            self.ip_fragments_in,
            self.ip_reassembled,
            self.arp_replies,
            self.arp_replies_received,
            self.icmp_echo_replies,
            self.icmp_errors_sent,
            self.flows_opened,
            self.forwarded_connections,
            self.tcp_bytes_from_guest,
            self.tcp_bytes_to_guest,
            self.tcp_retransmits,
            self.tcp_fast_retransmits,
            self.tcp_bytes_retransmitted,
            self.tcp_loss_recoveries,
            self.tcp_timeouts,
            self.tcp_tail_probes,
            self.tcp_lost_retransmits,
            self.tcp_segments_held,
            self.tcp_segments_not_held,
            self.tcp_resets,
            self.udp_datagrams_from_guest,
            self.udp_datagrams_to_guest,
            self.ndp_adverts,
            self.dhcpv6_replies,
            self.dhcp_replies,
            self.partial_checksums_in,
            self.super_packets_out
        )
    }
}
