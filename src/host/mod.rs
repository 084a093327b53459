//! What faces the host: the event loop and everything it serves besides the engine — the API
//! socket, SOCKS5, the splice path of loopback forwards and pasta's -U relay — with busy
//! polling and the bounded client table they share.

pub mod api;
pub mod busy_poll;
pub mod client_slots;
pub mod event_loop;
pub mod socks5;
pub mod splice;
pub mod udp_outward;
