#!/usr/bin/env bash
# Side-by-side benchmark of slirp-ns, slirp4netns and pasta, in one run, on this machine.
#
# Usage (as root):  bench/compare.sh [ROUNDS] [SECONDS]      defaults: 3 rounds, 2 s per test
#   ENGINES="slirp-ns slirp4netns pasta slirp-ns-pasta"  which engines to run (those missing
#                                          are skipped); slirp-ns-pasta is slirp-ns started as
#                                          pasta, run exactly as pasta is (its "vs" column)
#   MTUS="65520 1500"                      MTUs to test
#   OUT=bench/results.md                   where the Markdown table goes (also printed)
#   TESTS="tcp tcp6 fwd crr rr udp udprate hold"   which groups of tests to run (all by
#                                          default; udprate searches the rate under 1% loss)
#   SLIRP_NS_ARGS="--busy-poll=0"         further options for slirp-ns (for A/B runs)
#   PASTA=/path/to/pasta                   which pasta to run (default: the one on PATH); a
#                                          current one built from source is what users compare with
#
# Needs: iperf3, slirp4netns, pasta (Debian: apt-get install iperf3 slirp4netns passt),
# iproute2, python3. Builds slirp-ns and the bench_tcp example in release mode.
#
# Topology: a throwaway "host-sim" network namespace holding 192.0.2.1/24 (default route via
# 192.0.2.254, nothing behind it) and 198.51.100.1/24, where the servers listen (and, for the
# IPv6 runs, 2001:db8::1/64 and 2001:db8:1::1/64). Each engine
# runs in host-sim and gives a guest namespace networking; the clients run in the guest.
# Nothing leaves host-sim. pasta runs in its own exec mode (it makes the namespace) with
# --config-net; slirp-ns and slirp4netns attach to a namespace made by unshare, with -c.
#
# Per test, engine and MTU: the median of ROUNDS runs, rounds interleaved between engines.
# Measured: iperf3 throughput guest->host and host->guest over IPv4, and over IPv6 for the
# engines that give the guest IPv6 routes (slirp-ns, slirp4netns); CPU seconds of the engine process
# per GB moved (also through the port forwards); TCP connections per second (connect, 64-byte echo, close, sequential) and the
# mean 1-byte request/response time on one connection, each with the engine's CPU time per
# connection or round trip; UDP throughput both ways (iperf3 -u, unlimited rate, 1400-byte and
# 65507-byte datagrams: what arrives, what was lost, the engine's CPU per GB), and the highest
# UDP rate each way with under 1% lost (1400-byte datagrams); the engine's RSS idle and with 10,000 TCP
# connections open through it (and how many of them opened). Ratios are slirp-ns / other engine
# (for CPU per GB, latency and memory, lower is better, so the ratio is other / slirp-ns).
# The throughput figures are also drawn in bench/results.png (gnuplot, when installed).
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_TEST=${2:-2}
ENGINES=${ENGINES:-"slirp-ns slirp4netns pasta slirp-ns-pasta"}
MTUS=${MTUS:-"65520 1500"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${OUT:-$ROOT/bench/results.md}
PLOT=${PLOT:-${OUT%.md}.png}
CONNECTIONS=${CONNECTIONS:-10000}
TESTS=${TESTS:-"tcp tcp6 fwd crr rr udp udprate hold"}
SLIRP_NS_ARGS=${SLIRP_NS_ARGS:-}
PASTA=${PASTA:-pasta}
want() { [[ " $TESTS " == *" $1 "* ]]; }
SERVER=198.51.100.1
SERVER6=2001:db8:1::1
FWD_PORT=5301
GUEST_IPERF_PORT=5201
HS=slirpns-bench-$$
[ "$(id -u)" = 0 ] || { echo "run as root: the benchmark creates network namespaces" >&2; exit 1; }
private_tun_node "$0" "$@"
WORK=$(mktemp -d)
chmod 1777 "$WORK"  # pasta, run unprivileged, writes its PID file here
for tool in iperf3 ip python3 nsenter unshare; do
    command -v $tool >/dev/null || { echo "missing $tool (apt-get install iperf3 iproute2 python3 util-linux)" >&2; exit 1; }
done

(cd "$ROOT" && cargo build --release --quiet --bin slirp-ns --example bench_tcp)
RELEASE=$ROOT/target/$(rustc --print host-tuple)/release
SLIRP_NS=$RELEASE/slirp-ns
BENCH_TCP=$RELEASE/examples/bench_tcp

available=""
for e in $ENGINES; do
    case $e in
        slirp-ns|slirp-ns-pasta) available+=" $e" ;;
        slirp4netns) command -v slirp4netns >/dev/null && available+=" $e" || echo "skipping slirp4netns: not installed" >&2 ;;
        pasta) command -v "$PASTA" >/dev/null && available+=" $e" || echo "skipping pasta: not installed" >&2 ;;
    esac
