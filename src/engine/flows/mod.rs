//! flows - the guest's connections, each carried on a host socket: the bounded flow table,
//! TCP, UDP (with the DNS relay's choice of resolvers), ICMP echo, where a destination really
//! is (route), and port forwards that open flows from the host side.

pub mod dns;
pub mod echo;
pub mod fwd;
mod fwd_udp;
pub mod route;
pub(crate) mod sockets;
pub(crate) mod spliced;
pub mod table;
pub mod tcp;
pub mod udp;
pub(crate) mod unresolved;
