//! link - the virtual network's own hosts on the guest's link: which addresses they hold, and
//! their answers to ARP, neighbour discovery (with router advertisements) and ping.

pub(super) mod addresses;
pub mod arp;
pub mod icmp;
pub mod ndp;