done

cleanup() {
    set +e
    [ -n "${ENGINE_PID:-}" ] && kill "$ENGINE_PID" 2>/dev/null
    [ -n "${GUEST_PID:-}" ] && kill "$GUEST_PID" 2>/dev/null
    pkill -f "bench_tcp sink" 2>/dev/null
    pkill -f "iperf3 -s -B $SERVER" 2>/dev/null
    pkill -f "iperf3 -s -B $SERVER6" 2>/dev/null
    [ -n "${SERVER_PIDS:-}" ] && kill $SERVER_PIDS 2>/dev/null
    ip netns del "$HS" 2>/dev/null
    rm -rf "$WORK"
    remove_tun_node
}
trap cleanup EXIT

# Background processes are started with `ip netns exec` itself, not through `hs`, so that $!
# is their own PID (ip netns exec runs the command in place): the PID whose CPU is measured.
make_host_sim
# The engines' host sockets close actively (TIME_WAIT); let connection-rate runs reuse ports.
hs sysctl -qw net.ipv4.tcp_tw_reuse=1
hs iperf3 -s -B $SERVER -D
hs iperf3 -s -B $SERVER6 -p 5202 -D
ip netns exec "$HS" "$BENCH_TCP" server $SERVER:7777 &
SERVER_PIDS=$!
ip netns exec "$HS" "$BENCH_TCP" server "[$SERVER6]:7777" &
SERVER_PIDS+=" $!"
sleep 0.3

# Starts ENGINE for a guest at MTU; sets ENGINE_PID (whose CPU is measured) and GUEST_PID
# (a process in the guest namespace, for nsenter).
start_engine() {
    local engine=$1 mtu=$2
    ENGINE_PID="" GUEST_PID=""
    # A fresh forward port each time: the last engine's listener may linger a moment.
    FWD_PORT=$((FWD_PORT + 1))
    case $engine in
        slirp-ns|slirp4netns)
            start_guest || return 1
            if [ "$engine" = slirp4netns ]; then
                rm -f "$WORK/api.sock"
                ip netns exec "$HS" slirp4netns -c -6 -m "$mtu" -a "$WORK/api.sock" "$GUEST_PID" tap0 \
                    >"$WORK/engine.log" 2>&1 &
            else
                # shellcheck disable=SC2086  # SLIRP_NS_ARGS is a list of options
                ip netns exec "$HS" "$SLIRP_NS" -c -6 -m "$mtu" -p $FWD_PORT:$GUEST_IPERF_PORT \
                    $SLIRP_NS_ARGS "$GUEST_PID" tap0 >"$WORK/engine.log" 2>&1 &
            fi
            ENGINE_PID=$!
            ;;
        pasta|slirp-ns-pasta)
            local program=$PASTA
            if [ "$engine" = slirp-ns-pasta ]; then
                program=$WORK/as-pasta/pasta
                mkdir -p "$WORK/as-pasta" && ln -sf "$SLIRP_NS" "$program"
            fi
            ip netns exec "$HS" setpriv --reuid 65534 --regid 65534 --clear-groups -- \
                "$program" --config-net -q -f -m "$mtu" -t $FWD_PORT:$GUEST_IPERF_PORT -u none -T none -U none \
                -P "$WORK/pasta.pid" -- sleep "$GUEST_SLEEP" >"$WORK/engine.log" 2>&1 &
            local wrapper=$!
            for _ in $(seq 50); do [ -s "$WORK/pasta.pid" ] && break; sleep 0.1; done
            ENGINE_PID=$(cat "$WORK/pasta.pid")
            rm -f "$WORK/pasta.pid"
            GUEST_PID=$(pgrep -P "$ENGINE_PID" sleep || pgrep -P "$wrapper" sleep)
            ;;
    esac
    # Ready when the guest reaches the server.
    for _ in $(seq 100); do
        nsenter -t "$GUEST_PID" -n "$BENCH_TCP" probe $SERVER:7777 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$engine did not come up at MTU $mtu:" >&2
    cat "$WORK/engine.log" >&2
    return 1
}

