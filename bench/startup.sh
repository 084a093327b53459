#!/usr/bin/env bash
# Start-up time and idle memory: slirp-ns against slirp4netns, in one run, on this machine.
# podman starts one engine per container, so both count.
#
# Usage (as root):  bench/startup.sh [ROUNDS]      default: 20 rounds
#   OUT=bench/startup.md
#
# Per round and engine: a new guest namespace made from a throwaway host-sim namespace
# (documentation addresses only); the engine started on it as podman starts it
# (`-c -r FD --enable-sandbox --enable-seccomp PID tap0`, plus an API socket); the time from
# launch until it writes its ready byte, then its RSS (VmRSS) and proportional set size (Pss,
# shared library pages split among their users) after a second of idling. Medians, rounds
# interleaved.
set -euo pipefail

ROUNDS=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${OUT:-$ROOT/bench/startup.md}
SERVER=198.51.100.1
HS=slirpns-startup-$$
bench_setup "Debian: apt-get install slirp4netns" ip python3 unshare slirp4netns
WORK=$(mktemp -d)

cleanup() {
    set +e
    [ -n "${GUEST_PID:-}" ] && kill "$GUEST_PID" 2>/dev/null
    ip netns del "$HS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
make_host_sim

# Starts ENGINE for the guest GUEST_PID; prints "ENGINE start_ms rss_kib pss_kib".
measure() {
    # Already in host-sim: the engine is started directly, as podman starts it (through
    # `ip netns exec` each launch would add that tool's own set-up to both engines' times).
    hs python3 - "$1" "$2" "$GUEST_PID" "$HS" "$WORK/api.sock" <<'PY'
import os, select, subprocess, sys, time
engine, binary, guest, hs, api = sys.argv[1:6]
r, w = os.pipe()
os.set_inheritable(w, True)
args = [binary, "-c", "-r", str(w), "--enable-sandbox", "--enable-seccomp", "-a", api, guest,
        "tap0"]
start = time.monotonic()
proc = subprocess.Popen(args, pass_fds=[w], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(w)
ready, _, _ = select.select([r], [], [], 10)
took = (time.monotonic() - start) * 1000
ok = bool(ready) and os.read(r, 1) == b"1"
time.sleep(1)
fields = {}
for path in (f"/proc/{proc.pid}/status", f"/proc/{proc.pid}/smaps_rollup"):
    for line in open(path):
        key, _, value = line.partition(":")
        fields[key] = value.split()[0] if value.split() else "0"
proc.terminate()
proc.wait()
if ok:
    print(engine, f"{took:.2f}", fields.get("VmRSS", 0), fields.get("Pss", 0))
PY
}

for round in $(seq "$ROUNDS"); do
    for engine in slirp-ns slirp4netns; do
        start_guest
        rm -f "$WORK/api.sock"
        case $engine in
            slirp-ns) measure slirp-ns "$SLIRP_NS" >>"$WORK/results" ;;
            slirp4netns) measure slirp4netns "$(command -v slirp4netns)" >>"$WORK/results" ;;
        esac
        kill "$GUEST_PID" 2>/dev/null || true
        wait "$GUEST_PID" 2>/dev/null || true
        GUEST_PID=""
    done
    echo "round $round" >&2
done

VERSIONS="slirp-ns $("$SLIRP_NS" --version | head -1 | awk '{print $3}'), slirp4netns $(slirp4netns --version | head -1 | awk '{print $3}')"
python3 - "$WORK/results" "$ROUNDS" "$VERSIONS" <<'PY' | tee "$OUT"
import statistics, sys, datetime, platform
path, rounds, versions = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {}
for line in open(path):
    engine, ms, rss, pss = line.split()
    runs.setdefault(engine, []).append((float(ms), int(rss), int(pss)))
med = lambda engine, i: statistics.median(r[i] for r in runs[engine])
print(f"Start-up benchmark {datetime.date.today()}, kernel {platform.release()} ({versions}): "
      f"median of {rounds} interleaved rounds; `-c -r FD --enable-sandbox --enable-seccomp -a API "
      "PID tap0`.\n")
print("| measure | slirp-ns | slirp4netns | slirp-ns / slirp4netns |")
print("|---|---|---|---|")
for i, name, unit, scale in [(0, "launch to ready", "ms", 1), (1, "RSS idle", "MiB", 1024),
                             (2, "PSS idle", "MiB", 1024)]:
    ours, theirs = med("slirp-ns", i) / scale, med("slirp4netns", i) / scale
    print(f"| {name} | {ours:.2f} {unit} | {theirs:.2f} {unit} | {ours / theirs:.2f}x |")
print("\nBelow 1 means slirp-ns takes less.")
PY
