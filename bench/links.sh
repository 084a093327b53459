#!/usr/bin/env bash
# Shallow links: a real User Mode Linux guest, whose network device has a short queue, against
# slirp-ns and the engines users run it with today, in one run, on this machine.
#
# Usage (as root):  bench/links.sh [ROUNDS] [SECONDS]      defaults: 3 rounds, 5 s per test
#   LINKS="bess vde"   which links to run       OUT=bench/links.md
#
# Links, each with the engine users pair it with:
#   bess  UML's vector device (vec0:transport=bess) on a SOCK_SEQPACKET socket:
#         slirp-ns --target-type=bess against slirp4netns --target-type=bess
#   vde   UML's vde device on a vde_switch; the engine on the switch through vde_plug's stdio:
#         `dpipe vde_plug SWITCH = slirp-ns --target-type=stdio --framing=len16` against
#         `dpipe vde_plug SWITCH = slirpvde -s -`, vde2's own
# The guest runs iperf3 against a server in a throwaway host-sim namespace (documentation
# addresses only; the guest's network is 203.0.113.0/24), both directions, and reports the
# receiver's rate and, upward, its own TCP retransmissions. slirp-ns's frames dropped on a full
# link (dropped_tx_queue_full, which backpressure keeps at 0) are read from its API before the
# guest powers off. Medians of interleaved rounds.
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_TEST=${2:-5}
LINKS=${LINKS:-"bess vde"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${OUT:-$ROOT/bench/links.md}
SERVER=198.51.100.1
NETWORK=203.0.113.0
HS=slirpns-links-$$
bench_setup "Debian: apt-get install iperf3 socat user-mode-linux slirp4netns vde2" \
WORK=$(mktemp -d)
chmod 755 "$WORK"  # the guest reads its init script through hostfs

    iperf3 ip python3 socat linux slirp4netns vde_switch vde_plug dpipe slirpvde

cleanup() {
    set +e
    [ -n "${PIDS:-}" ] && kill $PIDS 2>/dev/null
    pkill -f "iperf3 -s -B $SERVER" 2>/dev/null
    ip netns del "$HS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

make_host_sim
hs iperf3 -s -B $SERVER -D
sleep 0.3

# The guest's init: its environment comes from the kernel command line (IF, SERVER, SECS).
cat >"$WORK/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
ip link set lo up
ip link set "$IF" up
ip addr add 203.0.113.100/24 dev "$IF"
ip route add default via 203.0.113.2
# Prints "RESULT <way> <receiver Mbit/s> <sender retransmissions>".
measure() {
    way=$1
    shift
    iperf3 -c "$SERVER" -t "$SECS" -f m "$@" 2>&1 | awk -v way="$way" '
        / sender$/   { retr = $(NF - 1) }
        / receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") rate = $i }
        END          { print "RESULT", way, (rate == "" ? 0 : rate), (retr == "" ? 0 : retr) }'
}
measure g2h
measure h2g -R
echo DONE
sleep 2
poweroff -f
EOF
chmod 755 "$WORK/init"

# Starts LINK's ENGINE in host-sim; sets PIDS, API (empty if the engine has none), and the UML
# device option in DEVICE and its name in IF.
start() {
    local link=$1 engine=$2
    rm -rf "$WORK/engine.sock" "$WORK/uml.sock" "$WORK/api.sock" "$WORK/switch" "$WORK/switch.pid"
    API=""
    case $link in
        bess)
            case $engine in
                slirp-ns) API=$WORK/api.sock
                    hs "$SLIRP_NS" --target-type=bess --cidr $NETWORK/24 -a "$API" "$WORK/engine.sock" & ;;
                slirp4netns)
                    hs slirp4netns --target-type=bess --cidr $NETWORK/24 "$WORK/engine.sock" & ;;
            esac
            PIDS=$!
            for _ in $(seq 100); do [ -S "$WORK/engine.sock" ] && break; sleep 0.05; done
            DEVICE="vec0:transport=bess,dst=$WORK/engine.sock,src=$WORK/uml.sock"
            IF=vec0
            ;;
        vde)
            # In the background it would end at its console's end of file: make it a daemon.
            vde_switch -s "$WORK/switch" -d -p "$WORK/switch.pid"
            for _ in $(seq 100); do [ -s "$WORK/switch.pid" ] && break; sleep 0.05; done
            PIDS=$(cat "$WORK/switch.pid")
            case $engine in
                slirp-ns) API=$WORK/api.sock
                    hs dpipe vde_plug "$WORK/switch" = "$SLIRP_NS" --target-type=stdio --framing=len16 \
                        --cidr $NETWORK/24 -a "$API" & ;;
                slirpvde)
                    hs dpipe vde_plug "$WORK/switch" = slirpvde -H $NETWORK/24 -s - 2>/dev/null & ;;
            esac
            PIDS+=" $!"
            sleep 0.3
            DEVICE="eth0=vde,$WORK/switch"
            IF=eth0
            ;;
    esac
}