# The port forward host:FWD_PORT -> guest:GUEST_IPERF_PORT (slirp-ns and pasta take it on their
# command line; slirp4netns through its API socket), and an iperf3 server behind it.
start_forward() {
    local engine=$1
    if [ "$engine" = slirp4netns ]; then
        ip netns exec "$HS" python3 - "$WORK/api.sock" $FWD_PORT $GUEST_IPERF_PORT <<'PY' >/dev/null
import socket, sys, json
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(json.dumps({"execute": "add_hostfwd", "arguments": {"proto": "tcp",
    "host_addr": "0.0.0.0", "host_port": int(sys.argv[2]), "guest_port": int(sys.argv[3])}}).encode())
s.shutdown(socket.SHUT_WR)
print(s.recv(1024))
PY
    fi
    in_guest iperf3 -s -p $GUEST_IPERF_PORT -D
    sleep 0.3
}

# iperf3 from host-sim to the forward at ADDR; prints "gbits bytes".
iperf_forward() {
    ip netns exec "$HS" iperf3 -c "$1" -p $FWD_PORT -t "$SECONDS_PER_TEST" -J | python3 -c '
import json, sys
r = json.load(sys.stdin)["end"]["sum_received"]
print(r["bits_per_second"] / 1e9, r["bytes"])'
}

# How long pasta's guest process sleeps: 1000 s, and this run's PID as a fraction, so that
# stop_engine finds this run's and nobody else's.
GUEST_SLEEP=1000.$$
stop_engine() {
    pkill -f "iperf3 -s -p $GUEST_IPERF_PORT" 2>/dev/null || true
    # pasta's command (the guest's process) outlives pasta: it is found by its own duration,
    # and killed outright (it is the init of a PID namespace: it ignores SIGTERM).
    pkill -KILL -f "^sleep $GUEST_SLEEP\$" 2>/dev/null || true
    kill "$ENGINE_PID" "$GUEST_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$ENGINE_PID" 2>/dev/null || break
        sleep 0.1
    done
    ENGINE_PID="" GUEST_PID=""
}

# An engine that crashed has no /proc entry: its figures are left out, and it is noted.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mib() { awk '/^VmRSS/ {print $2 / 1024}' "/proc/$1/status"; }

# Opens CONNECTIONS TCP connections from the guest to a server that holds them; records how
# many opened and the engine's RSS with them open.
hold_connections() {
    local engine=$1 mtu=$2
    ip netns exec "$HS" "$BENCH_TCP" sink $SERVER:7778 &
    local sink=$!
    sleep 0.2
    local fifo=$WORK/hold.in
    rm -f "$fifo"; mkfifo "$fifo"
    local before
    before=$(rss_mib "$ENGINE_PID")
    in_guest "$BENCH_TCP" hold $SERVER:7778 "$CONNECTIONS" <"$fifo" >"$WORK/hold.out" &
    local holder=$!
    exec {keep}>"$fifo"
    for _ in $(seq 600); do [ -s "$WORK/hold.out" ] && break; sleep 0.1; done
    if read -r opened failed <"$WORK/hold.out"; then
        record "$engine" "$mtu" conn_opened "$opened"
        local after
        after=$(rss_mib "$ENGINE_PID")
        record "$engine" "$mtu" rss_conns "$after"
        [ "$opened" -gt 0 ] && record "$engine" "$mtu" bytes_per_conn \
            "$(python3 -c "print(($after - $before) * 1048576 / $opened)")"
    fi
    exec {keep}>&-
    wait "$holder" 2>/dev/null || true
    kill "$sink" 2>/dev/null; wait "$sink" 2>/dev/null || true
}

