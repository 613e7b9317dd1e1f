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

# The pid of the supervisor of state directory $1: from its pid file while
# there is one, else $2 (the pid read at start); empty unless that process
# is still the herd binary $3 (as /proc/PID/exe shows it).
supervisor_of() {
    local state=$1 pid=$2 herd=$3
    if [[ -s $state/pid ]]; then pid=$(<"$state/pid"); fi
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$herd" ]] && echo "$pid"
    return 0
}

# Stops the supervisor of state directory $1 (arguments as supervisor_of),
# if it still runs: SIGTERM, which stops its group, then SIGKILL for it and
# its children after 10 s. Says so on stderr.
stop_supervisor() {
    local pid kids i
    pid=$(supervisor_of "$@")
    [[ -n $pid ]] || return 0
    printf 'stopping the supervisor (pid %s) ...\n' "$pid" >&2
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        [[ -n $(supervisor_of "$@") ]] || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086 # a list of pids
    [[ -z $kids ]] || kill -KILL $kids 2>/dev/null || true
}
