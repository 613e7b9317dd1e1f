#!/usr/bin/env bash
# Benchmark: `herd status` read from the scoreboard against the same command
# asking the supervisor through its control socket (`--timeout`), for a
# group of 1 and of SLOTS processes, and while the supervisor is stopped.
#
#   bash benches/scoreboard.sh               # from the repository root
#   RUNS=100 SLOTS=200 bash benches/scoreboard.sh
#   HERD=/other/tree/target/release/herd bash benches/scoreboard.sh
#
# Starts two supervisors (`herd start --state-dir DIR -c s0='exec sleep
# 1000' ...`, 1 and SLOTS processes) in a temporary directory, then times
# RUNS rounds, each in a fresh random order, of:
#   * `herd status --state-dir DIR`: exec, map the scoreboard, read every
#     slot under its seqlock, print the table;
#   * `herd status --timeout 5 --state-dir DIR`: exec, connect, hello and
#     status round trips on the control socket, print the table;
#   * `herd --version`: exec and argument parsing only, for scale.
# Then SIGSTOPs the small group's supervisor and times RUNS `herd status`
# (exit 4, rows from the scoreboard) before SIGCONT.
#
# Timing as benches/probe.sh: one python3 helper, os.posix_spawn + waitpid,
# stdio on /dev/null, GC off, no pinning. The exit trap stops only the
# supervisors this script started and removes the directory. A report: it
# never fails because a number is large.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-500}
WARMUP=${WARMUP:-30}
SLOTS=${SLOTS:-1000}

log() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d -t herd-scoreboard-bench.XXXXXX)
SMALL=$TMP/small
LARGE=$TMP/large
HERD=${HERD:-}
SMALL_PID=
LARGE_PID=
HELPER=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $HELPER ]] && kill -TERM "$HELPER" 2>/dev/null; then
        wait "$HELPER" 2>/dev/null || true
    fi
    [[ -n $SMALL_PID ]] && kill -CONT "$SMALL_PID" 2>/dev/null || true
    stop_supervisor "$SMALL" "$SMALL_PID" "$HERD"
    stop_supervisor "$LARGE" "$LARGE_PID" "$HERD"
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z $HERD ]]; then
    log "building herd ..."
    cargo build --release --quiet
    HERD=$PWD/target/release/herd
fi
HERD=$(realpath "$HERD")

group() { # DIR COUNT
    local args=() n
    for ((n = 0; n < $2; n++)); do args+=(-c "s$n=exec sleep 1000"); done
    "$HERD" start --state-dir "$1" --settle 0 "${args[@]}" </dev/null >/dev/null
}
log "starting a group of 1 and one of $SLOTS ..."
group "$SMALL" 1
SMALL_PID=$(<"$SMALL/pid")
group "$LARGE" "$SLOTS"
LARGE_PID=$(<"$LARGE/pid")
for dir in "$SMALL" "$LARGE"; do
    [[ -n $(supervisor_of "$dir" "$(<"$dir/pid")" "$HERD") ]] || { log "no supervisor behind $dir/pid"; exit 1; }
done

cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import os, signal, statistics, sys
from timing import interleaved, percentile, row, spawn_timer

herd, small, large, small_pid, slots, runs, warmup = sys.argv[1:8]
small_pid, runs, warmup = int(small_pid), int(runs), int(warmup)
env = dict(os.environ)
command = lambda argv, code=0: spawn_timer(argv, env, code)
measure = lambda probes, rounds: interleaved(probes, rounds, warmup)

ms = lambda ns: ns / 1e6
def table(title, probes, samples):
    print(f"### {title}\n")
    row("command", "median ms", "p90 ms", "p99 ms")
    row("---", "---:", "---:", "---:")
    for label, _ in probes:
        s = samples[label]
        row(label, f"{ms(statistics.median(s)):.3f}", f"{ms(percentile(s, 0.9)):.3f}",
            f"{ms(percentile(s, 0.99)):.3f}")
    print()

probes = [
    ("`herd status`, 1 process (scoreboard)", command([herd, "status", "--state-dir", small])),
    ("`herd status --timeout 5`, 1 process (socket)", command([herd, "status", "--timeout", "5", "--state-dir", small])),
    (f"`herd status`, {slots} processes (scoreboard)", command([herd, "status", "--state-dir", large])),
    (f"`herd status --timeout 5`, {slots} processes (socket)", command([herd, "status", "--timeout", "5", "--state-dir", large])),
    ("`herd --version` (exec only, for scale)", command([herd, "--version"])),
]
samples = measure(probes, runs)
table(f"`herd status`: scoreboard against socket ({runs} interleaved rounds, {warmup} warm-up)", probes, samples)
median = lambda i: statistics.median(samples[probes[i][0]])
print(f"Scoreboard / socket, medians: 1 process {median(0) / median(1):.2f}, {slots} processes {median(2) / median(3):.2f}\n")

os.kill(small_pid, signal.SIGSTOP)
try:
    frozen = [("`herd status` of a SIGSTOPped supervisor (exit 4)", command([herd, "status", "--state-dir", small], code=4))]
    table(f"A stopped supervisor ({runs} rounds)", frozen, measure(frozen, runs))
finally:
    os.kill(small_pid, signal.SIGCONT)

with open("/proc/loadavg") as f:
    print("Load average after: " + " ".join(f.read().split()[:3]))
PY

cat <<EOF
- herd $("$HERD" --version | cut -d' ' -f2): $(origin "$HERD"); $(python3 --version 2>&1)
- machine: $(nproc) CPUs, Linux $(uname -r), load average before: $(cut -d' ' -f1-3 /proc/loadavg)

EOF
log "measuring ..."
python3 "$TMP/measure.py" "$HERD" "$SMALL" "$LARGE" "$SMALL_PID" "$SLOTS" "$RUNS" "$WARMUP" &
HELPER=$!
wait "$HELPER"
HELPER=
