#!/usr/bin/env bash
# Benchmark: the memory of a group of one process (issue 7's one figure out
# of reach): VmHWM and RssAnon of the supervisor with `exec sleep 1000`
# running, with and without --no-death-signal, and of its guard, beside
# another build of herd (HERD_OLD) in the same interleaved rounds.
#
#   HERD_OLD=/old/tree/target/release/herd bash benches/rss.sh
#   ROUNDS=20 HERD_OLD=... bash benches/rss.sh
#
# Needs cargo and python3. It is a report: it never fails because a goal is
# missed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

ROUNDS=${ROUNDS:-10}
: "${HERD_OLD:?give HERD_OLD, another build of herd to compare with}"

TMP=$(mktemp -d)
MARKER="HERD_BENCH_MARKER=rss-$$"
export MARKER
trap 'kill_marked; rm -rf "$TMP"' EXIT

printf 'building herd ...\n' >&2
cargo build --release --quiet
HERD=$PWD/target/release/herd

cp benches/timing.py "$TMP/"
cat >"$TMP/measure.py" <<'PY'
import os, random, statistics, subprocess, sys, time
from timing import comm, row

rounds, herd, old, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
key, value = marker.split("=", 1)
env = dict(os.environ, **{key: value})

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def private_kib(pid):
    """What only this process holds (the rest it shares with its parent,
    copy-on-write, or with other processes of the same files)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total

def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]

def measure(binary, extra):
    p = subprocess.Popen([binary, "run", "--color", "never"] + extra + ["-c", "a=exec sleep 1000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    until = time.monotonic() + 20
    while not any(comm(k) == "sleep" for k in children(p.pid)):
        if time.monotonic() > until:
            sys.exit(f"{binary}: no sleep started within 20 s")
        time.sleep(0.005)
    time.sleep(0.2)  # the supervisor settles: its threads are up, its round done
    own = (status_kib(p.pid, "VmHWM"), status_kib(p.pid, "RssAnon"))
    guards = [k for k in children(p.pid) if comm(k) == "herd-guard"]
    guard = ((status_kib(guards[0], "VmHWM"), status_kib(guards[0], "RssAnon"), private_kib(guards[0]))
             if guards else None)
    p.terminate()
    p.wait()
    return own, guard

candidates = [("other build (HERD_OLD)", old, []), ("this build", herd, []),
              ("this build, --no-death-signal", herd, ["--no-death-signal"])]
samples = {label: [] for label, _, _ in candidates}
for _ in range(rounds):
    random.shuffle(candidates)
    for label, binary, extra in candidates:
        samples[label].append(measure(binary, extra))

print(f"### A group of one `exec sleep 1000` ({rounds} interleaved rounds, medians, KiB)\n")
row("candidate", "supervisor VmHWM", "supervisor RssAnon", "guard VmHWM", "guard RssAnon",
    "guard's own (private)")
row("---", "---:", "---:", "---:", "---:", "---:")
for label in ["other build (HERD_OLD)", "this build", "this build, --no-death-signal"]:
    s = samples[label]
    med = lambda values: f"{statistics.median(values):.0f}"
    guards = [g for _, g in s if g]
    of_guard = lambda i: med(g[i] for g in guards) if guards else "—"
    row(label, med(o[0] for o, _ in s), med(o[1] for o, _ in s), of_guard(0), of_guard(1), of_guard(2))
base = statistics.median(o[0] for o, _ in samples["other build (HERD_OLD)"])
now = statistics.median(o[0] for o, _ in samples["this build"])
print(f"\nSupervisor VmHWM, this build / other build: {now / base:.3f}")
PY

cat <<EOF
- herd: $(origin "$HERD")
- other: $(origin "$HERD_OLD")
- $(nproc) CPUs; $(uname -r)

EOF
python3 "$TMP/measure.py" "$ROUNDS" "$HERD" "$HERD_OLD" "$MARKER"
