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
