# Shell functions the benchmark scripts share (sourced, not run).

# Where a binary comes from: the commit of the git tree it was built in.
origin() {
    local tree
    tree=$(git -C "$(dirname "$1")" rev-parse --show-toplevel 2>/dev/null) || { echo "\`$1\`"; return; }
    printf '`%s`, built in %s at %s%s' "$1" "$tree" "$(git -C "$tree" rev-parse --short HEAD)" \
        "$(git -C "$tree" diff --quiet HEAD -- src || echo ' with uncommitted changes in src/')"
}

# Kills every process whose environment carries $MARKER (by pid), a few
# passes in case one forked while the previous pass ran.
kill_marked() {
    local pass pid found
    for pass in 1 2 3 4 5; do
        found=0
        for pid in /proc/[0-9]*; do
            pid=${pid#/proc/}
            [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
            if grep -qzxF -- "$MARKER" "/proc/$pid/environ" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
                found=1
            fi
        done
        ((found)) || return 0
        sleep 0.2
    done
}
