//! `--pcap FILE` and `--debug`: every frame crossing the guest side, both ways, into a pcap
//! file (Ethernet link type, as tcpdump or tshark read it) and/or as a one-line summary on
//! stderr. TAP offloads make some frames up to 64 KiB (TCP super-packets), as a capture on a
//! Linux interface with GSO shows them too.

use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, UdpPacket,
};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// The capture, shared by the loops of all TAP queues.
pub(crate) type SharedCapture = Arc<Mutex<Capture>>;

/// Largest frame recorded whole (a TCP super-packet and its headers fit).
const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    FromGuest,
    ToGuest,
}

/// Where frames are recorded: a pcap file, one-line summaries on stderr, or both.
pub struct Capture {
    pcap: Option<BufWriter<File>>,
    debug: bool,
    /// Set after a write failed: one warning, then no more writes.
    failed: bool,
}

impl Capture {
    /// A capture writing to `pcap` (created, or truncated) and/or summarising to stderr.
    pub fn open(pcap: Option<&Path>, debug: bool) -> io::Result<Capture> {
        let pcap = match pcap {
            Some(path) => {
                let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
                // pcap global header: magic (microsecond timestamps), version 2.4, UTC,
                // accuracy 0, snap length, link type.
                out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
                out.write_all(&2u16.to_le_bytes())?;
                out.write_all(&4u16.to_le_bytes())?;
                for field in [0u32, 0, SNAPLEN, LINKTYPE_ETHERNET] {
                    out.write_all(&field.to_le_bytes())?;
                }
                out.flush()?;
                Some(out)
            }
            None => None,
        };
        Ok(Capture {
            pcap,
            debug,
            failed: false,
        })
    }

    /// The capture, for the loops of several TAP queues.
    pub(crate) fn shared(self) -> SharedCapture {
        Arc::new(Mutex::new(self))
    }

    /// The capture behind `shared`, for this thread (a panic elsewhere does not stop it).
    pub(crate) fn lock(shared: &SharedCapture) -> MutexGuard<'_, Capture> {
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one frame.
    pub(crate) fn frame(&mut self, direction: Direction, frame: &[u8]) {
        if self.debug {
            let arrow = match direction {
                Direction::FromGuest => "guest >",
                Direction::ToGuest => "guest <",
            };
            eprintln!("{arrow} {}", summary(frame));
        }
        if self.failed {
            return;
        }
        if let Some(out) = &mut self.pcap {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            let kept = len.min(SNAPLEN);
            let header = [now.as_secs() as u32, now.subsec_micros(), kept, len];
            let written = header
                .iter()
                .try_for_each(|field| out.write_all(&field.to_le_bytes()))
                .and_then(|()| out.write_all(&frame[..kept as usize]));
            if let Err(e) = written {
                self.fail(e);
            }
        }
    }

    /// Pushes what is buffered to the file (once per turn of the loop).
    pub(crate) fn flush(&mut self) {
        if self.failed {
            return;
        }
        if let Some(Err(e)) = self.pcap.as_mut().map(Write::flush) {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: io::Error) {
        log::warn!("pcap: {e}; capture stopped");
        self.failed = true;
    }
}

/// One line saying what a frame is: ARP, or the IP addresses and ports, TCP flags, lengths.
pub(crate) fn summary(frame: &[u8]) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("runt frame, {} bytes", frame.len());
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => match ArpPacket::new_checked(eth.payload()) {
            Ok(arp) => {
                let addr = |b: &[u8]| {
                    <[u8; 4]>::try_from(b)
                        .map(|o| std::net::Ipv4Addr::from(o).to_string())
                        .unwrap_or_default()
                };
                match arp.operation() {
                    ArpOperation::Request => format!(
                        "ARP who-has {} tell {}",
                        addr(arp.target_protocol_addr()),
                        addr(arp.source_protocol_addr())
                    ),
                    _ => format!(
                        "ARP {} is-at {}",
                        addr(arp.source_protocol_addr()),
                        smoltcp::wire::EthernetAddress::from_bytes(arp.source_hardware_addr())
                    ),
                }
            }
            Err(_) => "ARP, malformed".into(),
        },
        EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(eth.payload()) {
            Ok(ip) => transport(
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.next_header(),
                ip.payload(),
            ),
            Err(_) => "IPv4, malformed".into(),
        },
        EthernetProtocol::Ipv6 => match Ipv6Packet::new_checked(eth.payload()) {
            Ok(ip) => transport(
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                ip.next_header(),
                ip.payload(),
            ),
            Err(_) => "IPv6, malformed".into(),
        },
        other => format!("ethertype {other}, {} bytes", frame.len()),
    }
}

