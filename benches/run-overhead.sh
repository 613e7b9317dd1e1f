#!/usr/bin/env bash
# Benchmark: what `herd run` costs compared with tini and dumb-init.
#
#   bash benches/run-overhead.sh            # from the repository root
#   RUNS=500 bash benches/run-overhead.sh   # quicker, noisier
#   HERD=/other/tree/target/release/herd \
#   HERD_STATIC=/other/tree/target/x86_64-unknown-linux-gnu/release/herd \
#       bash benches/run-overhead.sh        # measure another build of herd
#
# HERD and HERD_STATIC default to this tree's builds, which the script then
# makes itself; a binary given in either is measured as it is, not built.
# HERD_OTHER and HERD_OTHER_STATIC (optional) are two more builds of herd,
# timed in the same interleaved rounds and read the same way, to compare two
# builds with each other as well as with tini.
#
# Measures, in one run:
#   1. wall time of `SUP -- /bin/true` (start-up + spawn + reap + exit),
#   2. peak RSS of the supervisor process while it supervises `sleep 1`,
#   3. binary sizes (dynamic and static herd, Debian's tini and dumb-init),
# and prints markdown tables with the goals of issue 2 and whether each is met.
# It is a report: it never fails because a goal is missed.
#
# Needs cargo, python3 >= 3.8, and root for apt-get unless tini, dumb-init and
# file are already installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-2000}        # timed rounds; every candidate runs once per round
WARMUP=${WARMUP:-100}     # untimed rounds first: page cache, CPU frequency
RSS_REPEATS=${RSS_REPEATS:-5}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

log() { printf '%s\n' "$*" >&2; }

# --- 1. builds ---------------------------------------------------------------
# The static build goes through an explicit --target, so its artifacts land in
# target/x86_64-unknown-linux-gnu/ and its RUSTFLAGS never touch (or force a
# rebuild of) the normal target/release/ build: no separate CARGO_TARGET_DIR.
if [[ -z ${HERD:-} ]]; then
    log "building herd (dynamic) ..."
    cargo build --release --quiet
    HERD=$PWD/target/release/herd
fi
if [[ -z ${HERD_STATIC:-} ]]; then
    log "building herd (static) ..."
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --quiet --target x86_64-unknown-linux-gnu
    HERD_STATIC=$PWD/target/x86_64-unknown-linux-gnu/release/herd
fi
HERD_DYN=$(realpath "$HERD")
HERD_STATIC=$(realpath "$HERD_STATIC")
HERD_OTHER=${HERD_OTHER:+$(realpath "$HERD_OTHER")}
HERD_OTHER_STATIC=${HERD_OTHER_STATIC:+$(realpath "$HERD_OTHER_STATIC")}

