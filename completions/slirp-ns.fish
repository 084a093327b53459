complete -c slirp-ns -s e -l exit-fd -d 'Exit when FD is closed (or reports any event)' -r
complete -c slirp-ns -s r -l ready-fd -d 'Write "1" to FD and close it once the network is ready' -r
complete -c slirp-ns -s m -l mtu -d 'MTU of the TAP device (default=1500, max=65521)' -r
complete -c slirp-ns -l cidr6 -d 'The guest\'s IPv6 network with --enable-ipv6 (default=fd00::/64; must be a /64)' -r
complete -c slirp-ns -s a -l api-socket -d 'Serve the JSON API (port forwarding) on a unix socket at PATH' -r -F
complete -c slirp-ns -l cidr -d 'Network address CIDR (default=10.0.2.0/24)' -r
complete -c slirp-ns -l netns-type -d 'Network namespace type (default=pid)' -r -f -a "pid\t'The positional argument is the PID of a process in the target namespace'
path\t'The positional argument is a path to a network namespace (e.g. /run/netns/NAME)'
tapfd\t'The positional argument is an already-open TAP file descriptor'"
complete -c slirp-ns -l userns-path -d 'User namespace to join before the network namespace (with --netns-type=path)' -r -F
complete -c slirp-ns -l outbound-addr -d 'IPv4 address or interface name that outbound connections bind to' -r
complete -c slirp-ns -l outbound-addr6 -d 'IPv6 address or interface name that outbound connections bind to' -r
complete -c slirp-ns -l macaddress -d 'MAC address of the TAP device (only valid with -c)' -r
complete -c slirp-ns -l target-type -d 'Target type (default=netns)' -r -f -a "netns\t'A network namespace with a TAP device in it'
bess\t'Listen on the SOCK_SEQPACKET socket PATH for one peer sending an Ethernet frame per message (User Mode Linux\'s bess transport)'
stdio\t'Frames on stdin and stdout, framed as --framing says (User Mode Linux\'s slirp transport, a TAP tunnelled over ssh with vde_plug)'
qemu\t'Listen on the unix stream socket PATH for QEMU\'s `-netdev stream` (a 4-byte length before each frame); one guest at a time, reconnects accepted'"
complete -c slirp-ns -l framing -d 'How frames are delimited on stdin/stdout with --target-type=stdio (default=len16)' -r -f -a "slip\t'IP packets in SLIP (RFC 1055), no Ethernet'
len16\t'Ethernet frames, each after its length in 2 bytes, big-endian (vde_plug)'"
complete -c slirp-ns -l dns-server -d 'Relay DNS to ADDR instead of the resolvers in /etc/resolv.conf (repeatable)' -r
complete -c slirp-ns -l dns-search -d 'Search domains to tell the guest (DHCP, router advertisements, DHCPv6) instead of those of /etc/resolv.conf (repeatable, or comma-separated)' -r
complete -c slirp-ns -l pcap -d 'Write every frame crossing the guest side, both ways, to FILE (pcap)' -r -F
complete -c slirp-ns -l tftp-path -d 'Serve DIR read-only over TFTP on the gateway' -r -F
complete -c slirp-ns -l bootfile -d 'Boot file name the DHCP server tells the guest (for network boot over TFTP)' -r
complete -c slirp-ns -l socks5 -d 'Serve SOCKS5 on [ADDR:]PORT of the host (127.0.0.1 without ADDR): CONNECT to the guest\'s own addresses only' -r
complete -c slirp-ns -l hostname -d 'Host name the DHCP server offers the guest' -r
complete -c slirp-ns -l max-flows -d 'Most flows (TCP connections, UDP flows, ICMP echo flows, connections spliced from host loopback) at once; more are refused' -r
complete -c slirp-ns -l tcp-hold-memory -d 'Most guest TCP data held at once, all connections together, in MiB: data that came beyond a lost segment (until it comes again) or that a full host socket could not take yet; beyond it, such data is dropped and the guest sends it again' -r
complete -c slirp-ns -l reassembly-memory -d 'Most memory for IP datagrams the guest sends in fragments and that are not whole yet, in MiB (one source address gets half); beyond it the oldest are given up' -r
complete -c slirp-ns -s p -l publish -d 'Forward a host port to the guest from the start: [HOST_ADDR:]HOST_PORT:[GUEST_ADDR:]GUEST_PORT[/udp] (repeatable; IPv6 addresses go in brackets)' -r
complete -c slirp-ns -l queues -d 'TAP queues, each served by a thread and an engine of its own (multi-queue TAP; the first queue\'s engine also serves the API and port forwards)' -r
complete -c slirp-ns -l busy-poll -d 'After light traffic, poll for up to USEC microseconds before sleeping: shorter round trips for a little CPU time (the window adapts to the traffic; 0 turns it off)' -r
complete -c slirp-ns -s c -l configure -d 'Bring up the interface: lo and TAP up, MTU, address network+100, default route via network+2'
complete -c slirp-ns -s 6 -l enable-ipv6 -d 'Enable IPv6 on fd00::/64'
complete -c slirp-ns -l disable-host-loopback -d 'Prohibit connecting to 127.0.0.1:* on the host through the gateway address'
complete -c slirp-ns -l no-host-loopback -d 'Deprecated spelling of --disable-host-loopback'
complete -c slirp-ns -l enable-sandbox -d 'Create a new mount namespace and drop all capabilities except CAP_NET_BIND_SERVICE'
complete -c slirp-ns -l create-sandbox -d 'Deprecated spelling of --enable-sandbox'
complete -c slirp-ns -l enable-seccomp -d 'Restrict the system calls slirp-ns may make'
complete -c slirp-ns -l disable-dns -d 'Disable the DNS relay on network+3'
complete -c slirp-ns -l debug -d 'Print a one-line summary of every frame crossing the guest side to stderr'
complete -c slirp-ns -l disable-dhcp -d 'Turn off the DHCP server on the gateway'
complete -c slirp-ns -l no-splice -d 'Send port-forward clients on host loopback through the TAP too, instead of joining them to the guest with splice()'
complete -c slirp-ns -l no-offload -d 'Use no TAP offloads (checksum, TCP and UDP segmentation): every frame MTU-sized and fully checksummed, both ways'
complete -c slirp-ns -s v -l version -d 'Show version and exit'
complete -c slirp-ns -s h -l help -d 'Print help (see more with \'--help\')'