# iperf3 UDP run as fast as the sender goes, with datagrams of LEN bytes: prints the Gbit/s
# that arrived, the bytes that arrived and the percentage lost on the way (in the engine or the
# queues before and after it).
iperf_udp() {
    local len=$1
    shift
    in_guest iperf3 -c $SERVER -u -b 0 -l "$len" -t "$SECONDS_PER_TEST" -J "$@" | python3 -c '
import json, sys
end = json.load(sys.stdin).get("end", {})
if "sum" in end:
    got = end.get("sum_received", end["sum"])
    print(got["bits_per_second"] / 1e9, got["bytes"], end["sum"].get("lost_percent", 0))'
}

# The highest rate (Mbit/s offered, 1400-byte datagrams) at which under 1% is lost: doubled
# from 250 Mbit/s while the loss stays under 1%, then narrowed down between the last rate that
# kept it and the first that did not (as RFC 2544 finds a device's throughput). Prints
# "received_gbits rate_mbits"; flags (-R) as for iperf_udp.
udp_rate_at_low_loss() {
    local rate=250 good=0 good_gbits=0 bad=0 gbits bytes lost step
    while [ "$rate" -le 64000 ]; do
        read -r gbits bytes lost < <(iperf_udp 1400 -b "${rate}M" "$@") || break
        if python3 -c "import sys; sys.exit(0 if $lost < 1 else 1)"; then
            good=$rate good_gbits=$gbits
            rate=$((rate * 2))
        else
            bad=$rate
            break
        fi
    done
    if [ "$bad" -gt 0 ]; then
        for step in 1 2 3; do
            rate=$(((good + bad) / 2))
            read -r gbits bytes lost < <(iperf_udp 1400 -b "${rate}M" "$@") || break
            if python3 -c "import sys; sys.exit(0 if $lost < 1 else 1)"; then
                good=$rate good_gbits=$gbits
            else
                bad=$rate
            fi
        done
    fi
    echo "$good_gbits $good"
}

in_guest() { nsenter -t "$GUEST_PID" -n "$@"; }

RESULTS=$WORK/results.tsv
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# iperf3 run to SERVER (or, with -6 first, to SERVER6): prints "gbits bytes" from the
# receiver's side.
iperf() {
    local target=(-c $SERVER)
    [ "${1:-}" = -6 ] && { target=(-c $SERVER6 -p 5202); shift; }
    in_guest iperf3 "${target[@]}" -t "$SECONDS_PER_TEST" -J "$@" | python3 -c '
import json, sys
r = json.load(sys.stdin)["end"]["sum_received"]
print(r["bits_per_second"] / 1e9, r["bytes"])'
}