# --- 2. the other supervisors ------------------------------------------------
# Debian's packages, so the comparison is with what users actually get.
# apt-get update only when something is missing: it is slow and needs network.
missing=()
[[ -x /usr/bin/tini ]] || missing+=(tini)
[[ -x /usr/bin/dumb-init ]] || missing+=(dumb-init)
command -v file >/dev/null || missing+=(file)   # tells static from dynamic
if ((${#missing[@]})); then
    log "installing ${missing[*]} ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
fi
TINI=/usr/bin/tini        # the dynamic one, like herd's default build
DUMB_INIT=/usr/bin/dumb-init

# --- 3-6. measure and report -------------------------------------------------
# One python3 helper does the measuring, so that every candidate is started by
# the same cheap, constant mechanism:
#  * os.posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) + exec, no fork of the
#    Python heap) and os.waitpid, timed with time.perf_counter_ns; the GC is
#    off during the loop so that no collection lands inside a sample.
#  * Rounds: each round runs every candidate once, in a fresh random order, so
#    that the noise of this small shared VM (steal time, frequency changes,
#    other tenants) hits all candidates alike instead of whichever block of
#    runs happened to be unlucky, and no candidate is always first or last.
#  * stdin/stdout/stderr are /dev/null: no terminal, so herd does not hand a
#    terminal over (it would from an interactive shell), and tini's output
#    costs nothing.
#  * Median and p90 rather than mean: the distribution has a long right tail
#    from scheduling hiccups; the median is the typical cost.
# hyperfine was not used: it runs candidates in blocks, not interleaved.
#
# tini gets -s (child subreaper) because herd registers as one by default;
# without it tini also prints a three-line warning on every run when it is not
# PID 1. dumb-init has no such option and is run as is.
#
# Peak RSS comes from /proc/PID/status (VmHWM, VmRSS, RssAnon, RssFile) of the
# supervisor itself, read while `sleep 1` runs under it. Not from
# `/usr/bin/time -f %M`: wait4()'s rusage reports the larger of the process's
# own and its reaped descendants' maxrss, so it would report sleep's RSS (1.6
# MiB here, more than tini's) instead of the supervisor's.
cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import os, statistics, subprocess, sys, time
from timing import interleaved, percentile, row, spawn_timer

runs, warmup, rss_repeats = (int(a) for a in sys.argv[1:4])
herd_dyn, herd_static, tini, dumb_init, herd_other, herd_other_static = sys.argv[4:10]
TRUE = "/bin/true"
# The builds given in HERD_OTHER and HERD_OTHER_STATIC, if any: measured like
# the others, reported as well, left out of the goals.
others = [(label, path) for label, path in (("herd (HERD_OTHER)", herd_other),
                                            ("herd (HERD_OTHER_STATIC)", herd_other_static))
          if path]

candidates = [  # (label, argv); argv[0] is an absolute path for posix_spawn
    ("bare `true`", [TRUE]),
    ("tini", [tini, "-s", "--", TRUE]),
    ("dumb-init", [dumb_init, TRUE]),
    ("herd (dynamic)", [herd_dyn, "run", "--", TRUE]),
    ("herd (static)", [herd_static, "run", "--", TRUE]),
] + [(label, [path, "run", "--", TRUE]) for label, path in others]

env = dict(os.environ)

# --- wall time ---
samples = interleaved([(label, spawn_timer(argv, env)) for label, argv in candidates], runs, warmup)

us = lambda ns: ns / 1000
median = {l: us(statistics.median(s)) for l, s in samples.items()}
p90 = {l: us(percentile(s, 0.9)) for l, s in samples.items()}
bare = median["bare `true`"]
overhead = {l: median[l] - bare for l in median}

# --- peak RSS while supervising `sleep 1` ---
def child_pids(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []

def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:  # exited between the listing and the read
        return None

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)

def peak_rss(argv):
    sup = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Wait until the supervisor's child has become `sleep` (exec done): from
    # then on the supervisor only waits, so its high-water mark is final.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(comm(kid) == "sleep" for kid in child_pids(sup.pid)):
            break
        time.sleep(0.002)
    else:
        sup.kill()
        sys.exit(f"{argv}: sleep child never appeared")
    time.sleep(0.2)  # let the supervisor settle into its wait
    fields = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads")
    reading = tuple(status_kib(sup.pid, f) for f in fields)
    if sup.wait() != 0:
        sys.exit(f"{argv} exited with {sup.returncode}")
    return reading

supervisors = [
    ("tini", [tini, "-s", "--", "sleep", "1"]),
    ("dumb-init", [dumb_init, "sleep", "1"]),
    ("herd (dynamic)", [herd_dyn, "run", "--", "sleep", "1"]),
    ("herd (static)", [herd_static, "run", "--", "sleep", "1"]),
] + [(label, [path, "run", "--", "sleep", "1"]) for label, path in others]
memory = {}
for label, argv in supervisors:
    readings = [peak_rss(argv) for _ in range(rss_repeats)]
    memory[label] = tuple(int(statistics.median(r[i] for r in readings)) for i in range(5))

# --- sizes ---
def file_kind(path):
    out = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout
    for phrase, kind in (("static-pie linked", "static"), ("statically linked", "static"),
                         ("dynamically linked", "dynamic")):
        if phrase in out:
            return f"{kind} (`file`: {phrase})"
    return out.strip()

binaries = [("herd (dynamic)", herd_dyn), ("herd (static)", herd_static),
            ("tini", tini), ("dumb-init", dumb_init)] + others
size = {label: os.path.getsize(path) for label, path in binaries}
MiB = 1024 * 1024

# --- report ---
print(f"### Wall time of `SUP -- /bin/true` ({runs} interleaved rounds, {warmup} warm-up)\n")
row("candidate", "command", "median µs", "p90 µs", "overhead vs bare µs (median)")
row("---", "---", "---:", "---:", "---:")
for label, argv in candidates:
    shown = " ".join([os.path.basename(argv[0])] + argv[1:])
    row(label, f"`{shown}`", f"{median[label]:.0f}", f"{p90[label]:.0f}",
        "—" if label.startswith("bare") else f"{overhead[label]:.0f}")
print()
herds = ["herd (dynamic)", "herd (static)"] + [label for label, _ in others]
row("ratio", *(f"{label} / tini" for label in herds))
row("---", *["---:"] * len(herds))
row("median wall time", *(f"{median[label] / median['tini']:.2f}" for label in herds))
row("overhead over bare `true`", *(f"{overhead[label] / overhead['tini']:.2f}" for label in herds))
pairs = [(mine, other) for mine, other in (("herd (dynamic)", "herd (HERD_OTHER)"),
                                           ("herd (static)", "herd (HERD_OTHER_STATIC)"))
         if other in median]
if pairs:
    print()
    row("ratio", *(f"{mine} / {other}" for mine, other in pairs))
    row("---", *["---:"] * len(pairs))
    row("median wall time", *(f"{median[m] / median[o]:.3f}" for m, o in pairs))
    row("overhead over bare `true`", *(f"{overhead[m] / overhead[o]:.3f}" for m, o in pairs))

print(f"\n### Memory of the supervisor while it runs `sleep 1` (median of {rss_repeats})\n")
row("supervisor", "VmHWM KiB", "VmRSS KiB", "RssAnon KiB", "RssFile KiB", "threads",
    "VmHWM − tini's KiB")
row("---", "---:", "---:", "---:", "---:", "---:", "---:")
tini_hwm = memory["tini"][0]
for label, _ in supervisors:
    hwm, rss, anon, file_, threads = memory[label]
    row(label, hwm, rss, anon, file_, threads,
        "—" if label == "tini" else f"{hwm - tini_hwm:+d}")
print("\nRssFile is mostly shared page cache (libc, the binary's own text); "
      "RssAnon is the supervisor's private memory.")

print("\n### Binary size\n")
row("binary", "path", "bytes", "MiB", "linking")
row("---", "---", "---:", "---:", "---")
for label, path in binaries:
    shown = os.path.relpath(path) if path.startswith(os.getcwd()) else path
    row(label, f"`{shown}`", size[label], f"{size[label] / MiB:.2f}", file_kind(path))

print("\n### Goals (issue 2)\n")
row("goal", "herd (dynamic)", "herd (static)")
row("---", "---", "---")
met = lambda ok: "met" if ok else "**not met**"
def overhead_cell(label):
    r = overhead[label] / overhead["tini"]
    return f"{met(r <= 1.0)} ({r:.2f})"
def rss_cell(label):
    d = memory[label][0] - tini_hwm
    return f"{met(d <= 1024)} ({d:+d} KiB)"
row("overhead per run ≤ tini's (ratio ≤ 1.00)", overhead_cell("herd (dynamic)"),
    overhead_cell("herd (static)"))
row("peak RSS ≤ tini's + 1 MiB", rss_cell("herd (dynamic)"), rss_cell("herd (static)"))
static_ok = size["herd (static)"] <= 1.5 * MiB
row("static binary ≤ 1.5 MiB", "n/a",
    f"{met(static_ok)} ({size['herd (static)'] / MiB:.2f} MiB)")
PY

cat <<EOF
- herd (dynamic): $(origin "$HERD_DYN")
- herd (static): $(origin "$HERD_STATIC")${HERD_OTHER:+
- herd (HERD_OTHER): $(origin "$HERD_OTHER")}${HERD_OTHER_STATIC:+
- herd (HERD_OTHER_STATIC): $(origin "$HERD_OTHER_STATIC")}
- $(rustc --version | cut -d' ' -f1-2); machine: $(nproc) CPUs, Linux $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)

EOF

log "measuring ($RUNS rounds; this takes a minute or two) ..."
python3 "$TMP/measure.py" "$RUNS" "$WARMUP" "$RSS_REPEATS" \
    "$HERD_DYN" "$HERD_STATIC" "$TINI" "$DUMB_INIT" "$HERD_OTHER" "$HERD_OTHER_STATIC"
