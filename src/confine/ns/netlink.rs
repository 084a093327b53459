//! Link set-up inside the target namespace over rtnetlink, for `--configure`: loopback up, the
//! TAP's MTU, MAC and state, its IPv4 address and the default route.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The TAP's transmit queue, in frames: the guest's bursts wait there while slirp-ns reads
/// (the TAP default, 500, drops a burst of a fast guest at MTU 1500 without offloads). Frames
/// are taken off it within one loop turn, so a longer queue costs no latency in the steady state.
pub const TX_QUEUE_LEN: u32 = 5000;

/// What `--configure` sets up.
#[derive(Debug, Clone)]
pub struct LinkSetup {
    pub tapname: String,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub broadcast: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// IPv6 is on: the TAP skips duplicate address detection (see `skip_dad`).
    pub ipv6: bool,
    /// Whether the TAP gets the IPv4 address and route (not for pasta's --ipv6-only).
    pub ipv4: bool,
    /// An IPv6 address, its prefix length and the default router, set rather than left to
    /// SLAAC (pasta's network: the host's own address).
    pub ipv6_address: Option<(Ipv6Addr, u8, Ipv6Addr)>,
}

struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 16 * 1024],
        })
    }

    /// Sends one request and waits for the kernel's acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, extra_flags: u16) -> io::Result<()> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let len = msg.buffer_len();
        if len > self.buf.len() {
            return Err(io::Error::other("netlink request too large"));
        }
        msg.serialize(&mut self.buf[..len]);
        self.socket.send(&self.buf[..len], 0)?;
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                        .map_err(|e| io::Error::other(format!("bad netlink reply: {e}")))?;
                let reply_len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    if let NetlinkPayload::Error(e) = reply.payload {
                        return match e.code {
                            None => Ok(()),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                }
                if reply_len == 0 {
                    break;
                }
                offset += (reply_len + 3) & !3;
            }
        }
    }

    fn set_link(&mut self, index: u32, attributes: Vec<LinkAttribute>, up: bool) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        if up {
            link.header.flags = LinkFlags::Up;
            link.header.change_mask = LinkFlags::Up;
        }
        link.attributes = attributes;
        self.request(RouteNetlinkMessage::SetLink(link), 0)
    }
}

fn index_of(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("{name}: {e}")))
}

fn step<T>(what: &str, result: io::Result<T>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

/// Turns off duplicate address detection on the TAP, before it comes up: slirp-ns is the only
/// other node on its link, so no address can be taken twice, and detection would hold the
/// guest's SLAAC address back for a second or two. Best effort: a kernel without IPv6 has no
/// such setting, and the guest works without this.
fn skip_dad(tapname: &str) {
    // /proc/sys/net shows the settings of the reader's network namespace: this one.
    let path = format!("/proc/sys/net/ipv6/conf/{tapname}/accept_dad");
    if let Err(e) = std::fs::write(&path, "0") {
        log::debug!("cannot turn off DAD ({path}): {e}");
    }
}

/// Configures the links of the current network namespace as `setup` says.
pub fn configure(setup: &LinkSetup) -> Result<(), String> {
    let mut rtnl = step("cannot open rtnetlink", Rtnl::open())?;
    let lo = step("cannot find lo", index_of("lo"))?;
    step("cannot set lo up", rtnl.set_link(lo, vec![], true))?;

    let tap = step("cannot find the TAP device", index_of(&setup.tapname))?;
    let mut attributes = vec![
        LinkAttribute::Mtu(setup.mtu),
        LinkAttribute::TxQueueLen(TX_QUEUE_LEN),
    ];
    if let Some(mac) = setup.mac {
        attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    let what = format!(
        "cannot set MTU {} / MAC / txqueuelen of {}",
        setup.mtu, setup.tapname
    );
    step(&what, rtnl.set_link(tap, attributes, false))?;
    if setup.ipv6 {
        skip_dad(&setup.tapname);
    }
    let what = format!("cannot set {} up", setup.tapname);
    step(&what, rtnl.set_link(tap, vec![], true))?;
    if setup.ipv4 {
        configure_ipv4(&mut rtnl, tap, setup)?;
    }
    if let Some((address, prefix_len, gateway)) = setup.ipv6_address {
        configure_ipv6(&mut rtnl, tap, address, prefix_len, gateway)?;
    }
    Ok(())
}

fn configure_ipv4(rtnl: &mut Rtnl, tap: u32, setup: &LinkSetup) -> Result<(), String> {
    let attributes = vec![
        AddressAttribute::Local(IpAddr::V4(setup.address)),
        AddressAttribute::Address(IpAddr::V4(setup.address)),
        AddressAttribute::Broadcast(setup.broadcast),
    ];
    add_address(
        rtnl,
        tap,
        setup.address.into(),
        setup.prefix_len,
        attributes,
    )?;
    // A gateway outside the address's prefix (a cloud host's /32 and its router, copied by
    // pasta's personality) is on the link all the same.
    let mask = u32::MAX
        .checked_shl(32 - u32::from(setup.prefix_len))
        .unwrap_or(0);
    let on_link = u32::from(setup.gateway) & mask != u32::from(setup.address) & mask;
    add_default_route(rtnl, tap, setup.gateway.into(), on_link)
}

/// The given IPv6 address (no duplicate address detection: it is the host's, and the link has
/// only us on it) and a default route via `gateway`, which may be link-local.
fn configure_ipv6(
    rtnl: &mut Rtnl,
    tap: u32,
    address: Ipv6Addr,
    prefix_len: u8,
    gateway: Ipv6Addr,
) -> Result<(), String> {
    use netlink_packet_route::address::AddressFlags;
    let attributes = vec![
        AddressAttribute::Address(IpAddr::V6(address)),
        AddressAttribute::Flags(AddressFlags::Nodad),
    ];
    add_address(rtnl, tap, address.into(), prefix_len, attributes)?;
    add_default_route(rtnl, tap, gateway.into(), false)
}

fn add_address(
    rtnl: &mut Rtnl,
    tap: u32,
    address: IpAddr,
    prefix_len: u8,
    attributes: Vec<AddressAttribute>,
) -> Result<(), String> {
    let mut addr = AddressMessage::default();
    addr.header.family = family_of(address);
    addr.header.prefix_len = prefix_len;
    addr.header.index = tap;
    addr.attributes = attributes;
    let what = format!("cannot add address {address}/{prefix_len}");
    step(
        &what,
        rtnl.request(
            RouteNetlinkMessage::NewAddress(addr),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
    )
}

fn add_default_route(
    rtnl: &mut Rtnl,
    tap: u32,
    gateway: IpAddr,
    on_link: bool,
) -> Result<(), String> {
    let mut route = RouteMessage::default();
    route.header.address_family = family_of(gateway);
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::Unicast;
    if on_link {
        route.header.flags = RouteFlags::Onlink;
    }
    let via = match gateway {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    };
    route.attributes = vec![RouteAttribute::Gateway(via), RouteAttribute::Oif(tap)];
    let what = format!("cannot add default route via {gateway}");
    step(
        &what,
        rtnl.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
    )
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}