hz=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
    for mtu in $MTUS; do
        for engine in $available; do
            echo "round $round, MTU $mtu, $engine" >&2
            start_engine "$engine" "$mtu" || { stop_engine; continue; }
            [ "$mtu" = 1500 ] && record "$engine" "$mtu" rss_idle "$(rss_mib "$ENGINE_PID")"
            for dir in up down; do
                want tcp || continue
                flag=""; [ $dir = down ] && flag="-R"
                before=$(cpu_ticks "$ENGINE_PID")
                read -r gbits bytes < <(iperf $flag)
                after=$(cpu_ticks "$ENGINE_PID")
                record "$engine" "$mtu" "tcp_$dir" "$gbits"
                record "$engine" "$mtu" "cpu_per_gb_$dir" \
                    "$(python3 -c "print(($after - $before) / $hz / ($bytes / 1e9))")"
            done
            # IPv6, where the engine routes it: once the guest has its address and route.
            if [ "${engine%pasta}" = "$engine" ] && want tcp6; then
                for _ in $(seq 50); do
                    in_guest "$BENCH_TCP" probe "[$SERVER6]:7777" >/dev/null 2>&1 && break
                    sleep 0.1
                done
                for dir in up down; do
                    flag=""; [ $dir = down ] && flag="-R"
                    if read -r gbits _ < <(iperf -6 $flag); then
                        record "$engine" "$mtu" "tcp6_$dir" "$gbits"
                    fi
                done
            fi
            want fwd && start_forward "$engine"
            # From host loopback (slirp-ns: the splice path) and from a host-sim address
            # (slirp-ns: through the TAP).
            for client in lo tap; do
                want fwd || continue
                addr=127.0.0.1; [ $client = tap ] && addr=192.0.2.1
                before=$(cpu_ticks "$ENGINE_PID")
                if read -r gbits bytes < <(iperf_forward $addr); then
                    after=$(cpu_ticks "$ENGINE_PID")
                    record "$engine" "$mtu" "fwd_$client" "$gbits"
                    record "$engine" "$mtu" "cpu_per_gb_fwd_$client" \
                        "$(python3 -c "print(($after - $before) / $hz / ($bytes / 1e9))")"
                fi
            done
            # UDP both ways, 1400-byte datagrams and the largest there are (fragments at
            # MTU 1500), with the loss and the engine's CPU time per GB that arrived.
            for size in 1400 65507; do
                want udp || continue
                name=udp; [ $size = 65507 ] && name=udpbig
                for dir in up down; do
                    flag=""; [ $dir = down ] && flag="-R"
                    before=$(cpu_ticks "$ENGINE_PID")
                    if read -r gbits bytes lost < <(iperf_udp $size $flag); then
                        after=$(cpu_ticks "$ENGINE_PID")
                        record "$engine" "$mtu" "${name}_$dir" "$gbits"
                        record "$engine" "$mtu" "${name}_loss_$dir" "$lost"
                        [ "$bytes" -gt 0 ] && record "$engine" "$mtu" "cpu_per_gb_${name}_$dir" \
                            "$(python3 -c "print(($after - $before) / $hz / ($bytes / 1e9))")"
                    fi
                    if [ ! -d "/proc/$ENGINE_PID" ]; then
                        echo "$engine crashed (UDP $size bytes $dir, MTU $mtu)" >&2
                        record "$engine" "$mtu" crashed 1
                        break 2
                    fi
                done
            done
            [ -d "/proc/$ENGINE_PID" ] || { stop_engine; continue; }
            for dir in up down; do
                want udprate || continue
                flag=""; [ $dir = down ] && flag="-R"
                read -r gbits _ < <(udp_rate_at_low_loss $flag)
                record "$engine" "$mtu" "udprate_$dir" "$gbits"
            done
            if [ "$mtu" = 1500 ]; then
                # The rates, and the engine's CPU time per connection / round trip: the
                # rates are bound by how fast the processes involved wake each other (the
                # same for every engine), the CPU time is the engine's own cost.
                if want crr; then
                    before=$(cpu_ticks "$ENGINE_PID")
                    rate=$(in_guest "$BENCH_TCP" crr $SERVER:7777 "$SECONDS_PER_TEST")
                    after=$(cpu_ticks "$ENGINE_PID")
                    record "$engine" "$mtu" crr "$rate"
                    record "$engine" "$mtu" cpu_per_conn \
                        "$(python3 -c "print(($after - $before) / $hz * 1e6 / ($rate * $SECONDS_PER_TEST))")"
                fi
                if want rr; then
                    before=$(cpu_ticks "$ENGINE_PID")
                    micros=$(in_guest "$BENCH_TCP" rr $SERVER:7777 "$SECONDS_PER_TEST")
                    after=$(cpu_ticks "$ENGINE_PID")
                    record "$engine" "$mtu" rr "$micros"
                    record "$engine" "$mtu" cpu_per_rr \
                        "$(python3 -c "print(($after - $before) / $hz * $micros / $SECONDS_PER_TEST)")"
                fi
                # Last: an engine may not recover from this many connections.
                want hold && hold_connections "$engine" "$mtu"
            fi
            stop_engine
        done
    done
