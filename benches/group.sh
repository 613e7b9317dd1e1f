#!/usr/bin/env bash
# Benchmark: `herd run` with a group (issue 3).
#
#   bash benches/group.sh                   # from the repository root
#   ROUNDS=3 REPEATS=2 bash benches/group.sh   # quicker, noisier
#   HERD=/new/target/release/herd HERD_STATIC=/new/target/x86_64-unknown-linux-gnu/release/herd \
#   HERD_OTHER=/old/target/release/herd bash benches/group.sh   # other builds
#
# HERD and HERD_STATIC default to this tree's builds, which the script then
# makes itself; a binary given in either is measured as it is, not built.
# HERD_OTHER (optional) is a second dynamic herd, measured in A, B and C
# beside HERD in the same interleaved rounds, to compare two builds of herd.
#
# Measures, in one run, each candidate beside its baseline:
#   A. output throughput of one writer printing 80-byte lines as fast as it
#      can: `writer | cat` (raw), herd, concurrently and honcho, all with their
#      name prefixes on, output to /dev/null;
#   B. a group of N `sleep 1000` processes under herd and under supervisord:
#      time from launch until all N sleeps run, time from SIGTERM until the
#      supervisor has exited, and the supervisor's own memory while they run
#      (and the same with 1 process, for the increment per process);
#   C. the restart gap: `exit 1` restarted at once, over and over (`--restart
#      always --backoff-min 0 --backoff-max 0`), the time from each run's exit
#      to the spawn of the next, beside a python3 loop that does only
#      posix_spawn and waitpid of the same `sh -c 'exit 1'` (needs root for
#      the kernel's process events; skipped with a note without them);
# and prints markdown tables with the goals of issue 3 and whether each is
# met. It is a report: it never fails because a goal is missed.
#
# Installs what is missing: Debian's supervisor and procps (apt-get, root),
# honcho from PyPI into a venv in a temporary directory, concurrently from npm
# into a temporary directory. Every process it starts carries a marker in its
# environment, and the exit trap kills whatever still carries it (honcho puts
# its children in sessions of their own, so process groups or sessions would
# miss some), then removes the temporary directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

ROUNDS=${ROUNDS:-5}             # throughput rounds; each candidate once per round
REPEATS=${REPEATS:-3}           # group runs per candidate (B)
GROUP_SIZE=${GROUP_SIZE:-100}   # processes in the big group (B)
SETTLE=${SETTLE:-2}             # seconds between "all running" and reading memory
SIZE_RAW=${SIZE_RAW:-1000000000}            # bytes: raw and herd
SIZE_CONCURRENTLY=${SIZE_CONCURRENTLY:-200000000}
SIZE_HONCHO=${SIZE_HONCHO:-20000000}
HONCHO_VERSION=${HONCHO_VERSION:-2.0.0}
CONCURRENTLY_VERSION=${CONCURRENTLY_VERSION:-9.2.5}

log() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d -t herd-group-bench.XXXXXX)
MARKER="HERD_GROUP_BENCH=$TMP"
CREATED_POLICY_RC=
HELPER=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # The helper kills what it started when told to stop; whatever is left
    # (the helper killed outright, say) is found by the marker.
    if [[ -n $HELPER ]] && kill -TERM "$HELPER" 2>/dev/null; then
        wait "$HELPER" 2>/dev/null || true
    fi
    kill_marked
    if [[ -n $CREATED_POLICY_RC ]]; then rm -f /usr/sbin/policy-rc.d; fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- builds ------------------------------------------------------------------
# The static build goes through an explicit --target, as in run-overhead.sh,
# so it never touches target/release/.
HOST=$(rustc -vV | sed -n 's/^host: //p')
if [[ -z ${HERD:-} ]]; then
    log "building herd (dynamic) ..."
    cargo build --release --quiet
    HERD=$PWD/target/release/herd
fi
if [[ -z ${HERD_STATIC:-} ]]; then
    log "building herd (static) ..."
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --quiet --target "$HOST"
    HERD_STATIC=$PWD/target/$HOST/release/herd
