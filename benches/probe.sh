#!/usr/bin/env bash
# Benchmark: what one readiness probe costs, as an exec probe (the whole
# `herd status --ready` command) and as an HTTP probe (one connection to
# `--health`: connect, GET /ready, the answer, the close).
#
#   bash benches/probe.sh                # from the repository root
#   RUNS=300 bash benches/probe.sh       # quicker, noisier
#   HERD=/other/tree/target/release/herd bash benches/probe.sh
#                                        # another build, measured as it is
#
# Starts one supervisor (`herd start --health tcp:127.0.0.1:PORT -c
# s='exec sleep 1000'`) in a temporary state directory, then times, in one
# run, RUNS rounds of, each round in a fresh random order:
#   * `herd status --ready --state-dir DIR`: exec, connect, hello and status
#     round trips on the control socket, exit 0 (what a Kubernetes exec
#     probe or Docker's HEALTHCHECK runs);
#   * `herd status --live --state-dir DIR`: the same exchange;
#   * `herd --version`: exec and argument parsing only, for scale;
#   * GET /ready and GET /live on a new TCP connection from inside the timer
#     process (what the kubelet's httpGet probe does).
#
# Timing: one python3 helper starts every command with os.posix_spawn,
# waits with os.waitpid and reads time.perf_counter_ns around both, with
# stdin, stdout and stderr on /dev/null and the GC off; the HTTP probes are
# timed from before connect to the end of the answer. No CPU pinning: as a
# probe runs. Median, p90 and p99 per probe.
#
# Needs cargo and python3 >= 3.8. The exit trap stops only the supervisor
# this script started (pid from its pid file, checked to be this herd
# binary) and removes the temporary directory. It is a report: it never
# fails because a number is large.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-1000}       # timed rounds
WARMUP=${WARMUP:-50}     # untimed rounds first

log() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d -t herd-probe-bench.XXXXXX)
STATE=$TMP/group
HERD=${HERD:-}
SUP_PID=
HELPER=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $HELPER ]] && kill -TERM "$HELPER" 2>/dev/null; then
        wait "$HELPER" 2>/dev/null || true
    fi
    stop_supervisor "$STATE" "$SUP_PID" "$HERD"
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
HERD=$(realpath "$HERD")    # as /proc/PID/exe shows it

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "starting a group in $STATE, --health on port $PORT ..."
"$HERD" start --state-dir "$STATE" --health "tcp:127.0.0.1:$PORT" -c s='exec sleep 1000' \
    </dev/null >/dev/null
SUP_PID=$(<"$STATE/pid")
[[ -n $(supervisor_of "$STATE" "$SUP_PID" "$HERD") ]] || { log "no supervisor behind $STATE/pid"; exit 1; }
"$HERD" status --ready --state-dir "$STATE" || { log "the group is not ready"; exit 1; }

cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import os, socket, statistics, sys, time
from timing import interleaved, percentile, row, spawn_timer

herd, state, port, runs, warmup, load_before = sys.argv[1:7]
port, runs, warmup = int(port), int(runs), int(warmup)

env = dict(os.environ)
command = lambda argv: spawn_timer(argv, env)

def http(path):
    request = f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode()
    def run():
        start = time.perf_counter_ns()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(request)
            answer = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
        elapsed = time.perf_counter_ns() - start
        if not answer.startswith(b"HTTP/1.0 200 "):
            sys.exit(f"GET {path}: {answer!r}")
        return elapsed
    return run

probes = [  # (label, how it is run)
    ("`herd status --ready` (whole command)", command([herd, "status", "--ready", "--state-dir", state])),
    ("`herd status --live` (whole command)", command([herd, "status", "--live", "--state-dir", state])),
    ("`herd --version` (exec only, for scale)", command([herd, "--version"])),
    ("HTTP `GET /ready` (one connection)", http("/ready")),
    ("HTTP `GET /live` (one connection)", http("/live")),
]

samples = interleaved(probes, runs, warmup)

ms = lambda ns: ns / 1e6

print(f"### One readiness probe ({runs} interleaved rounds, {warmup} warm-up)\n")
row("probe", "median ms", "p90 ms", "p99 ms")
row("---", "---:", "---:", "---:")
for label, _ in probes:
    s = samples[label]
    row(label, f"{ms(statistics.median(s)):.3f}", f"{ms(percentile(s, 0.9)):.3f}",
        f"{ms(percentile(s, 0.99)):.3f}")
exec_ready = statistics.median(samples[probes[0][0]])
http_ready = statistics.median(samples[probes[3][0]])
print(f"\nMedian `herd status --ready` / median HTTP `GET /ready`: {exec_ready / http_ready:.1f}")

with open("/proc/loadavg") as f:
    after = " ".join(f.read().split()[:3])
print(f"\nLoad average: {load_before} before, {after} after (anything else running shows here).")
PY

cat <<EOF
- herd $("$HERD" --version | cut -d' ' -f2): $(origin "$HERD"), $(rustc --version | cut -d' ' -f1-2)
- supervisor: \`herd start --state-dir DIR --health tcp:127.0.0.1:$PORT -c s='exec sleep 1000'\` (pid $SUP_PID); timer: $(python3 --version 2>&1), os.posix_spawn + waitpid for commands, a socket for HTTP
- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); no CPU pinning

EOF

log "measuring ($RUNS rounds of 5 probes) ..."
# In the background, so that a signal to this script runs the trap at once.
python3 "$TMP/measure.py" "$HERD" "$STATE" "$PORT" "$RUNS" "$WARMUP" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" &
HELPER=$!
wait "$HELPER"
HELPER=

log "stopping the group ..."
"$HERD" stop --state-dir "$STATE" >/dev/null
