//! services - servers the virtual hosts run for the guest: DHCP, stateless DHCPv6 and TFTP on
//! the gateway, and the embedding program's virtual listeners and UDP endpoints.

pub mod dhcp;
pub mod dhcpv6;
pub mod tftp;
pub mod virtual_net;
