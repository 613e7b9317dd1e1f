#!/usr/bin/env bash
# Benchmark: the cost of one heartbeat for --watchdog, four ways:
#   * `herd notify --heartbeat` as a command (exec, map the scoreboard, one
#     atomic add);
#   * the same command without a scoreboard slot, which sends WATCHDOG=1 to
#     $NOTIFY_SOCKET and waits for the receiver (BARRIER=1);
#   * a raw add to the slot's heartbeat word from a C program (its own
#     MAP_SHARED mapping, __atomic_fetch_add);
#   * a WATCHDOG=1 datagram from the same C program (one sendto).
# For the last two it also reads the supervisor's CPU time (utime + stime of
# /proc/PID/stat) before and after, so the supervisor's share shows too.
#
#   bash benches/heartbeat.sh               # from the repository root
#   RUNS=200 ADDS=10000000 bash benches/heartbeat.sh
#   HERD=/other/tree/target/release/herd bash benches/heartbeat.sh
#
# The measuring programs run as the process of a group (`herd start
# --state-dir DIR --watchdog 60`), so they have HERD_SCOREBOARD, HERD_SLOT
# and NOTIFY_SOCKET as a real process has, and their datagrams are the
# group's. Timing as benches/scoreboard.sh (python3, os.posix_spawn +
# waitpid, stdio on /dev/null, GC off). The exit trap stops only the
# supervisor this script started and removes the directory. A report: it
# never fails because a number is large.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-300}
WARMUP=${WARMUP:-20}
ADDS=${ADDS:-10000000}
DATAGRAMS=${DATAGRAMS:-100000}

log() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d -t herd-heartbeat-bench.XXXXXX)
STATE=$TMP/state
HERD=${HERD:-}
PID=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_supervisor "$STATE" "$PID" "$HERD"
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

cat >"$TMP/beat.c" <<'C'
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* utime + stime of the supervisor, in clock ticks. */
static long supervisor_ticks(int supervisor) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", supervisor);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(text, sizeof text, f)) exit(2);
    fclose(f);
    char *p = strrchr(text, ')');
    long utime = 0, stime = 0;
    /* fields 14 and 15, counted after the command name's ")" (field 2) */
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime);
    return utime + stime;
}

int main(int argc, char **argv) {
    long count = atol(argv[2]);
    int fd = open(getenv("HERD_SCOREBOARD"), O_RDWR | O_CLOEXEC);
    size_t at = 128 + 512 * strtoul(getenv("HERD_SLOT"), 0, 10) + 8;
    char *board = mmap(0, at + 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd < 0 || board == MAP_FAILED) return 2;
    /* The header's supervisor pid, at byte 48. */
    int supervisor = (int)*(uint64_t *)(board + 48);
    long before = supervisor_ticks(supervisor);
    double start = now();
    if (strcmp(argv[1], "raw") == 0) {
        for (long n = 0; n < count; n++)
            __atomic_fetch_add((uint64_t *)(board + at), 1, __ATOMIC_RELAXED);
    } else {
        const char *address = getenv("NOTIFY_SOCKET");
        struct sockaddr_un to = {.sun_family = AF_UNIX};
        strncpy(to.sun_path, address, sizeof to.sun_path - 1);
        if (to.sun_path[0] == '@') to.sun_path[0] = 0;
        socklen_t length = offsetof(struct sockaddr_un, sun_path) + strlen(address);
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        start = now();
        for (long n = 0; n < count; n++)
            while (sendto(s, "WATCHDOG=1", 10, 0, (struct sockaddr *)&to, length) < 0)
                usleep(100); /* the receive queue is full: herd is behind */
    }
    double elapsed = now() - start;
    /* Let the supervisor drain what it was sent before its time is read. */
    usleep(500000);
    long ticks = supervisor_ticks(supervisor) - before;
    printf("%.1f %.1f\n", elapsed / count,
           ticks * 1e9 / sysconf(_SC_CLK_TCK) / count);
    return 0;
}
C
cc -O2 -o "$TMP/beat" "$TMP/beat.c"

cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import os, statistics, subprocess, sys
from timing import interleaved, percentile, spawn_timer

herd, beat, runs, warmup, adds, datagrams, out = sys.argv[1:8]
runs, warmup = int(runs), int(warmup)
with_slot = dict(os.environ)
without_slot = {k: v for k, v in os.environ.items() if k not in ("HERD_SCOREBOARD", "HERD_SLOT")}

probes = [
    ("`herd notify --heartbeat` (scoreboard slot)", spawn_timer([herd, "notify", "--heartbeat"], with_slot)),
    ("`herd notify --heartbeat` (no slot: WATCHDOG=1 + barrier)", spawn_timer([herd, "notify", "--heartbeat"], without_slot)),
    ("`herd --version` (exec only, for scale)", spawn_timer([herd, "--version"], with_slot)),
]
samples = interleaved(probes, runs, warmup)

lines = [f"### One heartbeat as a command ({runs} interleaved rounds, {warmup} warm-up)\n",
         "| command | median ms | p90 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
for label, _ in probes:
    s = samples[label]
    lines.append(f"| {label} | {statistics.median(s) / 1e6:.3f} | {percentile(s, 0.9) / 1e6:.3f} | {percentile(s, 0.99) / 1e6:.3f} |")
lines += ["", "### One heartbeat from a program\n",
          "| heartbeat | count | sender ns each | supervisor CPU ns each |", "| --- | ---: | ---: | ---: |"]
for mode, count, label in (("raw", adds, "raw atomic add to the slot"), ("datagram", datagrams, "`WATCHDOG=1` datagram (sendto)")):
    sender, supervisor = subprocess.run([beat, mode, count], check=True, capture_output=True, text=True).stdout.split()
    lines.append(f"| {label} | {count} | {sender} | {supervisor} |")
with open(out + ".tmp", "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(out + ".tmp", out)
PY

log "starting a group whose process measures ..."
"$HERD" start --state-dir "$STATE" --settle 0 --watchdog 60 \
    -c "measure=python3 $TMP/measure.py $HERD $TMP/beat $RUNS $WARMUP $ADDS $DATAGRAMS $TMP/result.md; exec sleep 1000" \
    </dev/null >/dev/null
PID=$(<"$STATE/pid")
log "measuring (a minute or so) ..."
until [[ -s $TMP/result.md ]]; do
    [[ -n $(supervisor_of "$STATE" "$PID" "$HERD") ]] || { log "the supervisor is gone"; exit 1; }
    if "$HERD" status --state-dir "$STATE" 2>/dev/null | grep -q "exited\|backoff"; then
        log "the measuring process failed: see $STATE/log"; cat "$STATE/log" >&2; exit 1
    fi
    sleep 0.5
done
printf 'herd: %s\n\n' "$(origin "$HERD")"
cat "$TMP/result.md"
