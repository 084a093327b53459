# Shared by the bench/ scripts (sourced, not run).

# Starts a process alone in a new network namespace made from host-sim ($HS) and sets
# GUEST_PID to it. Returns 1 unless that namespace is really a new one: an engine told to
# configure it must never configure host-sim's namespace, nor the host's.
start_guest() {
    ip netns exec "$HS" unshare --net sleep 1000 &
    GUEST_PID=$!
    # Only once unshare has exec'd sleep is the process in its own namespace.
    for _ in $(seq 100); do
        [ "$(cat /proc/$GUEST_PID/comm 2>/dev/null)" = sleep ] && break
        sleep 0.05
    done
    in_new_netns "$GUEST_PID" || { echo "guest namespace not ready" >&2; return 1; }
}

# Whether process PID is in a network namespace of its own: not host-sim's ($HS), not this
# shell's, nor that of any further PIDs given (the namespaces it was made from).
in_new_netns() {
    local ns path pid
    ns=$(stat -L -c %i "/proc/$1/ns/net") || return 1
    shift
    local paths=("/run/netns/$HS" /proc/self/ns/net)
    for pid in "$@"; do
        paths+=("/proc/$pid/ns/net")
    done
    for path in "${paths[@]}"; do
        [ "$ns" != "$(stat -L -c %i "$path")" ] || return 1
    done
}

# pasta refuses to run as root, and user nobody needs a usable /dev/net/tun: re-runs the calling
# script (private_tun_node "$0" "$@") in a private mount namespace holding a 0666 node of its
# own, so nothing outside changes. Call it before making anything that should not be made twice.
private_tun_node() {
    if [ -z "${BENCH_PRIVATE_MOUNTS:-}" ]; then
        exec unshare --mount env BENCH_PRIVATE_MOUNTS=1 "$@"
    fi
    TUN_DIR=$(mktemp -d)
    mount -t tmpfs -o mode=0755 none "$TUN_DIR"
    mknod -m 0666 "$TUN_DIR/tun" c 10 200
    mount --bind "$TUN_DIR/tun" /dev/net/tun
}

# Undoes private_tun_node (for the cleanup trap; harmless if it was not called).
remove_tun_node() {
    [ -n "${TUN_DIR:-}" ] && { umount /dev/net/tun "$TUN_DIR"; rmdir "$TUN_DIR"; } 2>/dev/null
    TUN_DIR=""
}

# The version of the pasta at PATH: Debian's build says "unknown version"; its package knows.
pasta_version() {
    local version
    version=$("$1" --version | head -1 | awk '{print $2}')
    [ "$version" = unknown ] && version=$(dpkg-query -W -f='${Version}' passt 2>/dev/null || echo unknown)
    echo "$version"
}

hs() { ip netns exec "$HS" "$@"; }

# Makes host-sim ($HS), documentation addresses only: loopback, and a veth pair holding
# 192.0.2.1 (hs0, the default route via 192.0.2.254) and $SERVER (hs1); with SERVER6 set, also
# 2001:db8::1 and $SERVER6.
make_host_sim() {
    ip netns add "$HS"
    hs ip link set lo up
    hs ip link add hs0 type veth peer name hs1
    hs ip addr add 192.0.2.1/24 dev hs0
    hs ip addr add "$SERVER/24" dev hs1
    if [ -n "${SERVER6:-}" ]; then
        hs ip addr add 2001:db8::1/64 dev hs0 nodad
        hs ip addr add "$SERVER6/64" dev hs1 nodad
    fi
    hs ip link set hs0 up
    hs ip link set hs1 up
    hs ip route add default via 192.0.2.254 dev hs0
}

# Stops unless run as root with each of the tools named on PATH (HINT says how to get them), then
# builds slirp-ns in release mode and sets SLIRP_NS to it.
bench_setup() {
    local hint=$1 tool
    shift
    [ "$(id -u)" = 0 ] || { echo "run as root: the benchmark creates network namespaces" >&2; exit 1; }
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing $tool${hint:+ ($hint)}" >&2; exit 1; }
    done
    (cd "$ROOT" && cargo build --release --quiet --bin slirp-ns)
    SLIRP_NS=$ROOT/target/$(rustc --print host-tuple)/release/slirp-ns
}
