//! Start-up: check the command line's descriptors, have a helper get the TAP (entering the
//! namespace) while this process creates the API socket and enters its sandbox, then take the
//! TAP, signal readiness and run the loop.

use crate::config::{Config, Target};
use crate::confine::ns::exec::ExecChild;
use crate::confine::ns::helper::{start_opening_tap_in, Lockdown, NamespaceFiles, TapRequest};
use crate::confine::ns::netlink::LinkSetup;
use crate::engine::EngineConfig;
use crate::host::api::ApiServer;
use crate::host::event_loop::{EventLoop, Exit};
use crate::pasta::PastaRun;
use crate::transport::framing::Framing;
use crate::transport::stream::StreamLink;
use crate::transport::tap::TapDevice;
use crate::transport::Link;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A start-up or run-time failure; printed as one line, exit status 1.
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

impl From<String> for RunError {
    fn from(s: String) -> Self {
        RunError(s)
    }
}

/// Takes ownership of a descriptor inherited from the caller after checking it is open.
fn take_inherited_fd(fd: RawFd, what: &str) -> Result<OwnedFd, RunError> {
    // SAFETY: F_GETFD only reads the descriptor flags; a closed fd gives EBADF.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_GETFD)
        .map_err(|e| RunError(format!("{what} {fd} is not an open file descriptor: {e}")))?;
    // The descriptor must not leak into the exec-mode command or later children.
    let _ = fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    // SAFETY: the fd is open (checked above) and was inherited: nothing in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn link_setup(cfg: &Config, ipv4: bool) -> LinkSetup {
    LinkSetup {
        tapname: cfg.tapname.clone(),
        mtu: cfg.mtu,
        mac: cfg.mac,
        address: cfg.net.guest(),
        prefix_len: cfg.net.prefix_len(),
        broadcast: cfg.net.broadcast(),
        gateway: cfg.net.gateway(),
        ipv6: cfg.ipv6.is_some(),
        ipv4,
        ipv6_address: cfg
            .ipv6
            .and_then(|p| Some((p.guest()?, p.prefix_len(), p.gateway()))),
    }
}

fn print_banner(cfg: &Config) {
    let net = &cfg.net;
    println!("Starting slirp-ns");
    println!("* MTU:             {}", cfg.mtu);
    println!("* Network:         {}", net.network());
    println!("* Netmask:         {}", net.netmask());
    println!("* Gateway:         {}", net.gateway());
    if !cfg.disable_dns {
        println!("* DNS:             {}", net.dns());
    }
    println!("* Recommended IP:  {}", net.guest());
    if let Some(path) = &cfg.api_socket {
        println!("* API Socket:      {}", path.display());
    }
    if let Some(addr) = cfg.outbound_addr {
        println!("* Outbound IPv4:   {addr}");
    }
    if let Some(prefix) = cfg.ipv6 {
        println!("* IPv6 prefix:     {prefix}");
        println!("* IPv6 gateway:    {}", prefix.gateway());
        if let Some(dns) = prefix.dns().filter(|_| !cfg.disable_dns) {
            println!("* IPv6 DNS:        {dns}");
        }
    }
    if let Some(addr) = cfg.outbound_addr6 {
        println!("* Outbound IPv6:   {addr}");
    }
    if let Some([a, b, c, d, e, f]) = cfg.mac {
        println!("* MAC address:     {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}");
    }
}

/// The link of a target that is no namespace: a bess socket (its peer awaited here, as
/// slirp4netns does), stdio, or QEMU's socket (its peer accepted by the loop).
fn open_link(cfg: &Config) -> Result<Link, RunError> {
    let gateway_mac = crate::engine::virtual_mac(cfg.net.gateway()).0;
    match &cfg.target {
        Target::Bess(path) => {
            use nix::sys::socket::SockType;
            let (listener, socket_path) = crate::transport::socket_path::SocketPath::listen(
                path,
                SockType::SeqPacket,
                "BESS socket",
            )?;
            eprintln!("Waiting for connection to {}", path.display());
            let peer = wait_for_peer(&listener)
                .map_err(|e| RunError(format!("BESS socket {}: {e}", path.display())))?;
            // The guest is connected: nobody else needs the socket file.
            drop(socket_path);
            TapDevice::seqpacket(peer)
                .map(Link::packets)
                .map_err(|e| RunError(format!("BESS socket: {e}")))
        }
        Target::Stdio(framing) => Ok(Link::stream(StreamLink::stdio(
            *framing,
            cfg.mtu,
            gateway_mac,
        )?)),
        Target::Qemu(path) => Ok(Link::stream(StreamLink::qemu(path, cfg.mtu)?)),
        _ => Err(RunError("no TAP device was opened".into())),
    }
}

