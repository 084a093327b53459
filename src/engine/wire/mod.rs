//! wire - frames as bytes: the guest's packets checked and parsed, fragments put back together,
//! frames built for the guest, and the queue they wait in. Nothing here holds a flow or answers
//! anybody; the layers above decide what to say.

pub mod frames;
pub(super) mod guest_packet;
pub(super) mod ipv6_headers;
pub mod key;
pub mod offload;
pub(super) mod reassembly;
pub(super) mod txqueue;
pub(super) mod uso;
