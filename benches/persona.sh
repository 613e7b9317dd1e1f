#!/usr/bin/env bash
# Benchmark: `herd run -- true`, herd as tini (a symlink named tini), and the
# real tini, dynamic and static, side by side (issue 9).
#
#   bash benches/persona.sh            # from the repository root
#   RUNS=500 bash benches/persona.sh   # quicker, noisier
#   HERD=... HERD_STATIC=... bash benches/persona.sh   # other builds of herd
#
# HERD and HERD_STATIC default to this tree's builds, which the script makes
# (the static one with `--target x86_64-unknown-linux-gnu`, as
# benches/run-overhead.sh does). Every candidate is started the same way
# (posix_spawn + waitpid from python3, stdio on /dev/null), once per round in
# a fresh random order, so that the noise of a shared machine hits them all
# alike; the report gives medians and p90s and the overhead over a bare
# `true`. tini and herd as tini both get -s (child subreaper, herd's default,
# and without it both print a warning on every run). It is a report: it never
# fails because a goal is missed.
#
# Needs cargo, python3 >= 3.8, and root for apt-get unless tini (with
# tini-static) is installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-2000}
WARMUP=${WARMUP:-100}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

log() { printf '%s\n' "$*" >&2; }

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
HERD=$(realpath "$HERD")
HERD_STATIC=$(realpath "$HERD_STATIC")

if [[ ! -x /usr/bin/tini || ! -x /usr/bin/tini-static ]]; then
    log "installing tini ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq tini >&2
fi

# herd as tini: a symlink named tini to each build.
mkdir -p "$TMP/dynamic" "$TMP/static"
ln -s "$HERD" "$TMP/dynamic/tini"
ln -s "$HERD_STATIC" "$TMP/static/tini"

cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import os, statistics, sys
from timing import interleaved, percentile, row, spawn_timer

runs, warmup = int(sys.argv[1]), int(sys.argv[2])
herd, herd_static, as_tini, as_tini_static = sys.argv[3:7]
TRUE = "/bin/true"
candidates = [
    ("bare `true`", [TRUE]),
    ("tini (dynamic)", ["/usr/bin/tini", "-s", "--", TRUE]),
    ("tini (static)", ["/usr/bin/tini-static", "-s", "--", TRUE]),
    ("herd (dynamic)", [herd, "run", "--", TRUE]),
    ("herd (static)", [herd_static, "run", "--", TRUE]),
    ("herd as tini (dynamic)", [as_tini, "-s", "--", TRUE]),
    ("herd as tini (static)", [as_tini_static, "-s", "--", TRUE]),
]
env = dict(os.environ)

samples = interleaved([(label, spawn_timer(argv, env)) for label, argv in candidates], runs, warmup)

us = lambda ns: ns / 1000
median = {l: us(statistics.median(s)) for l, s in samples.items()}
p90 = {l: us(percentile(s, 0.9)) for l, s in samples.items()}
overhead = {l: median[l] - median["bare `true`"] for l in median}

print(f"### Wall time of `SUP -- /bin/true` ({runs} interleaved rounds, {warmup} warm-up)\n")
row("candidate", "command", "median µs", "p90 µs", "overhead vs bare µs (median)")
row("---", "---", "---:", "---:", "---:")
for label, argv in candidates:
    shown = " ".join([os.path.basename(argv[0])] + argv[1:])
    row(label, f"`{shown}`", f"{median[label]:.0f}", f"{p90[label]:.0f}",
        "—" if label.startswith("bare") else f"{overhead[label]:.0f}")
print()
pairs = [("herd (dynamic)", "tini (dynamic)"), ("herd as tini (dynamic)", "tini (dynamic)"),
         ("herd (static)", "tini (static)"), ("herd as tini (static)", "tini (static)"),
         ("herd as tini (static)", "herd (static)")]
row("ratio", "median wall time", "overhead over bare `true`")
row("---", "---:", "---:")
for mine, other in pairs:
    row(f"{mine} / {other}", f"{median[mine] / median[other]:.2f}",
        f"{overhead[mine] / overhead[other]:.2f}")
print()
ratio = overhead["herd as tini (static)"] / overhead["tini (static)"]
goal = "met" if ratio <= 1.0 else "**not met**"
print(f"Goal (issue 9): herd as tini, static, costs at most what tini-static does "
      f"(overhead ratio ≤ 1.00): {goal} ({ratio:.2f}).")
PY

cat <<EOF
- herd (dynamic): $(origin "$HERD")
- herd (static): $(origin "$HERD_STATIC")
- tini: $(/usr/bin/tini --version), /usr/bin/tini and /usr/bin/tini-static
- $(rustc --version | cut -d' ' -f1-2); machine: $(nproc) CPUs, Linux $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)

EOF

log "measuring ($RUNS rounds) ..."
python3 "$TMP/measure.py" "$RUNS" "$WARMUP" "$HERD" "$HERD_STATIC" \
    "$TMP/dynamic/tini" "$TMP/static/tini"