fn transport(src: IpAddr, dst: IpAddr, protocol: IpProtocol, payload: &[u8]) -> String {
    match protocol {
        IpProtocol::Tcp => match TcpPacket::new_checked(payload) {
            Ok(tcp) => {
                let mut flags = String::new();
                for (set, name) in [
                    (tcp.syn(), 'S'),
                    (tcp.fin(), 'F'),
                    (tcp.rst(), 'R'),
                    (tcp.psh(), 'P'),
                    (tcp.ack(), '.'),
                ] {
                    if set {
                        flags.push(name);
                    }
                }
                let mut line = format!(
                    "TCP {} > {} [{flags}] seq {}",
                    endpoint(src, tcp.src_port()),
                    endpoint(dst, tcp.dst_port()),
                    tcp.seq_number().0 as u32
                );
                if tcp.ack() {
                    let _ = write!(line, " ack {}", tcp.ack_number().0 as u32);
                }
                let data = payload.len().saturating_sub(usize::from(tcp.header_len()));
                let _ = write!(line, " win {} len {data}", tcp.window_len());
                line
            }
            Err(_) => format!("TCP {src} > {dst}, malformed"),
        },
        IpProtocol::Udp => match UdpPacket::new_checked(payload) {
            Ok(udp) => format!(
                "UDP {} > {} len {}",
                endpoint(src, udp.src_port()),
                endpoint(dst, udp.dst_port()),
                udp.payload().len()
            ),
            Err(_) => format!("UDP {src} > {dst}, malformed"),
        },
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            let (kind, code) = (payload.first(), payload.get(1));
            format!(
                "{protocol} {src} > {dst} type {} code {}",
                kind.copied().unwrap_or_default(),
                code.copied().unwrap_or_default()
            )
        }
        other => format!("{other} {src} > {dst}, {} bytes", payload.len()),
    }
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_what_a_frame_is() {
        // ARP who-has 10.0.2.2 tell 10.0.2.100.
        let arp = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06, 0, 1,
            8, 0, 6, 4, 0, 1, 2, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 0, 2, 100, 0, 0, 0, 0, 0, 0, 10,
            0, 2, 2,
        ];
        assert_eq!(summary(&arp), "ARP who-has 10.0.2.2 tell 10.0.2.100");
        assert_eq!(summary(&arp[..10]), "runt frame, 10 bytes");
        let mut truncated_ip = arp[..14].to_vec();
        truncated_ip[12..14].copy_from_slice(&[0x08, 0x00]);
        truncated_ip.extend_from_slice(&[0x45, 0]);
        assert_eq!(summary(&truncated_ip), "IPv4, malformed");
    }

    #[test]
    fn the_pcap_file_starts_with_its_header_and_holds_each_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let mut capture = Capture::open(Some(&path), false).unwrap();
        capture.frame(Direction::FromGuest, &[1; 60]);
        capture.frame(Direction::ToGuest, &[2; 14]);
        capture.flush();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(bytes.len(), 24 + 16 + 60 + 16 + 14);
        assert_eq!(&bytes[24 + 8..24 + 16], &[60, 0, 0, 0, 60, 0, 0, 0]);
    }
}
