#!/usr/bin/env bash
# TCP through a lossy link, slirp-ns against slirp4netns in one run, on this machine.
#
# Usage (as root):  bench/lossy.sh [ROUNDS] [SECONDS]     defaults: 3 rounds, 5 s per test
#   LOSSES="0.03 0.10"   drop probabilities to test
#   ENGINES="slirp-ns slirp4netns pasta"
#   PASTA=/path/to/pasta which pasta to run (default: the one on PATH)
#   OUT=bench/lossy.md   where the Markdown table goes (also printed)
#
# Needs: iperf3, slirp4netns, pasta (Debian: passt), iptables, iproute2, python3.
#
# Topology, as tests/it/lossy_links.rs: a throwaway host-sim namespace with the iperf3 server on
# 198.51.100.1; the guest namespace the engine serves (tap0, MTU 1500, configured with -c); a
# host behind the guest (203.0.113.2, the guest routes and masquerades for it), where iperf3
# runs. The guest drops each frame it forwards through tap0, either way, with the probability
# (iptables statistic in FORWARD: loss neither kernel's TCP can see, as on a real network; this
# kernel has no netem). Per engine and loss: the median of ROUNDS runs of iperf3, guest->host
# and host->guest (-R), rounds interleaved between engines. Ratios are slirp-ns / each other
# engine. pasta makes its guest namespace itself (exec mode, as user nobody, tap0 copying
# host-sim's address); the rest is the same.
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_TEST=${2:-5}
LOSSES=${LOSSES:-"0.03 0.10"}
ENGINES=${ENGINES:-"slirp-ns slirp4netns pasta"}
PASTA=${PASTA:-pasta}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${OUT:-$ROOT/bench/lossy.md}
SERVER=198.51.100.1
HS=slirpns-lossy-$$

bench_setup "Debian: apt-get install iperf3 iptables" iperf3 ip iptables python3 nsenter unshare
private_tun_node "$0" "$@"
WORK=$(mktemp -d)
chmod 1777 "$WORK"  # pasta, run unprivileged, writes its PID file here

cleanup() {
    set +e
    [ -n "${ENGINE_PID:-}" ] && kill "$ENGINE_PID" 2>/dev/null
    [ -n "${BEHIND_PID:-}" ] && kill "$BEHIND_PID" 2>/dev/null
    [ -n "${GUEST_PID:-}" ] && kill "$GUEST_PID" 2>/dev/null
    pkill -f "iperf3 -s -B $SERVER" 2>/dev/null
    ip netns del "$HS" 2>/dev/null
    rm -rf "$WORK"
    remove_tun_node
}
trap cleanup EXIT

make_host_sim
hs iperf3 -s -B $SERVER -D
sleep 0.3

in_guest() { nsenter -t "$GUEST_PID" -n -- "$@"; }
behind() { nsenter -t "$BEHIND_PID" -n -- "$@"; }

