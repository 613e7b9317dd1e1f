#!/usr/bin/env bash
# Benchmark: what one `herd status` costs, as a whole command, against
# `herd --version` from the same binary (no socket).
#
#   bash benches/control.sh              # from the repository root
#   RUNS=200 bash benches/control.sh     # quicker, noisier
#   HERD=/other/tree/target/release/herd bash benches/control.sh
#                                        # another build, measured as it is
#
# Starts one supervisor (`herd start -c s='exec sleep 1000'`) in a temporary
# state directory, then times, in one run, RUNS executions of each of:
#   * `herd status --state-dir DIR`: exec, pid-file check, connect, hello and
#     status round trips on the control socket, the table on stdout;
#   * `herd status` of a state directory where nothing runs: exec and the
#     pid-file check only (it exits 3 before it touches a socket);
#   * `herd --version`: exec, argument parsing, one line on stdout;
# so that status − version is what the control socket costs a user, and
# status − (nothing running) is the connection and its two round trips alone.
#
# Placements (this is a 2-vCPU VM, where a wake-up of the other, idle vCPU
# costs tens of µs): "same": the timer, the commands and every supervisor
# thread on CPU 0; "split": the supervisor on CPU 1; "unpinned": no
# affinity, as a user runs it. Placements alternate in blocks of BLOCK rounds;
# within a round the commands run in a fresh random order.
#
# Timing: one python3 helper starts every command with os.posix_spawn (glibc:
# clone(CLONE_VM|CLONE_VFORK) + exec, no fork of the Python heap), waits with
# os.waitpid and reads time.perf_counter_ns around both, with stdin, stdout
# and stderr on /dev/null and the GC off. Median and p99 per command.
#
# Needs cargo and python3 >= 3.8; installs util-linux (taskset) with apt-get
# when it is missing. The exit trap stops only the supervisor this script
# started (pid from its pid file, checked to be this herd binary) and removes
# the temporary directory. It is a report: it never fails because a number is
# large.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${RUNS:-1000}       # timed runs of each command in each placement
WARMUP=${WARMUP:-50}     # untimed rounds first, in each placement
BLOCK=${BLOCK:-50}       # rounds per placement block
CLIENT_CPU=${CLIENT_CPU:-0}
SUPERVISOR_CPU=${SUPERVISOR_CPU:-1}

log() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d -t herd-control-bench.XXXXXX)
STATE=$TMP/group        # the supervisor's state directory
HERD=${HERD:-}          # default: this tree's release build, made below
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

# --- build and tools -----------------------------------------------------------
if [[ -z $HERD ]]; then
    log "building herd ..."
    cargo build --release --quiet
    HERD=$PWD/target/release/herd
fi
HERD=$(realpath "$HERD")    # as /proc/PID/exe shows it
if ! command -v taskset >/dev/null; then
    log "installing util-linux (taskset) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq util-linux >&2
fi

# --- the supervisor ------------------------------------------------------------
log "starting a group in $STATE ..."
taskset -c "$SUPERVISOR_CPU" "$HERD" start --state-dir "$STATE" -c s='exec sleep 1000' \
    </dev/null >/dev/null
SUP_PID=$(<"$STATE/pid")
[[ -n $(supervisor_of "$STATE" "$SUP_PID" "$HERD") ]] || { log "no supervisor behind $STATE/pid"; exit 1; }
shown=$("$HERD" status --state-dir "$STATE")
running=$'\n''s +running '
[[ $shown =~ $running ]] || { log "herd status does not show s running: $shown"; exit 1; }


cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import gc, os, random, socket, statistics, struct, sys, time
from timing import percentile, row, time_spawn

herd, state, idle, runs, warmup, block, client_cpu, sup_cpu, sup_pid, load_before = sys.argv[1:11]
runs, warmup, block = int(runs), int(warmup), int(block)

commands = [  # (label, argv, expected exit code)
    ("`herd status`", [herd, "status", "--state-dir", state], 0),
    ("`herd status` (nothing running)", [herd, "status", "--state-dir", idle], 3),
    ("`herd --version`", [herd, "--version"], 0),
]
all_cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
placements = {  # label: (CPUs of this helper and the commands, of the supervisor)
    "same": (client_cpu, client_cpu),
    "split": (client_cpu, sup_cpu),
    "unpinned": (all_cpus, all_cpus),
}

def cpu_set(text):
    return {int(c) for c in text.split(",")}

