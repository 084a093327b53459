//! Frame I/O between the engine and the guest. The TAP descriptor is the first transport.

pub mod tap;
pub mod vnet;