done

VERSIONS="slirp-ns $("$SLIRP_NS" --version | head -1 | awk '{print $3}')"
command -v slirp4netns >/dev/null && VERSIONS+=", slirp4netns $(slirp4netns --version | head -1 | awk '{print $3}')"
command -v "$PASTA" >/dev/null && VERSIONS+=", pasta $(pasta_version "$PASTA")"
export VERSIONS CONNECTIONS
python3 - "$RESULTS" "$OUT" "$ROUNDS" "$SECONDS_PER_TEST" "$WORK/plot.dat" <<'PY'
import statistics, sys, collections, datetime, platform
path, out, rounds, secs, plot_data = sys.argv[1:]
runs = collections.defaultdict(list)
for line in open(path):
    engine, mtu, test, value = line.rstrip("\n").split("\t")
    try:
        runs[(engine, int(mtu), test)].append(float(value))
    except ValueError:
        pass
engines = [e for e in ["slirp-ns", "slirp4netns", "pasta", "slirp-ns-pasta"] if any(k[0] == e for k in runs)]
tests = [
    ("tcp_up", "guest -> host, Gbit/s", True),
    ("tcp_down", "host -> guest, Gbit/s", True),
    ("tcp6_up", "guest -> host over IPv6, Gbit/s", True),
    ("tcp6_down", "host -> guest over IPv6, Gbit/s", True),
    ("cpu_per_gb_up", "CPU s per GB, guest -> host", False),
    ("cpu_per_gb_down", "CPU s per GB, host -> guest", False),
    ("fwd_lo", "port forward host->guest from 127.0.0.1, Gbit/s", True),
    ("fwd_tap", "port forward host->guest from a host address, Gbit/s", True),
    ("cpu_per_gb_fwd_lo", "CPU s per GB, port forward from 127.0.0.1", False),
    ("cpu_per_gb_fwd_tap", "CPU s per GB, port forward from a host address", False),
    ("udprate_up", "UDP guest -> host under 1% loss, 1400 bytes, Gbit/s", True),
    ("udprate_down", "UDP host -> guest under 1% loss, 1400 bytes, Gbit/s", True),
    ("udp_up", "UDP guest -> host, 1400-byte datagrams, Gbit/s", True),
    ("udp_down", "UDP host -> guest, 1400-byte datagrams, Gbit/s", True),
    ("udp_loss_up", "UDP guest -> host, 1400 bytes, % lost", False),
    ("udp_loss_down", "UDP host -> guest, 1400 bytes, % lost", False),
    ("cpu_per_gb_udp_up", "CPU s per GB, UDP guest -> host, 1400 bytes", False),
    ("cpu_per_gb_udp_down", "CPU s per GB, UDP host -> guest, 1400 bytes", False),
    ("udpbig_up", "UDP guest -> host, 65507-byte datagrams, Gbit/s", True),
    ("udpbig_down", "UDP host -> guest, 65507-byte datagrams, Gbit/s", True),
    ("udpbig_loss_up", "UDP guest -> host, 65507 bytes, % lost", False),
    ("udpbig_loss_down", "UDP host -> guest, 65507 bytes, % lost", False),
    ("cpu_per_gb_udpbig_up", "CPU s per GB, UDP guest -> host, 65507 bytes", False),
    ("cpu_per_gb_udpbig_down", "CPU s per GB, UDP host -> guest, 65507 bytes", False),
    ("crr", "TCP connections per second", True),
    ("cpu_per_conn", "engine CPU µs per connection", False),
    ("rr", "1-byte round trip, µs", False),
    ("cpu_per_rr", "engine CPU µs per round trip", False),
    ("rss_idle", "engine RSS idle, MiB", False),
    ("conn_opened", "TCP connections held open (of %s)" % __import__("os").environ.get("CONNECTIONS", "10000"), True),
    ("rss_conns", "engine RSS with them open, MiB", False),
    ("bytes_per_conn", "engine memory per open connection, bytes", False),
]
others = [e for e in engines if e not in ("slirp-ns", "slirp-ns-pasta")]
# slirp-ns as pasta against pasta, both run the same way.
pasta_pair = "pasta" in engines and "slirp-ns-pasta" in engines
head = ("| test | MTU | " + " | ".join(engines) + "".join(f" | vs {o}" for o in others)
        + (" | as pasta vs pasta" if pasta_pair else "") + " |")
