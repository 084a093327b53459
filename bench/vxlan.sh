#!/usr/bin/env bash
# TCP through a VXLAN tunnel between two rootless nodes, as usernetes and k3s join theirs
# (flannel's VXLAN, UDP 8472): each node is a network namespace behind its own engine in
# host-sim, publishing its VXLAN port with a UDP forward on host-sim's 192.0.2.1; iperf3 runs
# between the nodes' overlay addresses (203.0.113.1 and .2), both ways. Engines compared:
# slirp-ns and slirp4netns (pasta is left out: its forwards make its node's own packets
# unroutable here).
#
# Usage (as root):  bench/vxlan.sh [ROUNDS] [SECONDS]       defaults: 3 rounds, 5 s per run
#   ENGINES="slirp-ns slirp4netns"   MTU=1500   OUT=bench/vxlan.md
#
# Needs: iperf3, slirp4netns, iproute2 (ip, bridge), python3. Nothing leaves host-sim.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ROUNDS=${1:-3}
SECONDS_PER_TEST=${2:-5}
ENGINES=${ENGINES:-"slirp-ns slirp4netns"}
MTU=${MTU:-1500}
OUT=${OUT:-$ROOT/bench/vxlan.md}
SERVER=198.51.100.1
PORT_A=8472
PORT_B=8473

bench_setup "apt-get install iperf3 slirp4netns iproute2 python3" iperf3 ip bridge python3 nsenter
HS=slirp-ns-vxlan-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    ip netns del "$HS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
make_host_sim

# A JSON request to the API socket at PATH.
api() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
print(s.recv(65536).decode())
PY
}

# Starts node NAME (a guest behind ENGINE) publishing its VXLAN port on 192.0.2.1:HOST_PORT;
# sets NODE_PID to the guest's process.
start_node() {
    local engine=$1 name=$2 host_port=$3 sock=$WORK/$2.sock binary
    start_guest
    NODE_PID=$GUEST_PID
    PIDS+=("$GUEST_PID")
    binary=$SLIRP_NS
    [ "$engine" = slirp4netns ] && binary=slirp4netns
    rm -f "$sock"
    ip netns exec "$HS" "$binary" -c -m "$MTU" -a "$sock" "$GUEST_PID" tap0 >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    api "$sock" "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"udp\",\"host_addr\":\"192.0.2.1\",\"host_port\":$host_port,\"guest_port\":8472}}" >/dev/null
}

# The node's end of the tunnel: OVERLAY/24 on vxlan0, its frames to the other node's
# published PEER_PORT.
tunnel() {
    local pid=$1 overlay=$2 peer_port=$3
    nsenter -t "$pid" -n ip link add vxlan0 type vxlan id 42 dstport 8472 nolearning
    nsenter -t "$pid" -n bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 192.0.2.1 port "$peer_port"
    nsenter -t "$pid" -n ip addr add "$overlay/24" dev vxlan0
    nsenter -t "$pid" -n ip link set vxlan0 up
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for engine in $ENGINES; do
        command -v "$engine" >/dev/null || [ "$engine" = slirp-ns ] || continue
        echo "round $round, $engine" >&2
        start_node "$engine" a $PORT_A
        local_a=$NODE_PID
        start_node "$engine" b $PORT_B
        local_b=$NODE_PID
        tunnel "$local_a" 203.0.113.1 $PORT_B
        tunnel "$local_b" 203.0.113.2 $PORT_A
        nsenter -t "$local_b" -n iperf3 -s -1 -D -B 203.0.113.2 >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            nsenter -t "$local_a" -n ping -c 1 -W 1 203.0.113.2 >/dev/null 2>&1 && break
        done
        for dir in up down; do
            flag=""; [ $dir = down ] && flag="-R"
            nsenter -t "$local_b" -n iperf3 -s -1 -D -B 203.0.113.2 >/dev/null 2>&1 || true
            sleep 0.2
            if gbits=$(nsenter -t "$local_a" -n iperf3 -c 203.0.113.2 -t "$SECONDS_PER_TEST" -J $flag |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)'); then
                printf '%s\t%s\t%s\n' "$engine" "$dir" "$gbits" >>"$RESULTS"
            fi
        done
        for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        PIDS=()
        sleep 0.5
    done
done

python3 - "$RESULTS" "$OUT" "$ROUNDS" "$SECONDS_PER_TEST" "$MTU" <<'PY'
import collections, datetime, platform, statistics, sys
path, out, rounds, secs, mtu = sys.argv[1:]
runs = collections.defaultdict(list)
for line in open(path):
    engine, direction, value = line.split("\t")
    runs[(engine, direction)].append(float(value))
engines = [e for e in ("slirp-ns", "slirp4netns") if any(k[0] == e for k in runs)]
lines = [
    f"VXLAN between two nodes, {datetime.date.today()}, {platform.node()}, kernel "
    f"{platform.release()}: TCP through the tunnel (iperf3), Gbit/s, median of {rounds} rounds "
    f"of {secs} s, engines' MTU {mtu}.",
    "",
    "| direction | " + " | ".join(engines) + (" | slirp-ns vs slirp4netns |" if len(engines) == 2 else " |"),
    "|" + "---|" * (len(engines) + 1 + (len(engines) == 2)),
]
for direction, label in (("up", "node A -> node B"), ("down", "node B -> node A")):
    med = {e: statistics.median(runs[(e, direction)]) for e in engines if runs.get((e, direction))}
    cells = [f"{med[e]:.3g}" if e in med else "-" for e in engines]
    ratio = ""
    if len(engines) == 2:
        ratio = f" | {med['slirp-ns'] / med['slirp4netns']:.2f}x" if all(e in med and med[e] > 0 for e in engines) else " | -"
    lines.append(f"| {label} | " + " | ".join(cells) + ratio + " |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