fi
HERD=$(realpath "$HERD")
HERD_STATIC=$(realpath "$HERD_STATIC")
HERD_OTHER=${HERD_OTHER:+$(realpath "$HERD_OTHER")}
RESTARTS=${RESTARTS:-200}           # restarts per run (C)
RESTART_RUNS=${RESTART_RUNS:-10}    # runs per candidate (C)
# A binary just written by the linker sits in dirty page-cache pages until
# writeback, and smaps counts those as Private_Dirty of whoever maps them:
# flush them so that herd's Private_Dirty is its own memory.
sync "$HERD" "$HERD_STATIC" ${HERD_OTHER:+"$HERD_OTHER"}

# --- the other tools -----------------------------------------------------------
missing=()
command -v supervisord >/dev/null || missing+=(supervisor)
command -v pgrep >/dev/null || missing+=(procps)
if ((${#missing[@]})); then
    log "installing ${missing[*]} ..."
    # Keep the package from starting its own supervisord service.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        CREATED_POLICY_RC=1
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
    if [[ -n $CREATED_POLICY_RC ]]; then rm -f /usr/sbin/policy-rc.d; CREATED_POLICY_RC=; fi
fi
SUPERVISORD=$(command -v supervisord)

if command -v honcho >/dev/null; then
    HONCHO=$(command -v honcho)
else
    log "installing honcho $HONCHO_VERSION into a temporary venv ..."
    PY=python3
    if ! "$PY" -m venv "$TMP/venv" >&2 2>&1; then
        rm -rf "$TMP/venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq python3-venv >&2
        PY=/usr/bin/python3
        "$PY" -m venv "$TMP/venv" >&2
    fi
    "$TMP/venv/bin/pip" install --quiet --disable-pip-version-check \
        "honcho==$HONCHO_VERSION" >&2
    HONCHO=$TMP/venv/bin/honcho
fi

if command -v concurrently >/dev/null; then
    CONCURRENTLY=$(command -v concurrently)
else
    log "installing concurrently $CONCURRENTLY_VERSION into a temporary directory ..."
    mkdir -p "$TMP/npm"
    (cd "$TMP/npm" && npm install --silent --no-audit --no-fund --no-save \
        "concurrently@$CONCURRENTLY_VERSION" >&2 2>&1)
    CONCURRENTLY=$TMP/npm/node_modules/.bin/concurrently
fi

# --- the writer --------------------------------------------------------------
# 80-byte lines (79 characters and a newline), written as one 64000-byte block
# (800 lines) per write(2) call, so the writer costs next to nothing: its rate
# into /dev/null is reported beside the others to show it is not the limit.
cat >"$TMP/writer.py" <<'PY'
import sys
total = int(sys.argv[1])
line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg\n"
assert len(line) == 80 and total % len(line) == 0
block = line * 800
out = sys.stdout.buffer
whole, rest = divmod(total, len(block))
for _ in range(whole):
    out.write(block)
out.write(line * (rest // len(line)))
out.flush()
PY

# --- measure and report ------------------------------------------------------
# One python3 helper measures everything:
#  * every candidate is started with os.posix_spawn (stdin and stdout on
#    /dev/null, stderr to a file) and reaped with os.wait4, timed with
#    time.perf_counter; the rusage of wait4 gives the CPU time of the whole
#    tree (the supervisor and everything it reaped);
#  * throughput: rounds in which raw and herd (and HERD_OTHER) run back to
#    back, their order turned every round, then the others in a random order;
#    medians. Each candidate is also run once with an empty writer (0
#    bytes), and the rate is its size over (median wall time - median
#    empty-run time), so the start-up of node or of Python (tens to hundreds
#    of ms) does not count against the slow candidates, which run a smaller
#    size; the plain rate over the wall time is shown too;
#  * groups: the helper polls the supervisor's children in /proc (1 ms) until
#    N of them are `sleep` (herd runs `sh -c 'exec sleep 1000'`, so sh has
#    become sleep by then), waits SETTLE s, reads the supervisor's
#    /proc/PID/status and smaps_rollup, sends SIGTERM and waits for its exit,
#    then checks that none of the sleeps is left;
#  * the helper is a child subreaper: anything orphaned comes back to it and
#    is killed on the way out.
cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import ctypes, errno, gc, os, random, shutil, signal, socket, statistics, struct, subprocess, sys
import time
from timing import comm, percentile as pct, row

(tmp, herd, herd_static, herd_other, supervisord, honcho, concurrently, rounds, repeats,
 group_size, settle, size_raw, size_conc, size_honcho, restarts, restart_runs) = sys.argv[1:]
rounds, repeats, group_size = int(rounds), int(repeats), int(group_size)
restarts, restart_runs = int(restarts), int(restart_runs)
settle = float(settle)
size_raw, size_conc, size_honcho = int(size_raw), int(size_conc), int(size_honcho)

PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

env = dict(os.environ)
null = os.open(os.devnull, os.O_RDWR)
errlog = os.open(os.path.join(tmp, "stderr.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
SH = shutil.which("sh")
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg"

def note(*a):
    print(*a, file=sys.stderr, flush=True)

def spawn(argv, stdout=null):
    actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
               (os.POSIX_SPAWN_DUP2, errlog, 2)]
    return os.posix_spawn(argv[0], argv, env, file_actions=actions)

def reap(pid, what):
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, usage.ru_utime + usage.ru_stime

def my_children():
    kids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            pass
    return kids

def kill_everything_left():
    for _ in range(50):
        kids = my_children()
        if not kids:
            return
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break

import atexit
atexit.register(kill_everything_left)

# ---------------------------------------------------------------- A: throughput
def writer(size):
    return f"{sys.executable} {tmp}/writer.py {size}"

procfiles = {}
def procfile(size):
    path = os.path.join(tmp, f"honcho-{size}", "Procfile")
    if size not in procfiles:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"w: {writer(size)}\n")
        procfiles[size] = path
    return path

RAW = "raw (`writer \\| cat`)"
WRITER_ALONE = "writer alone (no pipe, > /dev/null)"
# label -> (size, argv for a given size, prefix of a writer line in its output)
tools = {
    WRITER_ALONE: (size_raw, lambda n: [SH, "-c", writer(n)], b""),
    RAW: (size_raw, lambda n: [SH, "-c", f"{writer(n)} | cat"], b""),
    "herd": (size_raw, lambda n: [herd, "run", "--color", "never", "-c", f"w={writer(n)}",
                                  "--oneshot", "w"], b"w    | "),
    "herd --timestamps": (size_raw, lambda n: [herd, "run", "--color", "never", "--timestamps",
                                               "-c", f"w={writer(n)}", "--oneshot", "w"], None),
    "concurrently": (size_conc, lambda n: [concurrently, "-n", "w", writer(n)], b"[w] "),
    "honcho": (size_honcho, lambda n: [honcho, "start", "-f", procfile(n)], None),
}
OTHER = "herd (HERD_OTHER)"
if herd_other:
    tools[OTHER] = (size_raw, lambda n: [herd_other, "run", "--color", "never", "-c",
                                         f"w={writer(n)}", "--oneshot", "w"], b"w    | ")
commands = {
    WRITER_ALONE: "sh -c 'WRITER' > /dev/null",
    RAW: "sh -c 'WRITER \\| cat' > /dev/null",
    "herd": "herd run --color never -c w='WRITER' --oneshot w > /dev/null",
    "herd --timestamps": "herd run --color never --timestamps -c w='WRITER' --oneshot w > /dev/null",
    "concurrently": "concurrently -n w 'WRITER' > /dev/null",
    "honcho": "honcho start -f Procfile > /dev/null",
    OTHER: "herd run --color never -c w='WRITER' --oneshot w > /dev/null",
}

def timed(argv, stdout=null):
    start = time.perf_counter()
    pid = spawn(argv, stdout)
    code, cpu = reap(pid, argv)
    wall = time.perf_counter() - start
    if code != 0:
        sys.exit(f"{argv} exited with {code}; see its stderr in {tmp}/stderr.log")
    return wall, cpu

def output_of(argv):
    path = os.path.join(tmp, "sample.out")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        timed(argv, fd)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        return f.read()

# Sanity: 100 lines through each tool come out whole, with the prefix.
for label, (_, make, prefix) in tools.items():
    if label.startswith("writer alone"):
        continue
    out = output_of(make(8000))
    lines = [l for l in out.split(b"\n") if l.endswith(LINE)]
    bad = [l for l in lines if prefix is not None and l != prefix + LINE]
    if len(lines) != 100 or bad:
        sys.exit(f"{label}: {len(lines)} writer lines of 100 in its output, {len(bad)} malformed:\n"
                 + out[:2000].decode(errors="replace"))
# And the full-size herd run loses nothing: count its lines with grep.
note(f"checking that herd passes all {size_raw // 80} lines ...")
count_cmd = (f"{herd} run --color never -c 'w={writer(size_raw)}' --oneshot w"
             f" | grep -c '^w    | {LINE.decode()}$'")
counted = subprocess.run([SH, "-c", count_cmd], capture_output=True, text=True, env=env)
if counted.stdout.strip() != str(size_raw // 80):
    sys.exit(f"herd passed {counted.stdout.strip()} of {size_raw // 80} lines: {counted.stderr}")

note(f"throughput: {rounds} rounds ...")
walls = {label: [] for label in tools}
cpus = {label: [] for label in tools}
empties = {label: [] for label in tools}
for round_ in range(rounds):
    # raw and herd (and HERD_OTHER) back to back, their order turned every round
    pair = [RAW, "herd"] + ([OTHER] if herd_other else [])
    pair = pair[round_ % len(pair):] + pair[:round_ % len(pair)]
    rest = [l for l in tools if l not in pair]
    random.shuffle(rest)
    for label in pair + rest:
        size, make, _ = tools[label]
        wall, cpu = timed(make(size))
        walls[label].append(wall)
        cpus[label].append(cpu)
    note(f"  round {round_ + 1}: " + ", ".join(
        f"{'other' if l == OTHER else l.split(' ')[0]} {walls[l][-1]:.2f}s" for l in pair + rest))
for _ in range(rounds):
    order = list(tools)
    random.shuffle(order)
    for label in order:
        empties[label].append(timed(tools[label][1](0))[0])

med = statistics.median
rate = {}      # label -> (MB/s net, M lines/s net, MB/s over wall time)
for label, (size, _, _) in tools.items():
    wall, empty = med(walls[label]), med(empties[label])
    # The writer alone into /dev/null takes about its own start-up time, so
    # only a lower bound of its rate is known: size over the whole wall time.
    net = wall if label == WRITER_ALONE else max(wall - empty, 1e-9)
    rate[label] = (size / net / 1e6, size / 80 / net / 1e6, size / wall / 1e6)

met = lambda ok: "met" if ok else "**not met**"

print(f"### A. Output throughput: 80-byte lines, prefixes on, output to /dev/null "
      f"(median of {rounds} interleaved rounds)\n")
row("candidate", "command", "size MB", "wall s (median)", "min–max s", "start-up s",
    "MB/s", "M lines/s", "MB/s incl. start-up", "CPU s (whole tree)")
row("---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
for label, (size, _, _) in tools.items():
    bound = "≥ " if label == WRITER_ALONE else ""
    row(label, f"`{commands[label]}`", f"{size / 1e6:g}", f"{med(walls[label]):.3f}",
        f"{min(walls[label]):.2f}–{max(walls[label]):.2f}", f"{med(empties[label]):.3f}",
        f"{bound}{rate[label][0]:.0f}", f"{bound}{rate[label][1]:.2f}", f"{rate[label][2]:.0f}",
        f"{med(cpus[label]):.2f}")
print("\nWRITER is `PYTHON writer.py SIZE` (64000-byte writes of 800 lines; PYTHON is the "
      "interpreter itself, not a shim); honcho's Procfile is `w: WRITER`. "
      "MB/s and M lines/s are SIZE over (wall − start-up), start-up being the median "
      "wall time of the same command with a 0-byte writer (for the writer alone, whose "
      "run is mostly its start-up, SIZE over the whole wall time: a lower bound). Every "
      "candidate runs the writer through `sh -c`. CPU is user+sys of the whole tree "
      "(wait4).\n")

herd_rate = rate["herd"][0]
ratios = [
    ("herd / raw", rate[RAW][0], 0.8),
    ("herd / concurrently", rate["concurrently"][0], 2.0),
    ("herd / honcho", rate["honcho"][0], 20.0),
]
row("ratio of MB/s", "value", "goal", "")
row("---", "---:", "---:", "---")
for name, other, goal in ratios:
    value = herd_rate / other
    row(name, f"{value:.2f}", f"≥ {goal:g}", met(value >= goal))
row("herd --timestamps / raw (no goal)", f"{rate['herd --timestamps'][0] / rate[RAW][0]:.2f}",
    "—", "")
if herd_other:
    row(f"{OTHER} / raw (no goal)", f"{rate[OTHER][0] / rate[RAW][0]:.2f}", "—", "")
    row(f"herd / {OTHER} (no goal)", f"{herd_rate / rate[OTHER][0]:.3f}", "—", "")

# ---------------------------------------------------------------- B: groups
def herd_argv(binary, n, *extra):
    argv = [binary, "run", "--color", "never", *extra]
    for i in range(n):
        argv += ["-c", f"s{i}=exec sleep 1000"]
    return argv

def supervisord_argv(n):
    directory = os.path.join(tmp, f"supervisord-{n}")
    os.makedirs(os.path.join(directory, "log"), exist_ok=True)
    conf = os.path.join(directory, "supervisord.conf")
    with open(conf, "w") as f:
        f.write("[supervisord]\nnodaemon=true\nuser=root\n"
                f"logfile={directory}/supervisord.log\npidfile={directory}/supervisord.pid\n"
                f"childlogdir={directory}/log\n\n")
        for i in range(n):
            f.write(f"[program:s{i}]\ncommand=sleep 1000\nautostart=true\nautorestart=false\n\n")
    return [supervisord, "-c", conf]

def children(pid, all_tasks):
    tids = os.listdir(f"/proc/{pid}/task") if all_tasks else [str(pid)]
    kids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            pass
    return kids

def kib_fields(path, names):
    found = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in names:
                found[key] = int(value.split()[0])
    return found

MEM = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Private_Dirty", "Private_Clean", "Pss",
       "Threads")

def group_run(argv, n):
    start = time.perf_counter()
    pid = spawn(argv)
    sleeps = set()
    all_tasks = False
    try:
        while len(sleeps) < n:
            elapsed = time.perf_counter() - start
            if elapsed > 60:
                sys.exit(f"{argv[0]}: only {len(sleeps)} of {n} sleeps after 60 s")
            # herd and supervisord spawn from their main thread; should that
            # change, after 5 s every thread's children are looked at.
            all_tasks = all_tasks or elapsed > 5
            for kid in children(pid, all_tasks):
                if kid not in sleeps and comm(kid) == "sleep":
                    sleeps.add(kid)
            if len(sleeps) < n:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    sys.exit(f"{argv[0]} exited before its {n} sleeps ran")
                time.sleep(0.001)
        started = time.perf_counter() - start
        time.sleep(settle)
        memory = kib_fields(f"/proc/{pid}/status", MEM)
        memory.update(kib_fields(f"/proc/{pid}/smaps_rollup", MEM))
        stop_at = time.perf_counter()
        os.kill(pid, signal.SIGTERM)
        code, _ = reap(pid, argv)
        stopped = time.perf_counter() - stop_at
        pid = None
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    left = [s for s in sleeps if comm(s) == "sleep"]
    for s in left:
        os.kill(s, signal.SIGKILL)
    return started, stopped, memory, code, len(left)

N = group_size
groups = [  # (label, supervisor, processes, argv)
    ("herd", "herd", N, herd_argv(herd, N)),
    ("herd", "herd", 1, herd_argv(herd, 1)),
    ("herd --parallel-stop", "herd", N, herd_argv(herd, N, "--parallel-stop")),
    ("herd (static)", "herd (static)", N, herd_argv(herd_static, N)),
    ("herd (static)", "herd (static)", 1, herd_argv(herd_static, 1)),
    ("supervisord", "supervisord", N, supervisord_argv(N)),
    ("supervisord", "supervisord", 1, supervisord_argv(1)),
]
if herd_other:
    groups += [(OTHER, OTHER, N, herd_argv(herd_other, N)),
               (OTHER, OTHER, 1, herd_argv(herd_other, 1))]
note(f"groups: {repeats} runs of each of {len(groups)} ...")
results = {(g[0], g[2]): [] for g in groups}
for repeat in range(repeats):
    order = list(groups)
    random.shuffle(order)
    for label, _, n, argv in order:
        results[(label, n)].append(group_run(argv, n))
        r = results[(label, n)][-1]
        note(f"  {label} x{n}: started {r[0] * 1000:.0f} ms, stopped {r[1] * 1000:.0f} ms, "
             f"VmHWM {r[2]['VmHWM']} KiB, exit {r[3]}, left {r[4]}")

def summary(key):
    runs = results[key]
    mem = {f: int(med(r[2][f] for r in runs)) for f in MEM}
    return (med(r[0] for r in runs) * 1000, med(r[1] for r in runs) * 1000, mem,
            sorted({r[3] for r in runs}), sum(r[4] for r in runs))

s = {key: summary(key) for key in results}
private = lambda mem: max(mem["RssAnon"], mem["Private_Dirty"])

print(f"\n### B. A group of `sleep 1000` processes: start, stop, memory "
      f"(median of {repeats} runs, interleaved)\n")
row("supervisor", "processes", "launch → all running ms", "SIGTERM → exit ms", "exit code",
    "sleeps left", "VmHWM KiB", "VmRSS KiB", "RssAnon KiB", "RssFile KiB",
    "Private_Dirty KiB", "Private_Clean KiB", "Pss KiB", "threads")
row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:",
    "---:", "---:", "---:")
for label, _, n, _ in groups:
    start_ms, stop_ms, mem, codes, left = s[(label, n)]
    row(label, n, f"{start_ms:.0f}", f"{stop_ms:.0f}", "/".join(map(str, codes)), left,
        *(mem[f] for f in MEM))
print(f"\nherd runs `herd run --color never -c s0='exec sleep 1000' ... -c s{N - 1}=...`; "
      f"supervisord runs a generated supervisord.conf with `[program:sN] command=sleep 1000`, "
      f"nodaemon, autostart, default output capture to log files. Memory is read from "
      f"/proc/PID/status and /proc/PID/smaps_rollup of the supervisor itself {settle:g} s "
      f"after all its sleeps run; VmHWM is its peak RSS.\n")

print(f"Increment per extra process, (value with {N} − value with 1) / {N - 1}:\n")
row("supervisor", "VmHWM KiB", "RssAnon KiB", "Private_Dirty KiB")
row("---", "---:", "---:", "---:")
for label in ("herd", "herd (static)", "supervisord") + ((OTHER,) if herd_other else ()):
    big, one = s[(label, N)][2], s[(label, 1)][2]
    row(label, *(f"{(big[f] - one[f]) / (N - 1):.1f}" for f in ("VmHWM", "RssAnon",
                                                                  "Private_Dirty")))

budget = 1024 + 16 * (N - 1)
sv = s[("supervisord", N)][2]
print(f"\n| goal | herd | herd (static) |")
print("| --- | --- | --- |")
cells = []
for label in ("herd", "herd (static)"):
    mem = s[(label, N)][2]
    cells.append(f"{met(mem['VmHWM'] * 10 <= sv['VmHWM'])} "
                 f"({mem['VmHWM']} vs {sv['VmHWM']} KiB: 1/{sv['VmHWM'] / mem['VmHWM']:.1f})")
row(f"peak RSS (VmHWM) with {N} ≤ 1/10 of supervisord's", *cells)
cells = []
for label in ("herd", "herd (static)"):
    mem = s[(label, N)][2]
    cells.append(f"{met(private(mem) <= budget)} ({private(mem)} KiB of {budget})")
row(f"private memory (max of RssAnon, Private_Dirty) with {N} ≤ 1 MiB + {N - 1} × 16 KiB",
    *cells)
cells = []
for label in ("herd", "herd (static)"):
    mem = s[(label, 1)][2]
    cells.append(f"{met(private(mem) <= 1024)} ({private(mem)} KiB)")
row("private memory with 1 process ≤ 1 MiB", *cells)
cells = []
for label in ("herd", "herd (static)"):
    big, one = s[(label, N)][2], s[(label, 1)][2]
    inc = (private(big) - private(one)) / (N - 1)
    cells.append(f"{met(inc <= 16)} ({inc:.1f} KiB)")
row("private memory per extra process ≤ 16 KiB", *cells)

# ---------------------------------------------------------------- C: restart gap
# The kernel's process events (the proc connector over netlink, root only):
# a fork event for every process created and an exit event for every process
# that exits, each stamped by the kernel (CLOCK_MONOTONIC, ns) when it happens,
# so neither the helper's scheduling nor herd's output path is in the figures.
# The helper only reads them after each run: herd stops itself, since
# `--start-limit RESTARTS` has it give up, and exit 1, at the restart after the
# last one; the socket's buffer holds the events in between.
NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC, PROC_CN_MCAST_LISTEN = 11, 1, 1, 1
NLMSG_DONE, SO_RCVBUFFORCE = 3, 33
PROC_EVENT_FORK, PROC_EVENT_EXEC, PROC_EVENT_EXIT = 0x00000001, 0x00000002, 0x80000000
NLMSG, CN_MSG = struct.Struct("=IHHII"), struct.Struct("=IIIIHH")
# struct proc_event: what, cpu, timestamp_ns, then for fork (parent pid, parent
# tgid, child pid, child tgid) and for exit (pid, tgid, ...).
EVENT = struct.Struct("=IIQIIII")
EVENT_AT = NLMSG.size + CN_MSG.size

def process_events():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind((0, CN_IDX_PROC))
    op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
    body = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
    sock.send(NLMSG.pack(NLMSG.size + len(body), NLMSG_DONE, 0, 0, 0) + body)
    sock.setblocking(False)
    return sock

def drain(sock):
    """The events queued so far: (what, ns, ids...)."""
    events = []
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return events
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                sys.exit("restart gap: the kernel dropped process events (socket buffer full)")
            raise
        if len(data) >= EVENT_AT + EVENT.size:
            what, _, ns, a, b, c, d = EVENT.unpack_from(data, EVENT_AT)
            events.append((what, ns, a, b, c, d))

def spawn_gaps(events, parent, n):
    """The spawns of `parent` (new processes, not threads, that exec: herd's
    guard, a clone of herd that never execs, is not one) and their exits:
    (exit of run k → spawn of run k+1, spawn k → spawn k+1) in ns, k = 1..n."""
    spawned, exited, execed = [], {}, set()
    for what, ns, a, b, c, d in events:
        if what == PROC_EVENT_FORK and b == parent and c == d:
            spawned.append((c, ns))
        elif what == PROC_EVENT_EXEC and a == b:
            execed.add(a)
        elif what == PROC_EVENT_EXIT and a == b:
            exited[a] = ns
    spawned = [(pid, ns) for pid, ns in spawned if pid in execed]
    if len(spawned) != n + 1 or any(pid not in exited for pid, _ in spawned[:n]):
        sys.exit(f"restart gap: pid {parent} spawned {len(spawned)} processes, expected {n + 1}")
    return [(spawned[k + 1][1] - exited[spawned[k][0]], spawned[k + 1][1] - spawned[k][1])
            for k in range(n)]

EXIT_1 = ["/bin/sh", "-c", "exit 1"]   # what herd runs for `-c f='exit 1'`

def herd_restarts(binary):
    argv = [binary, "run", "--color", "never", "-c", "f=exit 1", "--restart", "f=always",
            "--backoff-min", "0", "--backoff-max", "0", "--start-limit", str(restarts)]
    pid = spawn(argv)
    code, _ = reap(pid, argv)
    if code != 1:
        sys.exit(f"restart gap: {argv} exited with {code}, expected 1 (gave up)")
    return pid

def python_restarts(_):
    # The least a restarter can do, in the same interpreter as the helper:
    # spawn, wait for the exit, spawn again at once.
    for _ in range(restarts + 1):
        code, _ = reap(spawn(EXIT_1), EXIT_1)
        if code != 1:
            sys.exit(f"restart gap: {EXIT_1} exited with {code}, expected 1")
    return os.getpid()

restart_candidates = [("herd", herd_restarts, herd)]
if herd_other:
    restart_candidates.append((OTHER, herd_restarts, herd_other))
BASELINE = "python3 loop (baseline)"
restart_candidates.append((BASELINE, python_restarts, None))
restart_commands = {
    "herd": "`herd run --color never -c f='exit 1' --restart f=always --backoff-min 0 "
            f"--backoff-max 0 --start-limit {restarts}`",
    BASELINE: "`os.posix_spawn` of `/bin/sh -c 'exit 1'`, `os.waitpid`, again",
}
restart_commands[OTHER] = restart_commands["herd"]

print(f"\n### C. Restart gap: `exit 1` restarted at once, {restart_runs} runs of "
      f"{restarts} restarts per candidate, interleaved\n")
try:
    events_socket = process_events()
except OSError as e:
    events_socket = None
    print(f"Not measured: no process events from the kernel ({e}).")
if events_socket is not None:
    note(f"restart gap: {restart_runs} runs of {restarts} restarts, {len(restart_candidates)} "
         "candidates ...")
    gaps = {label: [] for label, _, _ in restart_candidates}
    for run in range(restart_runs):
        order = list(restart_candidates)
        random.shuffle(order)
        for label, measure, binary in order:
            drain(events_socket)
            gc.disable()
            parent = measure(binary)
            gc.enable()
            gaps[label] += spawn_gaps(drain(events_socket), parent, restarts)
        note(f"  run {run + 1}: " + ", ".join(
            f"{l} {med(g[0] for g in gaps[l][-restarts:]) / 1000:.0f} µs"
            for l, _, _ in restart_candidates))
    events_socket.close()

    us = lambda ns: f"{ns / 1000:.0f}"
    base = med(g[0] for g in gaps[BASELINE])
    row("candidate", "command", "exit → next spawn, median µs", "p90 µs", "p99 µs",
        "spawn → next spawn, median µs", "p99 µs", "restarts/s", "exit → spawn / baseline's")
    row("---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
    for label, _, _ in restart_candidates:
        exit_spawn = [g[0] for g in gaps[label]]
        cycle = [g[1] for g in gaps[label]]
        row(label, restart_commands[label], us(med(exit_spawn)),
            us(pct(exit_spawn, 0.9)), us(pct(exit_spawn, 0.99)), us(med(cycle)),
            us(pct(cycle, 0.99)), f"{1e9 / med(cycle):.0f}",
            "—" if label == BASELINE else f"{med(exit_spawn) / base:.2f}")
    print(f"\nTimes are the kernel's, from its process events: from the exit event of one run "
          f"of `/bin/sh -c 'exit 1'` (sent in do_exit right after the parent is signalled) to "
          f"the fork event of the next run's process (sent by clone(2)), of the same parent; "
          f"{restart_runs * restarts} gaps per candidate. Exit → next spawn is the "
          f"supervisor's own latency: waking at SIGCHLD, reaping, the restart decision, its "
          f"three lines (to /dev/null), the spawn up to clone(2). Spawn → next spawn adds the "
          f"child's own life (exec of sh, exit). herd stops itself: `--start-limit {restarts}` "
          f"has it give up (exit 1) instead of restart {restarts + 1}. The baseline is the "
          f"least a restarter can do, in the helper's own python3, so the ratio is a yardstick "
          f"for this machine's noise, not a goal.")
PY

# The header of the report: what ran, where.
cat <<EOF
- herd $("$HERD" --version | cut -d' ' -f2) (dynamic): $(origin "$HERD")
- herd (static): $(origin "$HERD_STATIC")${HERD_OTHER:+
- herd (HERD_OTHER), dynamic: $(origin "$HERD_OTHER")}
- $(rustc --version | cut -d' ' -f1-2); load average $(cut -d' ' -f1-3 /proc/loadavg)
- supervisord $("$SUPERVISORD" --version) (Debian), honcho $("$HONCHO" --version 2>&1 | awk '{print $NF}'),
  concurrently $("$CONCURRENTLY" --version) (node $(node --version)), helper and writer on $(python3 --version 2>&1)
- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)
- sizes: raw and herd $((SIZE_RAW / 1000000)) MB, concurrently $((SIZE_CONCURRENTLY / 1000000)) MB,
  honcho $((SIZE_HONCHO / 1000000)) MB; groups of $GROUP_SIZE and of 1 processes

EOF

log "measuring (a few minutes) ..."
# In the background, so that a signal to this script runs the trap at once
# (bash runs traps only between commands, and `wait` is cut short by one).
env "$MARKER" python3 "$TMP/measure.py" "$TMP" "$HERD" "$HERD_STATIC" "$HERD_OTHER" \
    "$SUPERVISORD" "$HONCHO" "$CONCURRENTLY" "$ROUNDS" "$REPEATS" "$GROUP_SIZE" "$SETTLE" \
    "$SIZE_RAW" "$SIZE_CONCURRENTLY" "$SIZE_HONCHO" "$RESTARTS" "$RESTART_RUNS" &
HELPER=$!
wait "$HELPER"
HELPER=