def place(label):
    mine, theirs = placements[label]
    os.sched_setaffinity(0, cpu_set(mine))
    # Every thread of the supervisor, one at a time: a connection thread may
    # exit between the listing and its turn (`taskset -a` then fails), and
    # threads started later inherit the mask of the thread that starts them.
    for tid in os.listdir(f"/proc/{sup_pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpu_set(theirs))
        except ProcessLookupError:
            pass

env = dict(os.environ)

# The same exchange on the control socket from inside this process (no exec):
# frames are a 4-byte big-endian payload length, the kind byte, the body.
def frame(kind, body):
    return struct.pack(">IB", len(body) + 1, kind) + body

HELLO, STATUS = frame(1, b"version=1\n"), frame(2, b"command=status\n")
SOCKET = os.path.join(state, "control.sock")

def reply(conn, want):
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = conn.recv(8192)
        if not chunk:
            sys.exit("the supervisor closed the connection")
        data += chunk
    if data[4] != want:
        sys.exit(f"reply of kind {data[4]}, expected {want}: {data[5:]!r}")

def connect_status():
    start = time.perf_counter_ns()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(SOCKET)
    conn.sendall(HELLO)
    reply(conn, 1)
    conn.sendall(STATUS)
    reply(conn, 16)
    conn.close()
    return time.perf_counter_ns() - start

def open_connection():
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(SOCKET)
    conn.sendall(HELLO)
    reply(conn, 1)
    return conn

def status_request(conn):
    start = time.perf_counter_ns()
    conn.sendall(STATUS)
    reply(conn, 16)
    return time.perf_counter_ns() - start

IN_PROCESS = ("connect, hello, status, close", "status on an open connection")

samples = {(p, c): [] for p in placements for c in [c[0] for c in commands] + list(IN_PROCESS)}
done = {p: -warmup for p in placements}   # rounds so far, warm-up counting up to 0
order = list(commands)
gc.disable()
while any(n < runs for n in done.values()):
    blocks = [p for p in placements if done[p] < runs]
    random.shuffle(blocks)
    for label in blocks:
        place(label)
        conn = open_connection()  # a connection per block: no idle timeout
        for _ in range(min(block, runs - done[label])):
            random.shuffle(order)
            for name, argv, expected in order:
                t = time_spawn(argv, env, expected)
                if done[label] >= 0:
                    samples[(label, name)].append(t)
            for name, t in zip(IN_PROCESS, (connect_status(), status_request(conn))):
                if done[label] >= 0:
                    samples[(label, name)].append(t)
            done[label] += 1
        conn.close()
gc.enable()
place("unpinned")

ms = lambda ns: ns / 1e6

print(f"### Wall time of one command ({runs} runs of each per placement, interleaved; "
      f"{warmup} warm-up rounds)\n")
row("placement", "command", "median ms", "p99 ms", "median − `--version` ms")
row("---", "---", "---:", "---:", "---:")
for p in placements:
    base = statistics.median(samples[(p, commands[2][0])])
    for name, _, _ in commands:
        s = samples[(p, name)]
        m = statistics.median(s)
        row(p, name, f"{ms(m):.3f}", f"{ms(percentile(s, 0.99)):.3f}",
            "—" if name == commands[2][0] else f"{ms(m - base):+.3f}")

print("\n### What the control socket costs (differences of medians and of p99s)\n")
row("placement", "status − version, median ms", "status − version, p99 ms",
    "status − status (nothing running), median ms")
row("---", "---:", "---:", "---:")
for p in placements:
    st, idle_, ver = (samples[(p, c[0])] for c in commands)
    row(p, f"{ms(statistics.median(st) - statistics.median(ver)):.3f}",
        f"{ms(percentile(st, 0.99) - percentile(ver, 0.99)):.3f}",
        f"{ms(statistics.median(st) - statistics.median(idle_)):.3f}")

print("\n### The control socket from inside one process (python3 client, no exec; same rounds)\n")
row("placement", *(f"{n}, {q}" for n in IN_PROCESS for q in ("median ms", "p99 ms")))
row("---", *["---:"] * 4)
for p in placements:
    cells = []
    for name in IN_PROCESS:
        s = samples[(p, name)]
        cells += [f"{ms(statistics.median(s)):.3f}", f"{ms(percentile(s, 0.99)):.3f}"]
    row(p, *cells)

with open("/proc/loadavg") as f:
    after = " ".join(f.read().split()[:3])
print(f"\nLoad average: {load_before} before, {after} after (anything else running shows here).")
PY

cat <<EOF
- herd $("$HERD" --version | cut -d' ' -f2): $(origin "$HERD"), $(rustc --version | cut -d' ' -f1-2)
- supervisor: \`herd start --state-dir DIR -c s='exec sleep 1000'\` (pid $SUP_PID); timer and commands: $(python3 --version 2>&1), os.posix_spawn + waitpid
- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); "same": all on CPU $CLIENT_CPU, "split": supervisor on CPU $SUPERVISOR_CPU, commands on CPU $CLIENT_CPU

EOF

log "measuring ($RUNS runs of 3 commands in 3 placements) ..."
mkdir "$TMP/idle"
# In the background, so that a signal to this script runs the trap at once.
python3 "$TMP/measure.py" "$HERD" "$STATE" "$TMP/idle" "$RUNS" "$WARMUP" "$BLOCK" \
    "$CLIENT_CPU" "$SUPERVISOR_CPU" "$SUP_PID" "$(cut -d' ' -f1-3 /proc/loadavg)" &
HELPER=$!
wait "$HELPER"
HELPER=

log "stopping the group ..."
"$HERD" stop --state-dir "$STATE" >/dev/null