/// Where the link comes from: opened here (a socket or stdio), a TAP descriptor the caller
/// passed, or the helper that makes the TAP in the namespace.
enum LinkSource {
    Opened(Link),
    Inherited(OwnedFd),
    Helper(crate::confine::ns::helper::PendingTap),
}

fn tap_link(fd: OwnedFd, cfg: &Config) -> Result<Link, RunError> {
    TapDevice::new(fd, cfg.offload)
        .map(Link::packets)
        .map_err(|e| RunError(format!("TAP fd: {e}")))
}

/// Blocks until a peer connects to `listener` (non-blocking).
fn wait_for_peer(listener: &OwnedFd) -> nix::Result<OwnedFd> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::SockFlag;
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        match crate::sys::accept(listener.as_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => return Ok(fd),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECONNABORTED) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Every flow holds a host socket: take as many descriptors as the hard limit allows (the
/// soft limit is often 1024, far below --max-flows). Done once the exec-mode command and the
/// helper are forked, so that they keep the limits slirp-ns was started with.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return u64::MAX;
    };
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            log::debug!("cannot raise the descriptor limit to {hard}: {e}");
            return soft;
        }
    }
    hard
}

/// The most flows the descriptor limit `fd_limit` leaves room for, shared by `engines`: each
/// flow holds one descriptor, and some are kept for everything else (the link, the API and
/// its clients, forwards, spliced connections, the DNS and ping flows' own sockets).
fn flows_within(fd_limit: u64, engines: usize) -> usize {
    let kept = 32 + fd_limit / 8;
    let budget = fd_limit.saturating_sub(kept) / engines.max(1) as u64;
    budget.clamp(1, usize::MAX as u64) as usize
}

