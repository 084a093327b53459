//! tokens - the one map of the mio tokens of the event loop: a few fixed tokens, then one
//! range per kind of descriptor registered by slot. That no two overlap is checked when the
//! crate compiles.

use mio::Token;

/// The link to the guest (TAP, bess socket, stream input).
pub const LINK: Token = Token(0);
/// Signals (signal-hook's pipe).
pub const SIGNALS: Token = Token(1);
/// --exit-fd.
pub const EXIT_FD: Token = Token(2);
/// The API socket's listener.
pub const API_LISTENER: Token = Token(3);
/// The namespace helper's socket (the splice path).
pub const HELPER: Token = Token(4);
/// A stream link's output, when it is another descriptor than its input.
pub const LINK_OUTPUT: Token = Token(5);
/// A listening link (QEMU's stream socket) waiting for its guest.
pub const LINK_LISTENER: Token = Token(6);
/// The SOCKS5 listener.
pub const SOCKS5_LISTENER: Token = Token(7);
/// What says the target namespace is gone (pasta's --netns file, or its PID).
pub const QUIT_WATCH: Token = Token(8);
/// Below every range.
const FIXED_END: usize = 9;

/// Tokens `base + slot` for `slot` in `0..len`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub base: usize,
    pub len: usize,
}

impl Range {
    /// The token of `slot` (which must be below `len`).
    pub const fn token(self, slot: usize) -> Token {
        Token(self.base + slot)
    }

    /// The slot of `token`, if it is in the range.
    pub const fn slot(self, token: Token) -> Option<usize> {
        if token.0 >= self.base && token.0 - self.base < self.len {
            Some(token.0 - self.base)
        } else {
            None
        }
    }

    pub const fn contains(self, token: Token) -> bool {
        self.slot(token).is_some()
    }

    const fn end(self) -> usize {
        self.base + self.len
    }
}

/// API clients being served.
pub const API_CLIENTS: Range = Range {
    base: 1024,
    len: crate::api::MAX_CLIENTS,
};
/// SOCKS5 clients in their handshake.
pub const SOCKS5_CLIENTS: Range = Range {
    base: 2048,
    len: crate::socks5::MAX_CLIENTS,
};
/// Listeners in the namespace's loopback whose clients are spliced to the host's (pasta's -T).
pub const OUTWARD_LISTENERS: Range = Range {
    base: 1 << 19,
    len: crate::splice::MAX_OUTWARD_LISTENERS,
};
/// pasta's -U: the namespace-side sockets, then one host socket per client.
pub const OUTWARD_UDP: Range = Range {
    base: 3 << 18,
    len: crate::pasta::udp_ns::MAX_SOCKETS + crate::pasta::udp_ns::MAX_FLOWS,
};
/// Port forwards' listeners.
pub const FORWARDS: Range = Range {
    base: 1 << 20,
    len: crate::engine::fwd::MAX_FORWARDS_ANY,
};
/// Virtual UDP endpoints (of a library caller's in-process sockets).
pub const VIRTUAL_UDP: Range = Range {
    base: 1 << 21,
    len: crate::engine::virtual_net::MAX_UDP_ENDPOINTS,
};
/// Spliced pairs: two tokens per pair (the client's, then the inside socket's).
pub const SPLICE_PAIRS: Range = Range {
    base: 1 << 22,
    len: 2 * crate::splice::MAX_PAIRS,
};
/// Flows' host sockets: from here up, one per flow slot.
pub const FLOWS: Range = Range {
    base: 1 << 24,
    len: usize::MAX - (1 << 24),
};

/// Whether `ranges`, in this order, start above the fixed tokens and each ends before the next
/// begins.
const fn ordered_apart(ranges: &[Range]) -> bool {
    let mut end = FIXED_END;
    let mut i = 0;
    while i < ranges.len() {
        if ranges[i].base < end || ranges[i].len == 0 {
            return false;
        }
        end = ranges[i].end();
        i += 1;
    }
    true
}

const _: () = assert!(
    ordered_apart(&[
        API_CLIENTS,
        SOCKS5_CLIENTS,
        OUTWARD_LISTENERS,
        OUTWARD_UDP,
        FORWARDS,
        VIRTUAL_UDP,
        SPLICE_PAIRS,
        FLOWS
    ]),
    "token ranges overlap"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_give_back_their_slots_and_nothing_else() {
        assert_eq!(FORWARDS.slot(FORWARDS.token(7)), Some(7));
        assert_eq!(FORWARDS.slot(Token(FORWARDS.base - 1)), None);
        assert_eq!(FORWARDS.slot(Token(FORWARDS.base + FORWARDS.len)), None);
        assert!(!VIRTUAL_UDP.contains(SPLICE_PAIRS.token(0)));
        assert!(FLOWS.contains(Token(usize::MAX - 1)));
        assert!(!ordered_apart(&[FORWARDS, FORWARDS]));
    }
}
