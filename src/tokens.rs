//! tokens - the one map of the mio tokens of the event loop: a few fixed tokens, then one
//! range per kind of descriptor registered by slot, whose length is how many of them there can
//! be (each module takes its limit from here). That no two overlap is checked when the crate
//! compiles. It depends on nothing of the crate: every layer registers descriptors.

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

/// API clients being served (at most this many at once).
pub const API_CLIENTS: Range = Range {
    base: 1024,
    len: 512,
};
/// SOCKS5 clients in their handshake (at most this many at once).
pub const SOCKS5_CLIENTS: Range = Range {
    base: 2048,
    len: 256,
};
/// Listeners in the namespace's loopback whose clients are spliced to the host's (pasta's -T).
pub const OUTWARD_LISTENERS: Range = Range {
    base: 1 << 19,
    len: 1 << 16,
};
/// pasta's -U: the namespace-side sockets.
pub const OUTWARD_UDP_SOCKETS: Range = Range {
    base: 3 << 18,
    len: 1024,
};
/// pasta's -U: one host socket per client.
pub const OUTWARD_UDP_FLOWS: Range = Range {
    base: (3 << 18) + 1024,
    len: 1 << 14,
};
/// Port forwards' listeners (pasta's `all` makes one per port and family).
pub const FORWARDS: Range = Range {
    base: 1 << 20,
    len: 1 << 17,
};
/// Virtual UDP endpoints (of a library caller's in-process sockets).
pub const VIRTUAL_UDP: Range = Range {
    base: 1 << 21,
    len: 1024,
};
/// Spliced pairs: two tokens per pair (the client's, then the inside socket's).
pub const SPLICE_PAIRS: Range = Range {
    base: 1 << 22,
    len: 2 * (1 << 15),
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
        OUTWARD_UDP_SOCKETS,
        OUTWARD_UDP_FLOWS,
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