/// Runs slirp-ns with a checked configuration; returns the process's exit status.
pub fn run(cfg: Config, pasta: Option<PastaRun>) -> Result<i32, RunError> {
    let pasta = pasta.as_ref();
    for warning in &cfg.warnings {
        eprintln!("WARNING: {warning}");
    }
    let exit_fd = cfg
        .exit_fd
        .map(|fd| take_inherited_fd(fd, "exit-fd"))
        .transpose()?;
    let ready_fd = cfg
        .ready_fd
        .map(|fd| take_inherited_fd(fd, "ready-fd"))
        .transpose()?;

    // Everything that forks happens here, before the event loop exists.
    let setup = cfg
        .configure
        .then(|| link_setup(&cfg, pasta.is_none_or(|p| p.ipv4)));
    let mut command = None;
    // The helper stays in the namespace for the splice path of port forwards, locked down as
    // slirp-ns will be.
    let keep = cfg.splice.then_some(Lockdown {
        drop_privileges: cfg.enable_sandbox,
        seccomp: cfg.enable_seccomp,
    });
    let tcp_ns = pasta.map_or(&[][..], |p| &p.tcp_ns[..]);
    let udp_ns = pasta.map_or(&[][..], |p| &p.udp_ns[..]);
    let tap_request = TapRequest {
        name: cfg.tapname.clone(),
        vnet_hdr: cfg.offload,
        queues: cfg.queues,
        loopback_listeners: tcp_ns.iter().map(|&(inside, _)| inside).collect(),
        loopback_udp: udp_ns.iter().map(|&(inside, _)| inside).collect(),
    };
    // The helper enters the namespace and makes the TAP while start-up goes on here: the two
    // meet only when the TAP is needed, after the sandbox. A link of another kind is opened
    // now, while the file system is still in view.
    let link_source = match &cfg.target {
        Target::Bess(_) | Target::Stdio(_) | Target::Qemu(_) => {
            LinkSource::Opened(open_link(&cfg)?)
        }
        Target::TapFd(fd) => LinkSource::Inherited(take_inherited_fd(*fd, "TAP fd")?),
        Target::Pid(pid) => LinkSource::Helper(start_opening_tap_in(
            NamespaceFiles::of_pid(*pid)?,
            &tap_request,
            setup.as_ref(),
            keep,
        )?),
        Target::Path(path) => LinkSource::Helper(start_opening_tap_in(
            NamespaceFiles::of_paths(path, cfg.userns_path.as_deref())?,
            &tap_request,
            setup.as_ref(),
            keep,
        )?),
        Target::Exec(argv) => {
            let child = ExecChild::spawn(argv)?;
            let ns = NamespaceFiles::of_pid(child.pid().as_raw())?;
            let pending = start_opening_tap_in(ns, &tap_request, setup.as_ref(), keep)?;
            command = Some(child);
            LinkSource::Helper(pending)
        }
    };
    let fd_limit = raise_fd_limit();
    // pasta's: its files are opened now, and the namespace's file or process watched from
    // before the sandbox hides them.
    let mut files = pasta
        .map(crate::pasta::start::Files::open)
        .transpose()?
        .unwrap_or_default();
    let api = cfg.api_socket.as_deref().map(ApiServer::bind).transpose()?;
    let socks5 = cfg
        .socks5
        .map(crate::host::socks5::Socks5Server::bind)
        .transpose()?;
    let capture = (cfg.pcap.is_some() || cfg.debug)
        .then(|| crate::transport::capture::Capture::open(cfg.pcap.as_deref(), cfg.debug))
        .transpose()
        .map_err(|e| {
            let path = cfg.pcap.as_deref().unwrap_or(std::path::Path::new("-"));
            RunError(format!("cannot create {}: {e}", path.display()))
        })?
        .map(crate::transport::capture::Capture::shared);
    let defaults = EngineConfig::new(cfg.net);
    // pasta's --runas (or nobody for root): what follows needs no privilege but to bind low
    // ports, which the capability kept below still allows.
    if let Some(run_as) = pasta.and_then(|p| p.run_as) {
        run_as.switch()?;
    }
    // While single-threaded (see crate::confine::sandbox), and with everything opened that
    // needs the file system.
    if cfg.enable_sandbox {
        let visible: Vec<&std::path::Path> = cfg.tftp_path.iter().map(|p| p.as_path()).collect();
        if let Some(warning) = crate::confine::sandbox::enter(&defaults.resolv_conf, &visible)? {
            eprintln!("WARNING: {warning}");
        }
    } else if let Err(e) =
        crate::confine::sandbox::drop_capabilities(&[caps::Capability::CAP_NET_BIND_SERVICE])
    {
        // What needed privileges (the helper, the TAP) is done: the rest never does, but for
        // forwards from low ports.
        log::warn!("{e}");
    }

    let mut outward_listeners = Vec::new();
    let (link, taps, helper, helper_finishing) = match link_source {
        LinkSource::Opened(link) => (link, Vec::new(), None, None),
        LinkSource::Inherited(fd) => (tap_link(fd, &cfg)?, Vec::new(), None, None),
        LinkSource::Helper(pending) => {
            let mut opened = pending.wait()?;
            // The namespace-side listeners come after the TAP's descriptors.
            let taps_sent = opened.fds.len().saturating_sub(tcp_ns.len() + udp_ns.len());
            outward_listeners = opened.fds.split_off(taps_sent);
            let mut taps = opened
                .fds
                .into_iter()
                .map(|fd| tap_link(fd, &cfg))
                .collect::<Result<Vec<_>, _>>()?;
            if taps.is_empty() {
                return Err(RunError("the helper sent no TAP descriptor".into()));
            }
            let first = taps.remove(0);
            (first, taps, opened.helper, Some(opened.finishing))
        }
    };
    let engines = 1 + taps.len();
    log::debug!("link offloads: {}, queues: {engines}", link.offloads());
    // pasta's `all` may take up to half the descriptors for its listeners.
    let forward_all = pasta.is_some_and(|p| !p.all.is_empty());
    let flow_fds = if forward_all { fd_limit / 2 } else { fd_limit };
    let max_flows = cfg.max_flows.min(flows_within(flow_fds, engines));
    if max_flows < cfg.max_flows {
        log::info!(
            "at most {max_flows} flows per queue: the descriptor limit is {fd_limit} (--max-flows {})",
            cfg.max_flows
        );
    }

    let engine_config = EngineConfig {
        mtu: cfg.mtu,
        dns_enabled: !cfg.disable_dns,
        host_loopback: !cfg.disable_host_loopback,
        dns_servers: cfg.dns_servers.clone(),
        dns_search: cfg.dns_search.clone(),
        dhcp: !cfg.disable_dhcp,
        dhcp_hostname: cfg.hostname.clone(),
        tftp_root: cfg.tftp_path.clone(),
        dhcp_bootfile: cfg.bootfile.clone(),
        outbound_addr: cfg.outbound_addr,
        outbound_addr6: cfg.outbound_addr6,
        ipv6: cfg.ipv6,
        tap_offload: link.offloads(),
        tap_uso: link.udp_offloads(),
        point_to_point: matches!(cfg.target, Target::Stdio(Framing::Slip)),
        max_flows,
        tcp_hold_memory: cfg.tcp_hold_memory,
        reassembly_memory: cfg.reassembly_memory,
        // SLIRP_NS_NO_PEEK_OFF forces the path for kernels without SO_PEEK_OFF (for tests).
        splice_loopback: helper.is_some(),
        host_network: pasta.map(|p| p.host_network.clone()),
        forwards_v6_only: pasta.is_some(),
        served: pasta.map_or_else(Default::default, |p| p.served),
        max_forwards: if pasta.is_some() {
            crate::engine::flows::fwd::MAX_FORWARDS_ANY
        } else {
            crate::engine::flows::fwd::MAX_FORWARDS
        },
        tcp_peek_offset: crate::sys::tcp_peek_offset_supported()
            && std::env::var_os("SLIRP_NS_NO_PEEK_OFF").is_none(),
        ..defaults
    };
    // Further queues: an engine and a loop each, on threads of their own. The kernel keeps each
    // flow on one queue (the one its first packet hashed to, then the one its replies are
    // written to), so the engines share nothing. Port forwards and the API stay with the first.
    // Each thread says when it runs: the seccomp filter goes on only then, since a thread's
    // start-up (rseq, robust futex list, its name) makes calls the filter does not allow.
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let threads = taps.len();
    for (index, tap) in taps.into_iter().enumerate() {
        let config = EngineConfig {
            router_adverts: false,
            splice_loopback: false,
            ..engine_config.clone()
        };
        let tap = match &capture {
            Some(capture) => tap.with_capture(capture.clone()),
            None => tap,
        };
        let mut queue_loop = EventLoop::for_queue(tap, config).map_err(|e| {
            RunError(format!(
                "cannot set up the loop of queue {}: {e}",
                index + 1
            ))
        })?;
        queue_loop.set_busy_poll(cfg.busy_poll);
        let started_tx = started_tx.clone();
        std::thread::Builder::new()
            .name(format!("queue{}", index + 1))
            .spawn(move || {
                let _ = started_tx.send(());
                if let Err(e) = queue_loop.run() {
                    log::warn!("queue {}: {e}", index + 1);
                }
            })
            .map_err(|e| RunError(format!("cannot start a queue thread: {e}")))?;
    }
    // The guest's own addresses, where pasta's forwards go.
    let guest = (
        std::net::IpAddr::V4(cfg.net.guest()),
        cfg.ipv6.and_then(|v6| v6.guest()).map(std::net::IpAddr::V6),
    );
    let inside_pid = helper.as_ref().map(|h| h.pid()).or(match cfg.target {
        Target::Pid(pid) => Some(pid),
        _ => None,
    });
    let udp_sockets = outward_listeners.split_off(outward_listeners.len().min(tcp_ns.len()));
    let (auto_ports, udp_outward) = match pasta {
        Some(p) => (
            crate::pasta::start::auto_ports(p, inside_pid, guest)?,
            crate::pasta::start::udp_outward(p, udp_sockets),
        ),
        None => (None, None),
    };
    let to_loopback = pasta.is_some_and(|p| p.splice_to_loopback);
    let mut splicer = helper.map(|helper| crate::host::splice::Splicer::new(helper, to_loopback));
    if let Some(splicer) = &mut splicer {
        for (listener, &(_, host_port)) in outward_listeners.into_iter().zip(tcp_ns) {
            let host = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, host_port));
            splicer.add_outward(listener, host);
        }
    }
    let link = match capture {
        Some(capture) => link.with_capture(capture),
        None => link,
    };
    let mut event_loop = EventLoop::new(link, engine_config, exit_fd, api, splicer)
        .map_err(|e| RunError(format!("cannot set up the event loop: {e}")))?;
    event_loop.set_busy_poll(cfg.busy_poll);
    if let Some(relay) = udp_outward {
        event_loop
            .set_udp_outward(relay)
            .map_err(|e| RunError(format!("cannot relay -U ports: {e}")))?;
    }
    if let Some(auto_ports) = auto_ports {
        event_loop.set_periodic(Box::new(auto_ports));
    }
    if let Some(watch) = files.quit_watch.take() {
        event_loop
            .set_quit_watch(watch)
            .map_err(|e| RunError(format!("cannot watch the namespace: {e}")))?;
    }
    if let Some(server) = socks5 {
        if let Ok(addr) = server.local_addr() {
            log::info!("SOCKS5 on {addr}");
        }
        event_loop
            .set_socks5(server)
            .map_err(|e| RunError(format!("cannot serve SOCKS5: {e}")))?;
    }
    for spec in &cfg.publish {
        let entry = event_loop
            .engine_mut()
            .add_forward(*spec)
            .map_err(|e| RunError(format!("cannot publish {spec}: {e}")))?;
        log::info!("forward {} added: {}", entry.id, entry.spec);
    }
    if let Some(p) = pasta.filter(|_| forward_all) {
        let budget = usize::try_from(fd_limit / 2).unwrap_or(usize::MAX);
        crate::pasta::forward_all(event_loop.engine_mut(), &p.all, guest, budget)?;
    }
    if command.is_none() && pasta.is_none() {
        // With --target-type=stdio stdout points at stderr by now: the banner stays off the
        // stream.
        print_banner(&cfg);
    }
    // Last, on every thread: everything start-up needs is done.
    for _ in 0..threads {
        let _ = started.recv();
    }
    if cfg.enable_seccomp {
        crate::confine::seccomp::install(&crate::confine::seccomp::filter(&syscalls())?)?;
        if std::env::var_os("SLIRP_NS_SECCOMP_SELFTEST").is_some() {
            crate::confine::seccomp::self_test();
        }
    }
    // The link is configured and the helper locked down before anyone is told.
    if let Some(finishing) = helper_finishing {
        finishing.wait()?;
    }
    if let Some(mut file) = files.pid_file.take() {
        use std::io::Write;
        writeln!(file, "{}", std::process::id()).map_err(|e| RunError(format!("PID file: {e}")))?;
    }
    if let Some(log) = &files.background_log {
        // The caller reads our output until it closes: it must close before we say ready.
        crate::sys::detach_stdio(log.as_ref())?;
    }
    if let Some(fd) = ready_fd {
        nix::unistd::write(&fd, b"1").map_err(|e| RunError(format!("ready-fd: {e}")))?;
    }
    if let Some(child) = &mut command {
        event_loop.set_command(child.start()?);
    }

    let exit = event_loop
        .run()
        .map_err(|e| RunError(format!("event loop: {e}")))?;
    log::info!("{}", event_loop.engine().counters());
    Ok(match exit {
        Exit::Signal(sig) => {
            log::info!("exiting on signal {sig}");
            0
        }
        Exit::ByExitFd => 0,
        Exit::LinkGone => 0,
        Exit::TargetGone => {
            log::info!("the target namespace is gone");
            0
        }
        Exit::Command(status) => status,
    })
}