# Starts ENGINE for a new guest, a host behind it, and the loss; sets ENGINE_PID, GUEST_PID and
# BEHIND_PID.
start() {
    local engine=$1 loss=$2
    case $engine in
        slirp-ns|slirp4netns)
            start_guest
            if [ "$engine" = slirp-ns ]; then
                ip netns exec "$HS" "$SLIRP_NS" -c "$GUEST_PID" tap0 >"$WORK/engine.log" 2>&1 &
            else
                ip netns exec "$HS" slirp4netns -c "$GUEST_PID" tap0 >"$WORK/engine.log" 2>&1 &
            fi
            ENGINE_PID=$!
            ;;
        pasta)
            rm -f "$WORK/pasta.pid"
            ip netns exec "$HS" setpriv --reuid 65534 --regid 65534 --clear-groups -- \
                "$PASTA" --config-net -q -f -I tap0 -m 1500 -t none -u none -T none -U none \
                -P "$WORK/pasta.pid" -- sleep 1000 >"$WORK/engine.log" 2>&1 &
            local wrapper=$!
            for _ in $(seq 50); do [ -s "$WORK/pasta.pid" ] && break; sleep 0.1; done
            ENGINE_PID=$(cat "$WORK/pasta.pid")
            GUEST_PID=$(pgrep -P "$ENGINE_PID" sleep || pgrep -P "$wrapper" sleep)
            in_new_netns "$GUEST_PID" || { echo "pasta's guest is not in a namespace of its own" >&2; return 1; }
            ;;
    esac
    for _ in $(seq 100); do
        in_guest ip -o -4 addr show tap0 2>/dev/null | grep -q inet && break
        sleep 0.05
    done
    # Started directly (not through a shell function, whose $! would be a subshell in this
    # namespace), and checked: nothing below may touch any namespace but a new one.
    nsenter -t "$GUEST_PID" -n -- unshare --net sleep 1000 &
    BEHIND_PID=$!
    for _ in $(seq 100); do
        [ "$(cat /proc/$BEHIND_PID/comm 2>/dev/null)" = sleep ] && break
        sleep 0.05
    done
    in_new_netns "$BEHIND_PID" "$GUEST_PID" \
        || { echo "the host behind the guest is not in a namespace of its own" >&2; return 1; }
    in_guest ip link add rt0 type veth peer name rt1 netns "$BEHIND_PID"
    in_guest ip addr add 203.0.113.1/24 dev rt0
    in_guest ip link set rt0 up
    behind ip link set lo up
    behind ip addr add 203.0.113.2/24 dev rt1
    behind ip link set rt1 up
    behind ip route add default via 203.0.113.1
    in_guest sysctl -qw net.ipv4.ip_forward=1
    in_guest iptables -t nat -A POSTROUTING -o tap0 -j MASQUERADE
    for direction in -i -o; do
        in_guest iptables -A FORWARD "$direction" tap0 -m statistic --mode random \
            --probability "$loss" -j DROP
    done
}

stop() {
    kill "$ENGINE_PID" "$BEHIND_PID" "$GUEST_PID" 2>/dev/null || true
    wait "$ENGINE_PID" 2>/dev/null || true
    ENGINE_PID="" BEHIND_PID="" GUEST_PID=""
}

# iperf3 from the host behind the guest; prints Gbit/s received ("0" if it failed).
iperf() {
    behind iperf3 -c $SERVER -t "$SECONDS_PER_TEST" -J "$@" 2>/dev/null | python3 -c '
import json, sys
try:
    print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)
except Exception:
    print(0)'
}

for round in $(seq "$ROUNDS"); do
    for loss in $LOSSES; do
        for engine in $ENGINES; do
            echo "round $round, loss $loss, $engine" >&2
            start "$engine" "$loss"
            echo "$engine $loss g2h $(iperf)" >>"$WORK/results"
            echo "$engine $loss h2g $(iperf -R)" >>"$WORK/results"
            stop
        done
    done
done

VERSIONS="slirp-ns $("$SLIRP_NS" --version | head -1 | awk '{print $3}')"
[[ " $ENGINES " == *" slirp4netns "* ]] && VERSIONS+=", slirp4netns $(slirp4netns --version | head -1 | awk '{print $3}')"
[[ " $ENGINES " == *" pasta "* ]] && VERSIONS+=", pasta $(pasta_version "$PASTA")"
python3 - "$WORK/results" "$ROUNDS" "$SECONDS_PER_TEST" "$ENGINES" "$VERSIONS" <<'PY' | tee "$OUT"
import statistics, sys, datetime, platform
path, rounds, secs, engines, versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5]
runs = {}
for line in open(path):
    engine, loss, way, gbits = line.split()
    runs.setdefault((engine, loss, way), []).append(float(gbits))
print(f"Lossy link benchmark {datetime.date.today()}, kernel {platform.release()} ({versions}): "
      f"median of {rounds} rounds of {secs} s, iperf3 from a host behind the guest, MTU 1500, "
      "random drop both ways in FORWARD on tap0.\n")
others = engines[1:]
print("| loss | direction | " + " | ".join(f"{e}, Mbit/s" for e in engines)
      + "".join(f" | vs {e}" for e in others) + " |")
print("|---|---|" + "---|" * (len(engines) + len(others)))
for loss in sorted({k[1] for k in runs}):
    for way, name in [("g2h", "guest -> host"), ("h2g", "host -> guest")]:
        meds = [statistics.median(runs.get((e, loss, way), [0])) * 1000 for e in engines]
        row = f"| {float(loss) * 100:g}% | {name} | " + " | ".join(f"{m:.0f}" for m in meds)
        for m in meds[1:]:
            row += f" | {meds[0] / m:.1f}x" if m > 0 else " | -"
        print(row + " |")
PY
