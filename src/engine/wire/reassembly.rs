//! reassembly - IPv4 and IPv6 fragments from the guest, put back together.
//!
//! A guest at MTU 1500 fragments any datagram larger than that (DNS with EDNS, VXLAN, NFS,
//! `ping -s 4000`): its pieces are gathered per (source, destination, protocol, id) until the
//! datagram is whole, then it goes on as if it had come in one packet. Memory is bounded: all
//! datagrams in progress together, and those of one source address, each have a cap (the
//! oldest, of the source or of all, give way to a new one), a datagram not whole 30 s after its
//! first piece is given up, and so is one whose pieces overlap (RFC 5722; an exact duplicate
//! is only ignored) or that has too many pieces.

use crate::engine::{DropReason, Engine, GuestPacket, Pending, TxQueue};
use smoltcp::wire::{EthernetAddress, IpProtocol};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a datagram may take to be whole.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Most pieces of one datagram.
const MAX_PIECES: usize = 256;
/// Most bytes of a reassembled payload (an IPv6 payload length; an IPv4 datagram less its
/// header).
const MAX_PAYLOAD: usize = 65535;
/// What a datagram in progress costs beyond its bytes (table entries, piece list), counted
/// against the caps so that many tiny pieces cannot grow memory unseen.
const ENTRY_COST: usize = 256;

/// A fragment from the guest, checked: where it belongs and which bytes of its datagram's
/// payload it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The protocol after the IP header (IPv4) or after the fragment header (IPv6).
    pub protocol: u8,
    pub id: u32,
    /// Offset of these bytes in the payload.
    pub offset: usize,
    /// More pieces follow (this is not the last).
    pub more: bool,
    pub bytes: &'a [u8],
}

