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
    local guest_ns
    guest_ns=$(stat -L -c %i /proc/$GUEST_PID/ns/net)
    [ "$guest_ns" != "$(stat -L -c %i /run/netns/$HS)" ] \
        && [ "$guest_ns" != "$(stat -L -c %i /proc/self/ns/net)" ] \
        || { echo "guest namespace not ready" >&2; return 1; }
}
