//! Counters of what the engine saw, sent and dropped; cheap enough to bump on every frame.
//! Each counter is listed once, below: the struct, its `Display` and [`Counters::named`] (what
//! `get_info` reports) come from that list.

use crate::engine::DropReason;

/// Defines [`Counters`] from one list of documented names.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Counts of what the engine saw, sent and dropped since it was made.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[doc = $doc])+ pub $name: u64,)+
        }

        impl Counters {
            /// Every counter with its name, in a fixed order.
            pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)+].into_iter()
            }
        }
    };
}

counters! {
    /// Frames from the guest.
    frames_in,
    /// Bytes of frames from the guest.
    bytes_in,
    /// Frames to the guest.
    frames_out,
    /// Bytes of frames to the guest.
    bytes_out,
    /// Frames dropped as malformed (see [`crate::DropReason`] for each reason).
    dropped_malformed,
    /// Frames dropped as of a kind the engine does not handle.
    dropped_unsupported,
    /// Frames dropped as addressed to somebody the engine does not stand for.
    dropped_not_for_us,
    /// Frames to the guest dropped for want of room.
    dropped_tx_queue_full,
    /// New flows refused because the flow table was full.
    dropped_flow_table_full,
    /// Frames dropped because their destination is not allowed.
    dropped_refused,
    /// Frames dropped because a host socket could not be made or used.
    dropped_host_socket,
    /// IP fragments whose datagram was given up (overlapping pieces, too many, no room).
    dropped_fragments,
    /// Datagrams for the guest given up while its MAC was unknown (it did not answer, or too
    /// many were waiting).
    dropped_unresolved,
    /// IP fragments from the guest.
    ip_fragments_in,
    /// IP datagrams put back together from the guest's fragments.
    ip_reassembled,
    /// ARP replies sent for the virtual hosts.
    arp_replies,
    /// ARP replies received from the guest.
    arp_replies_received,
    /// Echo replies sent by the virtual hosts themselves.
    icmp_echo_replies,
    /// ICMP errors sent to the guest (unreachable destinations).
    icmp_errors_sent,
    /// Flows (TCP connections, UDP flows, echo flows, spliced connections) opened.
    flows_opened,
    /// Connections into the guest (port forwards, SOCKS5, Engine::connect).
    forwarded_connections,
    /// TCP payload bytes from the guest passed on.
    tcp_bytes_from_guest,
    /// TCP payload bytes sent to the guest.
    tcp_bytes_to_guest,
    /// TCP segments retransmitted to the guest after a timeout (and tail loss probes).
    tcp_retransmits,
    /// TCP segments retransmitted to the guest in recovery started by its duplicate ACKs or
    /// SACKs.
    tcp_fast_retransmits,
    /// TCP payload bytes retransmitted to the guest, however.
    tcp_bytes_retransmitted,
    /// Loss recoveries started by the guest's duplicate ACKs or SACKs.
    tcp_loss_recoveries,
    /// Retransmission timeouts toward the guest.
    tcp_timeouts,
    /// Tail loss probes sent to the guest.
    tcp_tail_probes,
    /// Retransmissions found lost again (the guest SACKed later data, the hole stayed).
    tcp_lost_retransmits,
    /// Guest segments held because they came beyond a hole (or the host socket was full).
    tcp_segments_held,
    /// Guest segments (or parts) that could not be held: beyond the window or out of room.
    tcp_segments_not_held,
    /// TCP resets sent to the guest.
    tcp_resets,
    /// UDP datagrams from the guest passed on.
    udp_datagrams_from_guest,
    /// Sends to the host that carried several of the guest's UDP datagrams at once (UDP GSO).
    udp_segmented_sends,
    /// UDP datagrams sent to the guest.
    udp_datagrams_to_guest,
    /// Router and neighbour advertisements sent (IPv6).
    ndp_adverts,
    /// DHCPv6 replies sent.
    dhcpv6_replies,
    /// DHCPv4 replies sent.
    dhcp_replies,
    /// Frames from the guest whose checksum its kernel left to us (offloads).
    partial_checksums_in,
    /// TCP super-packets sent to the guest (offloads).
    super_packets_out,
}

impl Counters {
    /// Counts one frame dropped for `reason`.
    pub fn count_drop(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Malformed => &mut self.dropped_malformed,
            DropReason::Unsupported => &mut self.dropped_unsupported,
            DropReason::NotForUs => &mut self.dropped_not_for_us,
            DropReason::TxQueueFull => &mut self.dropped_tx_queue_full,
            DropReason::FlowTableFull => &mut self.dropped_flow_table_full,
            DropReason::Refused => &mut self.dropped_refused,
            DropReason::HostSocket => &mut self.dropped_host_socket,
            DropReason::Fragments => &mut self.dropped_fragments,
            DropReason::Unresolved => &mut self.dropped_unresolved,
        };
        *counter += 1;
    }

    /// Frames dropped, whatever the reason: the sum of the `dropped_` counters.
    pub fn dropped(&self) -> u64 {
        self.named()
            .filter(|(name, _)| name.starts_with("dropped_"))
            .map(|(_, value)| value)
            .sum()
    }
}

impl std::fmt::Display for Counters {
    /// `name value` pairs, the zero ones left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, value) in self.named().filter(|&(_, value)| value != 0) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name} {value}")?;
        }
        if first {
            f.write_str("nothing counted")?;
        }
        Ok(())
    }
}
