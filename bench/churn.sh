#!/usr/bin/env bash
# Memory under churn: slirp-ns's RSS over a long run of short TCP connections, UDP flows from
# ever new ports and pings, sampled as it goes. It may grow while its tables fill (UDP flows
# live 180 s idle); after that it must stay flat.
#
# Usage (as root):  bench/churn.sh [SECONDS]      default: 600
#   OUT=bench/churn.md  RATE=50 (TCP connections and UDP flows a second; at 50 about 9,000 UDP
#   flows are alive at once, well below the flow cap the descriptor limit sets)
#
# A throwaway host-sim namespace (documentation addresses only) holds a TCP and a UDP echo
# server; the guest namespace slirp-ns serves runs the churn from one process: connect, one
# byte each way, close; a datagram from a new socket; a ping every second.
set -euo pipefail

DURATION=${1:-600}
RATE=${RATE:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${OUT:-$ROOT/bench/churn.md}
SERVER=198.51.100.1
HS=slirpns-churn-$$
bench_setup "" ip python3 nsenter unshare ping
WORK=$(mktemp -d)

cleanup() {
    set +e
    [ -n "${ENGINE_PID:-}" ] && kill "$ENGINE_PID" 2>/dev/null
    [ -n "${SERVERS_PID:-}" ] && kill "$SERVERS_PID" 2>/dev/null
    [ -n "${GUEST_PID:-}" ] && kill "$GUEST_PID" 2>/dev/null
    ip netns del "$HS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
make_host_sim
hs sysctl -qw net.ipv4.ping_group_range="0 2147483647"

ip netns exec "$HS" python3 - "$SERVER" <<'PY' &
import socket, sys, threading
server = sys.argv[1]
tcp = socket.create_server((server, 7001), backlog=1024)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((server, 7002))
def echo_udp():
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data, peer)
threading.Thread(target=echo_udp, daemon=True).start()
while True:
    conn, _ = tcp.accept()
    try:
        conn.sendall(conn.recv(16))
    except OSError:
        pass
    conn.close()
PY
SERVERS_PID=$!

start_guest
ip netns exec "$HS" "$SLIRP_NS" -c -a "$WORK/api.sock" "$GUEST_PID" tap0 >"$WORK/engine.log" 2>&1 &
ENGINE_PID=$!
for _ in $(seq 100); do
    nsenter -t "$GUEST_PID" -n ping -c 1 -W 1 10.0.2.2 >/dev/null 2>&1 && break
    sleep 0.05
done

nsenter -t "$GUEST_PID" -n python3 - "$SERVER" "$DURATION" "$ENGINE_PID" "$WORK/samples" "$RATE" "$WORK/api.sock" <<'PY'
import json, socket, subprocess, sys, time
server, duration, engine, samples = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rate, api = float(sys.argv[5]), sys.argv[6]
def flows():
    """Flows alive, and new flows refused for want of room so far."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(api)
        conn.sendall(b'{"execute": "get_info"}')
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    info = json.loads(reply)["return"]
    return f"{info['flows']} {info['counters']['dropped_flow_table_full']}"
def rss_kib():
    """Resident KiB: all, the malloc heap, other anonymous mappings (large buffers)."""
    total = heap = anon = 0
    name = ""
    for line in open(f"/proc/{engine}/smaps"):
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else ""
        elif fields[0] == "Rss:":
            kib = int(fields[1])
            total += kib
            if name == "[heap]":
                heap += kib
            elif name == "":
                anon += kib
    return f"{total} {heap} {anon}"
start = time.monotonic()
next_sample = next_ping = next_round = start
counts = {"tcp": 0, "udp": 0, "ping": 0}
with open(samples, "w") as out:
    while (now := time.monotonic()) - start < duration:
        if now >= next_sample:
            out.write(f"{now - start:.0f} {rss_kib()} {flows()} {counts['tcp']} {counts['udp']} {counts['ping']}\n")
            out.flush()
            next_sample += 10
        if now >= next_ping:
            subprocess.run(["ping", "-c", "1", "-W", "1", server], stdout=subprocess.DEVNULL)
            counts["ping"] += 1
            next_ping += 1
        if now < next_round:
            time.sleep(next_round - now)
        next_round += 1 / rate
        try:
            with socket.create_connection((server, 7001), timeout=2) as conn:
                conn.sendall(b"x")
                conn.recv(16)
            counts["tcp"] += 1
        except OSError:
            pass
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(0.5)
            udp.sendto(b"x", (server, 7002))
            try:
                udp.recv(16)
                counts["udp"] += 1
            except OSError:
                pass
    out.write(f"{time.monotonic() - start:.0f} {rss_kib()} {flows()} {counts['tcp']} {counts['udp']} {counts['ping']}\n")
PY

python3 - "$WORK/samples" "$DURATION" <<'PY' | tee "$OUT"
import sys, datetime, platform
samples = [list(map(int, line.split())) for line in open(sys.argv[1])]
t_end, rss_end, heap_end, anon_end, flows_end, refused, tcp, udp, ping = samples[-1]
# After the UDP flows' idle timeout (180 s) the tables are as full as they get.
settled = [s for s in samples if s[0] >= 200] or samples
print(f"Churn benchmark {datetime.date.today()}, kernel {platform.release()}: {t_end} s of short TCP "
      f"connections ({tcp}), UDP flows from new ports ({udp}) and pings ({ping}) through slirp-ns.\n")
print("| time | RSS, MiB | of it malloc heap | large buffers | flows alive |")
print("|---|---|---|---|---|")
for t, rss, heap, anon, alive, *_ in samples:
    if t % 60 == 0 or t == t_end or t == 10:
        print(f"| {t} s | {rss / 1024:.2f} | {heap / 1024:.2f} | {anon / 1024:.2f} | {alive} |")
first, last = settled[0], settled[-1]
print(f"\nFrom {first[0]} s (UDP flows at their steady number) to the end: "
      f"{first[1] / 1024:.2f} -> {last[1] / 1024:.2f} MiB "
      f"({(last[1] - first[1]) / 1024:+.2f} MiB). New flows refused for want of room: {refused}.")
PY