/// An IP packet from the guest: whole, or a piece of a datagram (with its sender's MAC).
pub(crate) enum Parsed<'a> {
    Whole(GuestPacket<'a>),
    Piece(EthernetAddress, Piece<'a>),
}

impl Engine {
    /// A piece of a datagram from the guest: kept until the datagram is whole, which then goes
    /// on as one packet (after what the batch gathered so far, to keep the guest's order).
    pub(in crate::engine) fn handle_piece<'a>(
        &mut self,
        now: Instant,
        mac: EthernetAddress,
        piece: &Piece,
        tx: &mut TxQueue,
        pending: &mut Pending<'a>,
    ) -> Result<(), DropReason> {
        self.core.cx.counters.ip_fragments_in += 1;
        let Added::Whole(whole) = self.core.reassembly.add(now, piece)? else {
            return Ok(());
        };
        self.core.cx.counters.ip_reassembled += 1;
        pending.flush(&mut self.core, &mut self.flows, now, tx);
        let protocol = IpProtocol::from(piece.protocol);
        let (protocol, payload) = match piece.src {
            IpAddr::V4(_) => (protocol, &whole[..]),
            // What followed the fragment header in the first piece: more extension headers.
            IpAddr::V6(_) => crate::engine::wire::ipv6_headers::upper_layer(protocol, &whole)?,
        };
        let packet = GuestPacket {
            mac,
            src: piece.src,
            dst: piece.dst,
            protocol,
            payload,
            offload: crate::engine::wire::offload::RxOffload::default(),
        };
        let mut own = Pending::default();
        let handled = self.handle_ip(now, packet, tx, &mut own);
        own.flush(&mut self.core, &mut self.flows, now, tx);
        handled
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

struct Partial {
    data: Vec<u8>,
    /// The byte ranges held, sorted and apart.
    held: Vec<(usize, usize)>,
    /// The payload's length, once the last piece came.
    total: Option<usize>,
    started: Instant,
    /// Its place in the age order.
    seq: u64,
}

impl Partial {
    fn cost(&self) -> usize {
        self.data.len() + ENTRY_COST
    }

    fn is_whole(&self) -> bool {
        self.total
            .is_some_and(|total| self.held.len() == 1 && self.held[0] == (0, total))
    }
}

/// What became of a piece.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Kept; the datagram is not whole yet.
    Kept,
    /// The datagram is whole: its payload.
    Whole(Vec<u8>),
}

pub struct Reassembly {
    partial: HashMap<Key, Partial>,
    /// Datagrams in progress, oldest first: all, and per source.
    by_age: BTreeMap<u64, Key>,
    by_source_age: HashMap<IpAddr, BTreeMap<u64, Key>>,
    next_seq: u64,
    /// Cost of all datagrams in progress, and per source.
    used: usize,
    used_by: HashMap<IpAddr, usize>,
    limit: usize,
    per_source_limit: usize,
}

impl Reassembly {
    /// At most `limit` bytes for all datagrams in progress, half of that for one source.
    pub fn new(limit: usize) -> Self {
        Reassembly {
            partial: HashMap::new(),
            by_age: BTreeMap::new(),
            by_source_age: HashMap::new(),
            next_seq: 0,
            used: 0,
            used_by: HashMap::new(),
            limit,
            per_source_limit: limit / 2,
        }
    }

    /// Bytes held now for datagrams in progress.
    pub fn memory(&self) -> usize {
        self.used
    }

    /// Takes a piece. An error gives up its datagram (the pieces held so far go too).
    pub(crate) fn add(&mut self, now: Instant, piece: &Piece) -> Result<Added, DropReason> {
        self.expire(now);
        let start = piece.offset;
        let end = start + piece.bytes.len();
        if end > MAX_PAYLOAD || (piece.more && (piece.bytes.is_empty() || end % 8 != 0)) {
            return Err(DropReason::Malformed);
        }
        let key = Key {
            src: piece.src,
            dst: piece.dst,
            protocol: piece.protocol,
            id: piece.id,
        };
        if !self.partial.contains_key(&key) {
            // Room for its entry; its bytes get theirs as they are placed.
            self.make_room(None, piece.src, ENTRY_COST)?;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.by_age.insert(seq, key);
            self.by_source_age
                .entry(piece.src)
                .or_default()
                .insert(seq, key);
            let partial = Partial {
                data: Vec::new(),
                held: Vec::new(),
                total: None,
                started: now,
                seq,
            };
            self.charge(piece.src, partial.cost() as isize);
            self.partial.insert(key, partial);
        }
        match self.place(key, piece, start, end) {
            Ok(true) => {
                let partial = self.take(key).expect("in progress");
                let mut data = partial.data;
                data.truncate(partial.total.unwrap_or(0));
                Ok(Added::Whole(data))
            }
            Ok(false) => Ok(Added::Kept),
            Err(reason) => {
                self.take(key);
                Err(reason)
            }
        }
    }

    /// Puts the piece's bytes in place; returns whether the datagram is whole.
    fn place(
        &mut self,
        key: Key,
        piece: &Piece,
        start: usize,
        end: usize,
    ) -> Result<bool, DropReason> {
        let partial = self.partial.get(&key).expect("in progress");
        // Where the datagram ends: said by the last piece, and nothing may lie beyond it.
        let total = if piece.more { partial.total } else { Some(end) };
        if let (Some(old), Some(new)) = (partial.total, total) {
            if old != new {
                return Err(DropReason::Malformed);
            }
        }
        let beyond = partial.held.last().map_or(0, |&(_, e)| e);
        if total.is_some_and(|total| end > total || beyond > total) {
            return Err(DropReason::Malformed);
        }
        if partial.held.contains(&(start, end)) {
            // The same piece again: nothing new.
            return Ok(false);
        }
        if partial
            .held
            .iter()
            .any(|&(s, e)| start < e && s < end.max(start + 1))
        {
            return Err(DropReason::Fragments);
        }
        if partial.held.len() >= MAX_PIECES {
            return Err(DropReason::Fragments);
        }
        let growth = end.saturating_sub(partial.data.len());
        if growth > 0 {
            self.make_room(Some(key), piece.src, growth)?;
        }
        let partial = self.partial.get_mut(&key).expect("in progress");
        if partial.data.len() < end {
            partial.data.resize(end, 0);
        }
        partial.data[start..end].copy_from_slice(piece.bytes);
        partial.total = total;
        let at = partial.held.partition_point(|&(s, _)| s < start);
        partial.held.insert(at, (start, end));
        // Join touching ranges.
        let mut joined: Vec<(usize, usize)> = Vec::with_capacity(partial.held.len());
        for &(s, e) in &partial.held {
            match joined.last_mut() {
                Some(last) if last.1 == s => last.1 = e,
                _ => joined.push((s, e)),
            }
        }
        partial.held = joined;
        self.charge(piece.src, growth as isize);
        Ok(self.partial[&key].is_whole())
    }

    /// Room for `cost` more bytes from `src` (for datagram `keep`, if in progress, which is
    /// never given up for itself): the source's oldest datagrams give way while it is over its
    /// share, then the oldest of all while the whole is full. Fails when even that is not
    /// enough.
    fn make_room(&mut self, keep: Option<Key>, src: IpAddr, cost: usize) -> Result<(), DropReason> {
        let kept = keep.map_or(0, |key| self.partial[&key].cost());
        if kept + cost > self.per_source_limit {
            return Err(DropReason::Fragments);
        }
        let oldest_but_kept =
            |ages: &BTreeMap<u64, Key>| ages.values().copied().find(|key| Some(*key) != keep);
        while self.used_by.get(&src).copied().unwrap_or(0) + cost > self.per_source_limit {
            let oldest = self
                .by_source_age
                .get(&src)
                .and_then(oldest_but_kept)
                .ok_or(DropReason::Fragments)?;
            self.take(oldest);
        }
        while self.used + cost > self.limit {
            let oldest = oldest_but_kept(&self.by_age).ok_or(DropReason::Fragments)?;
            self.take(oldest);
        }
        Ok(())
    }

    /// Gives up datagrams whose time is up.
    fn expire(&mut self, now: Instant) {
        while let Some((_, &key)) = self.by_age.first_key_value() {
            let expired = self
                .partial
                .get(&key)
                .is_none_or(|p| now.duration_since(p.started) >= TIMEOUT);
            if !expired {
                break;
            }
            self.take(key);
        }
    }

    fn take(&mut self, key: Key) -> Option<Partial> {
        let partial = self.partial.remove(&key)?;
        self.by_age.remove(&partial.seq);
        if let Some(ages) = self.by_source_age.get_mut(&key.src) {
            ages.remove(&partial.seq);
            if ages.is_empty() {
                self.by_source_age.remove(&key.src);
            }
        }
        self.charge(key.src, -(partial.cost() as isize));
        Some(partial)
    }

    fn charge(&mut self, src: IpAddr, bytes: isize) {
        self.used = self.used.saturating_add_signed(bytes);
        let by = self.used_by.entry(src).or_insert(0);
        *by = by.saturating_add_signed(bytes);
        if *by == 0 {
            self.used_by.remove(&src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 100));
    const DST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn piece(id: u32, offset: usize, more: bool, bytes: &[u8]) -> Piece<'_> {
        Piece {
            src: SRC,
            dst: DST,
            protocol: 17,
            id,
            offset,
            more,
            bytes,
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn pieces_in_any_order_make_the_datagram() {
        let whole = data(4000);
        let mut r = Reassembly::new(1 << 20);
        let now = Instant::now();
        let pieces = [(1480, 2960, true), (2960, 4000, false), (0, 1480, true)];
        for (i, &(s, e, more)) in pieces.iter().enumerate() {
            let got = r.add(now, &piece(7, s, more, &whole[s..e])).unwrap();
            if i < 2 {
                assert_eq!(got, Added::Kept);
            } else {
                assert_eq!(got, Added::Whole(whole.clone()));
            }
        }
        assert_eq!(r.memory(), 0, "nothing held once whole");
    }

    #[test]
    fn an_exact_duplicate_is_ignored_an_overlap_gives_the_datagram_up() {
        let whole = data(3000);
        let mut r = Reassembly::new(1 << 20);
        let now = Instant::now();
        assert_eq!(
            r.add(now, &piece(1, 0, true, &whole[..1496])),
            Ok(Added::Kept)
        );
        assert_eq!(
            r.add(now, &piece(1, 0, true, &whole[..1496])),
            Ok(Added::Kept)
        );
        assert_eq!(
            r.add(now, &piece(1, 1488, false, &whole[1488..])),
            Err(DropReason::Fragments)
        );
        assert_eq!(r.memory(), 0, "the pieces held went with it");
        // A datagram starting again with the same id is a new one.
        assert_eq!(
            r.add(now, &piece(1, 1496, false, &whole[1496..])),
            Ok(Added::Kept)
        );
        assert_eq!(
            r.add(now, &piece(1, 0, true, &whole[..1496])),
            Ok(Added::Whole(whole.clone()))
        );
    }

    #[test]
    fn bad_pieces_are_malformed() {
        let mut r = Reassembly::new(1 << 20);
        let now = Instant::now();
        let bytes = data(100);
        // Not a multiple of 8 though more follow; beyond 64 KiB; two different ends.
        assert_eq!(
            r.add(now, &piece(1, 0, true, &bytes[..99])),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            r.add(now, &piece(2, 65528, false, &bytes[..16])),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            r.add(now, &piece(3, 0, false, &bytes[..50])),
            Ok(Added::Whole(bytes[..50].to_vec()))
        );
        assert_eq!(
            r.add(now, &piece(4, 80, false, &bytes[..8])),
            Ok(Added::Kept)
        );
        assert_eq!(
            r.add(now, &piece(4, 96, false, &bytes[..8])),
            Err(DropReason::Malformed)
        );
        // A piece beyond the end a last piece set.
        assert_eq!(
            r.add(now, &piece(5, 16, false, &bytes[..8])),
            Ok(Added::Kept)
        );
        assert_eq!(
            r.add(now, &piece(5, 24, true, &bytes[..8])),
            Err(DropReason::Malformed)
        );
    }

    #[test]
    fn datagrams_time_out() {
        let whole = data(3000);
        let mut r = Reassembly::new(1 << 20);
        let now = Instant::now();
        r.add(now, &piece(9, 0, true, &whole[..1480])).unwrap();
        assert!(r.memory() > 0);
        // The rest comes too late: it starts a datagram of its own, never whole.
        let late = now + TIMEOUT;
        assert_eq!(
            r.add(late, &piece(9, 1480, false, &whole[1480..])),
            Ok(Added::Kept)
        );
        // Held where it belongs in its datagram: the bytes before it are room too.
        assert_eq!(r.memory(), 3000 + ENTRY_COST, "only the late piece is held");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_and_new_datagrams_still_complete() {
        let limit = 64 << 10;
        let mut r = Reassembly::new(limit);
        let now = Instant::now();
        let first = data(1480);
        // A flood of first pieces from two sources, never completed.
        for id in 0..10_000 {
            let mut p = piece(id, 0, true, &first);
            if id % 2 == 0 {
                p.src = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 101));
            }
            let _ = r.add(now, &p);
            assert!(r.memory() <= limit, "{} bytes held", r.memory());
        }
        let whole = data(2000);
        r.add(now, &piece(77_777, 1480, false, &whole[1480..]))
            .unwrap();
        assert_eq!(
            r.add(now, &piece(77_777, 0, true, &whole[..1480])),
            Ok(Added::Whole(whole))
        );
    }

    #[test]
    fn one_source_gets_half_at_most_and_its_oldest_give_way() {
        let limit = 64 << 10;
        let mut r = Reassembly::new(limit);
        let now = Instant::now();
        let big = data(40 << 10);
        assert_eq!(
            r.add(now, &piece(1, 0, true, &big)),
            Err(DropReason::Fragments)
        );
        // Another source's datagrams in progress stay while this one's oldest make room.
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 101));
        let first = data(8 << 10);
        let mut theirs = piece(100, 0, true, &first);
        theirs.src = other;
        r.add(now, &theirs).unwrap();
        for id in 0..20 {
            r.add(now, &piece(id, 0, true, &first)).unwrap();
            assert!(r.used_by[&SRC] <= limit / 2);
        }
        assert!(
            r.used_by.contains_key(&other),
            "the other source kept its datagram"
        );
    }

    #[test]
    fn too_many_pieces_give_the_datagram_up() {
        let mut r = Reassembly::new(1 << 20);
        let now = Instant::now();
        let eight = [0u8; 8];
        let mut last = Ok(Added::Kept);
        for i in 0..=MAX_PIECES {
            // Every other 8 bytes, so that no two pieces join.
            last = r.add(now, &piece(3, i * 16, true, &eight));
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last, Err(DropReason::Fragments));
    }
}
