#!/usr/bin/env bash
# Benchmark: what "no orphan outlives a killed herd" costs and does (issue 10,
# §5). Start-up of `herd run -- /bin/true` with its parent-death signal (a
# fork instead of posix_spawn) and without (--no-death-signal), and of a
# group of one `true` with its guard and without, next to a bare `true` and
# tini in the same interleaved rounds; then how long after SIGKILL of herd
# a group of 10 processes is gone (guard, stop signal at once).
#
#   bash benches/death.sh            # from the repository root
#   RUNS=300 bash benches/death.sh   # quicker, noisier
#
# Needs cargo, python3 >= 3.8, and root for apt-get unless tini is installed.
# It is a report: it never fails because a goal is missed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-1000}
WARMUP=${WARMUP:-50}
KILLS=${KILLS:-20}

TMP=$(mktemp -d)
MARKER="HERD_BENCH_MARKER=death-$$"
export MARKER
trap 'kill_marked; rm -rf "$TMP"' EXIT

printf 'building herd ...\n' >&2
cargo build --release --quiet
HERD=$PWD/target/release/herd
if [[ ! -x /usr/bin/tini ]]; then
    printf 'installing tini ...\n' >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tini >&2
fi

cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import os, signal, statistics, sys, time
from timing import DEVNULL_STDIO, interleaved, percentile, row, spawn_timer

runs, warmup, kills, herd, marker = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
TRUE = "/bin/true"
candidates = [
    ("bare `true`", [TRUE]),
    ("tini", ["/usr/bin/tini", "-s", "--", TRUE]),
    ("one command, --no-death-signal", [herd, "run", "--no-death-signal", "--", TRUE]),
    ("one command, death signal (default)", [herd, "run", "--", TRUE]),
    ("group of one, --no-death-signal", [herd, "run", "--no-death-signal", "-c", "a=true"]),
    ("group of one, guard (default)", [herd, "run", "-c", "a=true"]),
]
env = dict(os.environ)

samples = interleaved([(label, spawn_timer(argv, env)) for label, argv in candidates], runs, warmup)

us = lambda ns: ns / 1000
median = {l: us(statistics.median(s)) for l, s in samples.items()}
p90 = {l: us(percentile(s, 0.9)) for l, s in samples.items()}

print(f"### Start-up: wall time of the whole command ({runs} interleaved rounds, {warmup} warm-up)\n")
row("candidate", "median µs", "p90 µs", "median / tini")
row("---", "---:", "---:", "---:")
for label, _ in candidates:
    row(label, f"{median[label]:.0f}", f"{p90[label]:.0f}", f"{median[label] / median['tini']:.2f}")
print()
for a, b in [("one command, death signal (default)", "one command, --no-death-signal"),
             ("group of one, guard (default)", "group of one, --no-death-signal")]:
    print(f"- {a} / {b}: {median[a] / median[b]:.3f} ({median[a] - median[b]:+.0f} µs)")
print()

key, value = marker.split("=", 1)
marked_env = dict(env, **{key: value})

def marked(guard=True):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker.encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{name}/comm") as f:
                if not guard and f.read().strip() == "herd-guard":
                    continue
        except OSError:
            continue
        found.append(int(name))
    return found

def deadline_wait(what, condition, seconds=20):
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until:
            sys.exit(f"waited {seconds}s for {what}")
        time.sleep(0.001)

gone, guard_gone = [], []
argv = [herd, "run", "--grace", "5"] + sum((["-c", f"p{i}=exec sleep 1000"] for i in range(10)), [])
for _ in range(kills):
    pid = os.posix_spawn(herd, argv, marked_env, file_actions=DEVNULL_STDIO)
    # herd, its guard and 10 processes
    deadline_wait("12 marked processes", lambda: len(marked()) >= 12)
    os.kill(pid, signal.SIGKILL)
    killed = time.perf_counter()
    os.waitpid(pid, 0)
    deadline_wait("the processes to go", lambda: not marked(guard=False))
    gone.append((time.perf_counter() - killed) * 1000)
    deadline_wait("the guard to go", lambda: not marked())
    guard_gone.append((time.perf_counter() - killed) * 1000)
print(f"### SIGKILL of `herd run` with 10 `exec sleep 1000` processes ({kills} rounds)\n")
row("from SIGKILL of herd until", "median ms", "p90 ms", "max ms")
row("---", "---:", "---:", "---:")
for label, times in [("none of its processes is left (zombies aside)", gone),
                     ("its guard is gone too (it waits for the zombies' reaping)", guard_gone)]:
    row(label, f"{statistics.median(times):.1f}", f"{percentile(times, 0.9):.1f}", f"{max(times):.1f}")
PY

cat <<EOF
- herd: $(origin "$HERD"); tini: $(tini --version 2>&1 | head -1)
- $(nproc) CPUs; $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)

EOF
python3 "$TMP/measure.py" "$RUNS" "$WARMUP" "$KILLS" "$HERD" "$MARKER"
printf '\nLoad average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
