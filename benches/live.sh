#!/usr/bin/env bash
# Benchmark: what liveness checks cost the supervisor. One `herd run` of
# PROCESSES processes (`exec sleep 1000`), each with `--live` every
# INTERVAL s, for each kind of check in turn, and once without checks:
#   * none: no check (the idle supervisor, for scale);
#   * file: `file:PATH` of a file that exists;
#   * tcp: `tcp:127.0.0.1:PORT` of a listener this script runs (python3,
#     accepting and closing), so every check is a real connection;
#   * exec: `exec:true`, a shell per check.
# After WARMUP s, it reads /proc/PID/stat of herd before and after SECONDS s
# and reports herd's own CPU time (utime + stime, all its threads) as a
# share of one CPU, and the CPU time of the processes it reaped (cutime +
# cstime: the exec checks' helpers and shells), which the system spends but
# not herd's loop.
#
#   bash benches/live.sh                      # from the repository root
#   PROCESSES=10 SECONDS_RUN=5 bash benches/live.sh
#   HERD=/other/tree/target/release/herd bash benches/live.sh
#
# Needs cargo and python3. The exit trap kills only the processes this
# script started (by a marker in their environment) and removes its
# temporary directory. It is a report: it never fails because a number is
# large.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

PROCESSES=${PROCESSES:-100}
INTERVAL=${INTERVAL:-0.1}
WARMUP=${WARMUP:-2}
SECONDS_RUN=${SECONDS_RUN:-10}
if [[ -z ${HERD:-} ]]; then
    cargo build --release --quiet
    HERD=$PWD/target/release/herd
fi
MARKER="HERD_BENCH_LIVE=$$"
export "${MARKER?}"
tmp=$(mktemp -d)
trap 'kill_marked; rm -rf "$tmp"' EXIT
touch "$tmp/alive"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1024)
while True:
    c, _ = s.accept()
    c.close()
' "$port" &
disown
ticks=$(getconf CLK_TCK)

# Fields 14-17 of /proc/PID/stat, counted after the command's ')'.
cpu() {
    local rest
    rest=$(<"/proc/$1/stat")
    rest=${rest##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "$((${12} + ${13})) $((${14} + ${15}))"
}

measure() {
    local kind=$1 check=$2 args=() i pid before after
    for ((i = 0; i < PROCESSES; i++)); do
        args+=(-c "p$i=exec sleep 1000")
    done
    if [[ -n $check ]]; then
        args+=(--live "$check" --live-interval "$INTERVAL" --live-failures 1000000)
    fi
    "$HERD" run --color never "${args[@]}" >"$tmp/$kind.out" 2>&1 &
    pid=$!
    sleep "$WARMUP"
    read -r -a before < <(cpu "$pid")
    sleep "$SECONDS_RUN"
    read -r -a after < <(cpu "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    local failed
    failed=$(grep -c "liveness check .* failed" "$tmp/$kind.out" || true)
    awk -v kind="$kind" -v check="${check:--}" -v own=$((after[0] - before[0])) \
        -v reaped=$((after[1] - before[1])) -v secs="$SECONDS_RUN" -v hz="$ticks" -v failed="$failed" \
        'BEGIN { printf "| %s | `%s` | %.1f %% | %.1f %% | %d |\n", kind, check, 100 * own / hz / secs, 100 * reaped / hz / secs, failed }'
}

echo "### Liveness checks: $PROCESSES processes, one check each every ${INTERVAL}s (${SECONDS_RUN}s measured)"
echo
echo "herd: $(origin "$HERD"); $(nproc) CPUs; $(uname -r)"
echo
echo "| checks | CHECK | herd's CPU (one CPU = 100 %) | reaped children's CPU | failed checks |"
echo "| --- | --- | ---: | ---: | ---: |"
measure none ""
measure file "file:$tmp/alive"
measure tcp "tcp:127.0.0.1:$port"
measure exec "exec:true"
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
