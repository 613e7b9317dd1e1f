"""The helpers shared by the python3 programs of benches/*.sh: percentile, row, comm, spawn timer, rounds.

The scripts benches/*.sh write their measuring program to $TMP/measure.py and
copy this file beside it, where `import timing` finds it (the directory of
the script python3 runs comes first in sys.path). No PYTHONPATH, then, for
every process the program starts to inherit (group.sh and reload.sh time
python3 programs), and no __pycache__ in the work tree.

Standard library only.
"""
import gc
import os
import random
import sys
import time

_null = os.open(os.devnull, os.O_RDWR)
# posix_spawn file actions: stdin, stdout and stderr on /dev/null, so that no
# candidate has a terminal (herd would hand it over) and output costs nothing.
DEVNULL_STDIO = [(os.POSIX_SPAWN_DUP2, _null, fd) for fd in (0, 1, 2)]


def percentile(values, p):
    """The p-quantile (0 <= p <= 1) of values, interpolated between the two
    nearest ranks; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def row(*cells):
    """Prints one row of a Markdown table."""
    print("| " + " | ".join(str(c) for c in cells) + " |")


def comm(pid):
    """The command name of process pid (/proc/PID/comm), None once it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


def time_spawn(argv, env, expected=0):
    """The wall time in ns of one run of argv (argv[0] an absolute path) with
    environment env: os.posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) + exec,
    no fork of the Python heap) and os.waitpid, stdio on /dev/null. Exits the
    program with a message if argv's exit code is not the expected one."""
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=DEVNULL_STDIO)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter_ns() - start
    if os.waitstatus_to_exitcode(status) != expected:
        sys.exit(f"{argv} exited with {status:#x}" + (f", expected {expected}" if expected else ""))
    return elapsed


def spawn_timer(argv, env, expected=0):
    """time_spawn of argv, env and expected as a function of no arguments:
    a candidate for interleaved()."""
    return lambda: time_spawn(argv, env, expected)


def interleaved(candidates, runs, warmup):
    """{label: [runs samples]} of candidates, a list of (label, run) where
    run() returns one sample: warmup + runs rounds, each of which runs every
    candidate once in a fresh random order, so that the noise of a shared
    machine hits them all alike; the first warmup rounds are not kept. The
    garbage collector is off while they run, so that no collection lands in
    a sample."""
    samples = {label: [] for label, _ in candidates}
    order = list(candidates)
    gc.disable()
    for round_ in range(-warmup, runs):
        random.shuffle(order)
        for label, run in order:
            t = run()
            if round_ >= 0:
                samples[label].append(t)
    gc.enable()
    return samples