/// The system calls each part of the running process makes (for --enable-seccomp).
fn syscalls() -> [&'static [crate::sys::Syscall]; 12] {
    [
        crate::host::event_loop::SYSCALLS,
        crate::transport::tap::SYSCALLS,
        crate::transport::stream::SYSCALLS,
        crate::engine::flows::sockets::SYSCALLS,
        crate::engine::flows::tcp::SYSCALLS,
        crate::engine::flows::udp::SYSCALLS,
        crate::engine::flows::dns::SYSCALLS,
        crate::engine::services::tftp::SYSCALLS,
        crate::host::splice::SYSCALLS,
        crate::host::api::SYSCALLS,
        crate::host::socks5::SYSCALLS,
        crate::confine::ns::exec::SYSCALLS,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_allows_the_data_path_but_not_exec_or_mount() {
        assert!(crate::confine::seccomp::filter(&syscalls()).is_ok());
        assert!(
            crate::confine::seccomp::helper_filter(crate::confine::ns::helper::SYSCALLS).is_ok()
        );
        let allows = |call| syscalls().iter().any(|list| list.contains(&call));
        for call in [
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_connect,
            libc::SYS_splice,
        ] {
            assert!(allows(call), "{call}");
        }
        for call in [
            libc::SYS_execve,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_setns,
            libc::SYS_unshare,
            libc::SYS_ioctl,
        ] {
            assert!(!allows(call), "{call}");
        }
    }
}
