//! tokens - the one map of the event loop's mio tokens. A token packs the kind of descriptor
//! it stands for (the low bits) with that descriptor's index among its kind (the rest): a flow
//! slot, a forward slot, a client slot. The loop decodes each event's token once
//! ([`decode`]) and hands the index to the owner of the kind. Tokens carry no limits: how many
//! descriptors of a kind there may be is the owner's own constant. It depends on nothing of
//! the crate: every layer registers descriptors.

use mio::Token;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Kind {
    /// The link to the guest (TAP, bess socket, stream input).
    Link,
    /// A stream link's output, when it is another descriptor than its input.
    LinkOutput,
    /// A listening link (QEMU's stream socket) waiting for its guest.
    LinkListener,
    /// Signals (signal-hook's pipe).
    Signals,
    /// --exit-fd.
    ExitFd,
    /// What says the target namespace is gone (pasta's --netns file, or its PID).
    QuitWatch,
    /// The namespace helper's socket (the splice path).
    Helper,
    /// The API socket's listener, and its clients by slot.
    ApiListener,
    ApiClient,
    /// The SOCKS5 listener, and its clients in their handshake by slot.
    Socks5Listener,
    Socks5Client,
    /// Listeners in the namespace's loopback whose clients are spliced to the host's (-T).
    OutwardListener,
    /// pasta's -U: the namespace-side sockets, and one host socket per client.
    OutwardUdpSocket,
    OutwardUdpFlow,
    /// Port forwards' listeners, by forward slot.
    Forward,
    /// Virtual UDP endpoints (of a library caller's in-process sockets).
    VirtualUdp,
    /// A flow's host socket, by flow slot.
    Flow,
    /// The two sockets of a spliced connection, by its flow slot: the client's, the inside one.
    SpliceClient,
    SpliceInside,
}

/// Every kind, at its number.
const KINDS: [Kind; 19] = [
    Kind::Link,
    Kind::LinkOutput,
    Kind::LinkListener,
    Kind::Signals,
    Kind::ExitFd,
    Kind::QuitWatch,
    Kind::Helper,
    Kind::ApiListener,
    Kind::ApiClient,
    Kind::Socks5Listener,
    Kind::Socks5Client,
    Kind::OutwardListener,
    Kind::OutwardUdpSocket,
    Kind::OutwardUdpFlow,
    Kind::Forward,
    Kind::VirtualUdp,
    Kind::Flow,
    Kind::SpliceClient,
    Kind::SpliceInside,
];

const KIND_BITS: u32 = 5;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;

/// The token of the `index`th descriptor of `kind`.
pub const fn token(kind: Kind, index: usize) -> Token {
    Token((index << KIND_BITS) | kind as usize)
}

/// What `token` stands for; `None` for a token no kind makes.
pub fn decode(token: Token) -> Option<(Kind, usize)> {
    let kind = *KINDS.get(token.0 & KIND_MASK)?;
    Some((kind, token.0 >> KIND_BITS))
}

/// The descriptors of which there is one.
pub const LINK: Token = token(Kind::Link, 0);
pub const LINK_OUTPUT: Token = token(Kind::LinkOutput, 0);
pub const LINK_LISTENER: Token = token(Kind::LinkListener, 0);
pub const SIGNALS: Token = token(Kind::Signals, 0);
pub const EXIT_FD: Token = token(Kind::ExitFd, 0);
pub const QUIT_WATCH: Token = token(Kind::QuitWatch, 0);
pub const HELPER: Token = token(Kind::Helper, 0);
pub const API_LISTENER: Token = token(Kind::ApiListener, 0);
pub const SOCKS5_LISTENER: Token = token(Kind::Socks5Listener, 0);

const _: () = {
    // Each kind at its own number, and every number below the mask.
    let mut i = 0;
    while i < KINDS.len() {
        assert!(KINDS[i] as usize == i, "KINDS out of order");
        i += 1;
    }
    assert!(KINDS.len() <= KIND_MASK + 1, "too many kinds for KIND_BITS");
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gives_back_its_kind_and_index() {
        for kind in KINDS {
            for index in [0, 1, 7, 65_535, 1 << 40] {
                assert_eq!(decode(token(kind, index)), Some((kind, index)));
            }
        }
        assert_eq!(decode(SIGNALS), Some((Kind::Signals, 0)));
        assert_ne!(token(Kind::Flow, 3), token(Kind::SpliceClient, 3));
        assert_eq!(decode(Token(KIND_MASK)), None);
    }
}