lines = [
    f"Benchmark {datetime.date.today()}, {platform.node()}, kernel {platform.release()}: "
    f"median of {rounds} rounds, {secs} s each. Engines: {__import__('os').environ.get('VERSIONS', '?')}.",
    "",
    head,
    "|" + "---|" * (head.count("|") - 1),
]
for test, label, higher_better in tests:
    for mtu in sorted({k[1] for k in runs}, reverse=True):
        med = {e: statistics.median(runs[(e, mtu, test)]) for e in engines if runs.get((e, mtu, test))}
        if "slirp-ns" not in med:
            continue
        cells = [f"{med[e]:.3g}" if e in med else "-" for e in engines]
        ratios = []
        for o in others:
            if o in med and med[o] > 0 and med["slirp-ns"] > 0:
                r = med["slirp-ns"] / med[o] if higher_better else med[o] / med["slirp-ns"]
                ratios.append(f"{r:.2f}x")
            else:
                ratios.append("-")
        if pasta_pair:
            ours, theirs = med.get("slirp-ns-pasta", 0), med.get("pasta", 0)
            if ours > 0 and theirs > 0:
                ratios.append(f"{ours / theirs if higher_better else theirs / ours:.2f}x")
            else:
                ratios.append("-")
        lines.append(f"| {label} | {mtu} | " + " | ".join(cells + ratios) + " |")
lines += ["", "slirp-ns over IPv6 against IPv4 (same run): " + ", ".join(
    f"{d} {mtu}: {statistics.median(runs[('slirp-ns', mtu, 'tcp6_' + d)]) / statistics.median(runs[('slirp-ns', mtu, 'tcp_' + d)]):.2f}"
    for mtu in sorted({k[1] for k in runs}, reverse=True) for d in ("up", "down")
    if runs.get(("slirp-ns", mtu, "tcp6_" + d)) and runs.get(("slirp-ns", mtu, "tcp_" + d)))]
# The throughput medians, one row per test and MTU, one column per engine, for gnuplot.
with open(plot_data, "w") as f:
    f.write("test " + " ".join(engines) + "\n")
    for test, label, higher_better in tests:
        if not label.endswith("Gbit/s"):
            continue
        for mtu in sorted({k[1] for k in runs}, reverse=True):
            if not runs.get(("slirp-ns", mtu, test)):
                continue
            short = label.replace(", Gbit/s", "").replace("port forward host->guest", "forward")
            name = '"%s, MTU %d"' % (short, mtu)
            f.write(name + " " + " ".join(
                "%.3f" % statistics.median(runs[(e, mtu, test)]) if runs.get((e, mtu, test)) else "0"
                for e in engines) + "\n")
text = "\n".join(lines) + "\n\nRatios: above 1 means slirp-ns is better.\n"
print(text)
open(out, "w").write(text)
PY

if [ "$(wc -l <"$WORK/plot.dat")" -le 1 ]; then
    echo "no throughput figures: plot skipped" >&2
elif command -v gnuplot >/dev/null; then
    columns=$(head -1 "$WORK/plot.dat" | wc -w)
    gnuplot <<GP
set terminal pngcairo size 1400,760 font ",9"
set output "$PLOT"
set title "slirp-ns, slirp4netns and pasta: throughput (Gbit/s, medians of $ROUNDS rounds)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top right autotitle columnheader
set rmargin 12
set bmargin 12
set ylabel "Gbit/s"
set xtics rotate by -35 scale 0 noenhanced
set grid ytics
plot for [i=2:$columns] "$WORK/plot.dat" using i:xtic(1)
GP
    echo "plot: $PLOT"
else
    echo "no gnuplot: plot skipped (apt-get install gnuplot-nox)" >&2
fi