stop() {
    # dpipe's children go with their parent's process group only if asked: name them too.
    local children
    children=$(for pid in $PIDS; do pgrep -P "$pid"; done || true)
    kill $PIDS $children 2>/dev/null || true
    wait 2>/dev/null || true
    PIDS=""
}

# Boots the guest on the started link and appends its results to WORK/results.
run_guest() {
    local link=$1 engine=$2
    hs timeout $((SECONDS_PER_TEST * 2 + 60)) linux mem=256M root=/dev/root rootfstype=hostfs \
        rootflags=/ ro init="$WORK/init" IF=$IF SERVER=$SERVER SECS="$SECONDS_PER_TEST" \
        "$DEVICE" con=null con0=fd:0,fd:1 </dev/null 2>&1 |
        while IFS= read -r line; do
            line=${line%$'\r'}
            case $line in
                RESULT*) echo "$link $engine ${line#RESULT }" >>"$WORK/results" ;;
                DONE*)
                    if [ -n "$API" ]; then
                        echo '{"execute":"get_info"}' | socat - "UNIX-CONNECT:$API" | python3 -c '
import json, sys
print(json.load(sys.stdin)["return"]["counters"]["dropped_tx_queue_full"])' |
                            sed "s/^/$link $engine drops /" >>"$WORK/results"
                    fi
                    ;;
            esac
        done
}

for round in $(seq "$ROUNDS"); do
    for link in $LINKS; do
        case $link in
            bess) engines="slirp-ns slirp4netns" ;;
            vde) engines="slirp-ns slirpvde" ;;
            *) echo "unknown link $link" >&2; exit 1 ;;
        esac
        for engine in $engines; do
            echo "round $round, $link, $engine" >&2
            start "$link" "$engine"
            run_guest "$link" "$engine"
            stop
        done
    done
done

python3 - "$WORK/results" "$ROUNDS" "$SECONDS_PER_TEST" "$(linux --version 2>/dev/null | head -1)" <<'PY' | tee "$OUT"
import statistics, sys, datetime, platform
path, rounds, secs, uml = sys.argv[1:5]
rates, retrs, drops = {}, {}, {}
for line in open(path):
    f = line.split()
    if f[2] == "drops":
        drops.setdefault((f[0], f[1]), []).append(int(f[3]))
    else:
        link, engine, way, rate, retr = f
        rates.setdefault((link, engine, way), []).append(float(rate))
        retrs.setdefault((link, engine, way), []).append(int(retr))
med = lambda xs: statistics.median(xs) if xs else 0
print(f"Shallow-link benchmark {datetime.date.today()}, kernel {platform.release()}, guest: "
      f"User Mode Linux{' ' + uml if uml else ''} (mem=256M): median of {rounds} rounds of "
      f"{secs} s, iperf3 from the guest to a server behind the engine, MTU 1500.\n")
print("| link | direction | slirp-ns: Mbit/s, guest retransmits | other engine: Mbit/s, guest retransmits | ratio | slirp-ns frames dropped on a full link |")
print("|---|---|---|---|---|---|")
names = {"bess": ("vec0 bess socket", "slirp4netns"), "vde": ("vde switch, stdio", "slirpvde")}
for link in ["bess", "vde"]:
    title, other = names[link]
    for way, label in [("g2h", "guest -> host"), ("h2g", "host -> guest")]:
        ours, theirs = rates.get((link, "slirp-ns", way)), rates.get((link, other, way))
        if not ours:
            continue
        def cell(engine, xs):
            if not xs:
                return "—"
            r = med(retrs[(link, engine, way)])
            return f"{med(xs):.0f}" + (f", {r:.0f}" if way == "g2h" else "")
        ratio = f"{med(ours) / med(theirs):.2f}x" if theirs and med(theirs) > 0 else "—"
        d = drops.get((link, "slirp-ns"), [])
        print(f"| {title} | {label} | {cell('slirp-ns', ours)} | {other}: {cell(other, theirs)} | "
              f"{ratio} | {max(d) if d else '—'} |")
print("\nRatio: slirp-ns / the other engine. Drops: the most in any round (both directions).")
PY
