#!/usr/bin/env bash
# Does a second thread pay? slirp-ns with one TAP queue (one thread) against --queues 2 (two
# threads, each with its own engine), in one run, on this machine.
#
# Usage (as root):  bench/queues.sh [ROUNDS] [SECONDS]      defaults: 3 rounds, 3 s per test
#   QUEUES="1 2"      queue counts to compare        MTUS="65520 1500"
#   OUT=bench/queues.md
#
# Topology as in compare.sh: a throwaway host-sim namespace (documentation addresses only) with
# an iperf3 server; slirp-ns in host-sim gives a guest namespace networking. Per queue count,
# MTU, direction and number of parallel streams (1 and 4): iperf3 throughput and the CPU
# seconds slirp-ns (all its threads) spent per GB; medians of interleaved rounds.
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_TEST=${2:-3}
QUEUES=${QUEUES:-"1 2"}
MTUS=${MTUS:-"65520 1500"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${OUT:-$ROOT/bench/queues.md}
SERVER=198.51.100.1
HS=slirpns-queues-$$
bench_setup "Debian: apt-get install iperf3" iperf3 ip python3 nsenter unshare
WORK=$(mktemp -d)

cleanup() {
    set +e
    [ -n "${ENGINE_PID:-}" ] && kill "$ENGINE_PID" 2>/dev/null
    [ -n "${GUEST_PID:-}" ] && kill "$GUEST_PID" 2>/dev/null
    pkill -f "iperf3 -s -B $SERVER -p 5299" 2>/dev/null
    ip netns del "$HS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

make_host_sim
hs iperf3 -s -B $SERVER -p 5299 -D
sleep 0.3

start_engine() {
    local queues=$1 mtu=$2
    start_guest || return 1
    ip netns exec "$HS" "$SLIRP_NS" -c -m "$mtu" --queues "$queues" "$GUEST_PID" tap0 \
        >"$WORK/engine.log" 2>&1 &
    ENGINE_PID=$!
    for _ in $(seq 100); do
        nsenter -t "$GUEST_PID" -n ping -c 1 -W 1 10.0.2.2 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/engine.log" >&2
    return 1
}

stop_engine() {
    kill "$ENGINE_PID" "$GUEST_PID" 2>/dev/null || true
    wait "$ENGINE_PID" "$GUEST_PID" 2>/dev/null || true
    ENGINE_PID="" GUEST_PID=""
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
RESULTS=$WORK/results.tsv
: >"$RESULTS"

for round in $(seq "$ROUNDS"); do
    for mtu in $MTUS; do
        for queues in $QUEUES; do
            echo "round $round, MTU $mtu, $queues queue(s)" >&2
            start_engine "$queues" "$mtu" || { stop_engine; continue; }
            for streams in 1 4; do
                for dir in up down; do
                    flag=""; [ $dir = down ] && flag="-R"
                    before=$(cpu_ticks "$ENGINE_PID")
                    read -r gbits bytes < <(nsenter -t "$GUEST_PID" -n iperf3 -c $SERVER -p 5299 \
                        -t "$SECONDS_PER_TEST" -P $streams $flag -J | python3 -c '
import json, sys
r = json.load(sys.stdin)["end"]["sum_received"]
print(r["bits_per_second"] / 1e9, r["bytes"])')
                    after=$(cpu_ticks "$ENGINE_PID")
                    cpu=$(python3 -c "print(($after - $before) / $hz / ($bytes / 1e9))")
                    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$queues" "$mtu" "$dir" "$streams" \
                        "$gbits" "$cpu" >>"$RESULTS"
                done
            done
            stop_engine
        done
    done
done

python3 - "$RESULTS" "$OUT" "$ROUNDS" "$SECONDS_PER_TEST" "$(nproc)" <<'PY'
import collections, datetime, platform, statistics, sys
path, out, rounds, secs, cpus = sys.argv[1:]
gbits, cpu = collections.defaultdict(list), collections.defaultdict(list)
for line in open(path):
    q, mtu, d, streams, g, c = line.split()
    key = (int(mtu), d, int(streams), int(q))
    gbits[key].append(float(g))
    cpu[key].append(float(c))
queues = sorted({k[3] for k in gbits})
lines = [f"Queues benchmark {datetime.date.today()}, {platform.node()} ({cpus} CPUs), kernel "
         f"{platform.release()}: median of {rounds} rounds, {secs} s each.", "",
         "| MTU | direction | streams | " + " | ".join(f"{q} queue(s): Gbit/s, CPU s/GB" for q in queues)
         + " | throughput ratio |",
         "|---|---|---|" + "---|" * len(queues) + "---|"]
for mtu, d, streams in sorted({k[:3] for k in gbits}, key=lambda k: (-k[0], k[1] != "up", k[2])):
    cells, meds = [], []
    for q in queues:
        if gbits.get((mtu, d, streams, q)):
            g = statistics.median(gbits[(mtu, d, streams, q)])
            c = statistics.median(cpu[(mtu, d, streams, q)])
            meds.append(g)
            cells.append(f"{g:.2f}, {c:.2f}")
        else:
            cells.append("-")
    ratio = f"{meds[-1] / meds[0]:.2f}x" if len(meds) == len(queues) and meds[0] > 0 else "-"
    lines.append(f"| {mtu} | {'guest -> host' if d == 'up' else 'host -> guest'} | {streams} | "
                 + " | ".join(cells) + f" | {ratio} |")
text = "\n".join(lines) + f"\n\nThroughput ratio: {queues[-1]} queues / {queues[0]}.\n"
print(text)
open(out, "w").write(text)
PY
