#!/usr/bin/env bash
# Benchmark: reload under load, herd beside gunicorn and pm2 (issue 8).
#
#   bash benches/reload.sh                        # from the repository root
#   RATE=100 RELOADS=5 bash benches/reload.sh     # quicker
#   PEERS=gunicorn,pm2 bash benches/reload.sh     # some of the peers only
#   HERD=/other/tree/target/release/herd bash benches/reload.sh
#                                                 # another build, measured as it is
#
# The same tiny HTTP app everywhere: GET / answers `<pid>\n` (so a client can
# tell generations apart) after APP_REQUEST_DELAY seconds; the app starts
# listening (is ready) APP_START_DELAY seconds after it was started, and on
# its stop signal it stops accepting, finishes what it has and exits.
#   * herd: app.py (python3, standard library only) takes its listener from
#     fd 3 (LISTEN_FDS, LISTEN_PID) and sends READY=1 to $NOTIFY_SOCKET with
#     python's socket module; `herd run --listen ... --ready web=notify`,
#     reloaded by `herd reload --state-dir DIR`. The invocation is in one
#     place, herd_argv() in the helper below. A herd without --listen or
#     ready=notify is skipped with a note (its own error message);
#   * gunicorn (PyPI) with wsgiapp.py and 2 sync workers, reloaded by SIGHUP
#     to the master (start delay at import: each worker loads the app);
#   * pm2 (npm) with app.js in cluster mode, 2 instances, reloaded by
#     `pm2 reload app` (it waits for each new worker's `listening`).
# A peer that cannot be installed is skipped with a note.
#
# Load: an open-loop client (python3 asyncio, in a process of its own) opens a
# NEW connection for every request at RATE per second, whatever the answers
# do, and records per request its scheduled start, outcome (ok, refused,
# reset, closed without an answer, timeout, bad status, other), latency (from
# the scheduled start, so a stalled client or server shows) and the pid that
# answered. The driver triggers RELOADS reloads every INTERVAL seconds
# (never before the previous one is over) and polls /proc every millisecond
# for the serving pids: the reload time is from the trigger to the moment the
# last pid of the old generation is gone (exited, zombie or reaped).
# Before that, each peer's app alone is started STARTUP_RUNS times (exec to
# its first answer): the start-up that a reload cannot beat, the baseline of
# the goal (herd's reload time within 50 ms of its app's start-up).
#
# Installs gunicorn into a venv and pm2 with npm in a temporary directory.
# Every process it starts carries a marker in its environment; the exit trap
# (Ctrl-C and failures included) has the helper kill what it started (pm2's
# daemon too: the helper is a child subreaper), kills whatever still
# carries the marker, and removes the temporary directory. It is a report:
# it never fails because a goal is missed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RATE=${RATE:-200}                   # new connections per second
RELOADS=${RELOADS:-10}              # reloads per peer
INTERVAL=${INTERVAL:-2}             # seconds from one reload trigger to the next
WARMUP=${WARMUP:-2}                 # seconds of load before the first reload
TAIL=${TAIL:-2}                     # seconds of load after the last reload's slot
APP_START_DELAY=${APP_START_DELAY:-0}       # seconds before the app listens
APP_REQUEST_DELAY=${APP_REQUEST_DELAY:-0.005}  # seconds per request
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-5}       # seconds before a request is a timeout
WINDOW_AFTER=${WINDOW_AFTER:-0.5}   # the window around a reload ends this long after it
STARTUP_RUNS=${STARTUP_RUNS:-5}     # start-ups of each app alone (median)
PEERS=${PEERS:-herd,gunicorn,pm2}
GUNICORN_VERSION=${GUNICORN_VERSION:-27.0.1}
PM2_VERSION=${PM2_VERSION:-7.0.4}

export APP_START_DELAY APP_REQUEST_DELAY   # the apps read them

log() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d -t herd-reload-bench.XXXXXX)
MARKER="HERD_RELOAD_BENCH=$TMP"
export PM2_HOME=$TMP/pm2
HELPER=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # The helper kills what it started when told to stop (pm2's daemon
    # detaches, but the helper is a subreaper: the daemon is its child);
    # whatever is left is found by the marker. No `pm2 kill` here: with no
    # daemon running it starts one to kill it.
    if [[ -n $HELPER ]] && kill -TERM "$HELPER" 2>/dev/null; then
        wait "$HELPER" 2>/dev/null || true
    fi
    kill_marked
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build and tools -----------------------------------------------------------
if [[ -z ${HERD:-} ]]; then
    log "building herd ..."
    cargo build --release --quiet
    HERD=$PWD/target/release/herd
fi
HERD=$(realpath "$HERD")
# The interpreter itself, not a shim (pyenv's is a shell script): its
# start-up is part of what is measured.
PYTHON=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
: >"$TMP/skipped"
skip() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/skipped"; log "skipping $1: $2"; }
wanted() { [[ ,$PEERS, == *,$1,* ]]; }

GUNICORN=
PM2=
if wanted gunicorn; then
    log "installing gunicorn $GUNICORN_VERSION into a temporary venv ..."
    if "$PYTHON" -m venv "$TMP/venv" >>"$TMP/install.log" 2>&1 &&
        "$TMP/venv/bin/pip" install --quiet --disable-pip-version-check \
            "gunicorn==$GUNICORN_VERSION" >>"$TMP/install.log" 2>&1; then
        GUNICORN=$TMP/venv/bin/gunicorn
    else
        skip gunicorn "could not be installed: $(tail -n 1 "$TMP/install.log")"
    fi
fi
if wanted pm2; then
    log "installing pm2 $PM2_VERSION into a temporary directory ..."
    mkdir -p "$TMP/npm"
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        skip pm2 "node and npm are not installed"
    elif (cd "$TMP/npm" && npm install --silent --no-audit --no-fund --no-save \
        "pm2@$PM2_VERSION") >>"$TMP/install.log" 2>&1; then
        PM2=$TMP/npm/node_modules/.bin/pm2
    else
        skip pm2 "could not be installed: $(tail -n 1 "$TMP/install.log")"
    fi
fi
if ! wanted herd; then
    skip herd "not in PEERS"
elif ! "$HERD" reload --help >/dev/null 2>&1; then
    skip herd "this herd has no \`herd reload\`"
fi

# --- the app, three times ------------------------------------------------------
# For herd: the listener from fd 3 when LISTEN_FDS and LISTEN_PID say so,
# else (the start-up measurement) bound by the app itself on APP_PORT.
# Handlers run on threads, so one process serves requests concurrently;
# TERM or INT: stop accepting, close() the listener (never shutdown(): the
# socket's queue is the next generation's too), finish, exit 0.
cat >"$TMP/app.py" <<'PY'
import os, selectors, signal, socket, threading, time

start_delay = float(os.environ.get("APP_START_DELAY") or 0)
request_delay = float(os.environ.get("APP_REQUEST_DELAY") or 0)
body = f"{os.getpid()}\n".encode()
answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

wake_read, wake_write = os.pipe()
os.set_blocking(wake_write, False)
signal.set_wakeup_fd(wake_write)
stopping = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stopping.set())

time.sleep(start_delay)
if (os.environ.get("LISTEN_PID") == str(os.getpid())
        and int(os.environ.get("LISTEN_FDS") or 0) >= 1):
    listener = socket.socket(fileno=3)
else:
    listener = socket.create_server(("127.0.0.1", int(os.environ["APP_PORT"])), backlog=1024)
for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
    os.environ.pop(key, None)
listener.set_inheritable(False)
listener.setblocking(False)

notify = os.environ.pop("NOTIFY_SOCKET", "")
if notify:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", "\0" + notify[1:] if notify.startswith("@") else notify)

def serve(conn):
    with conn:
        conn.settimeout(10)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        time.sleep(request_delay)
        conn.sendall(answer)

handlers = []
selector = selectors.DefaultSelector()
selector.register(listener, selectors.EVENT_READ)
selector.register(wake_read, selectors.EVENT_READ)
while not stopping.is_set():
    for key, _ in selector.select():
        if key.fileobj == wake_read:
            os.read(wake_read, 512)
            continue
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        conn.setblocking(True)
        handler = threading.Thread(target=serve, args=(conn,))
        handler.start()
        handlers.append(handler)
        handlers = [h for h in handlers if h.is_alive()]
listener.close()
for handler in handlers:
    handler.join()
PY

# For gunicorn: each sync worker imports this (no --preload), so the start
# delay is each new worker's. gunicorn's workers finish their request on TERM.
cat >"$TMP/wsgiapp.py" <<'PY'
import os, time

time.sleep(float(os.environ.get("APP_START_DELAY") or 0))
request_delay = float(os.environ.get("APP_REQUEST_DELAY") or 0)

def app(environ, start_response):
    time.sleep(request_delay)
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
PY

# For pm2: listens after the start delay (pm2's cluster reload waits for the
# worker's `listening`); on SIGINT (pm2's stop signal) or TERM it closes the
# server and exits once the requests in hand are answered.
cat >"$TMP/app.js" <<'JS'
const http = require('http');
const startDelay = parseFloat(process.env.APP_START_DELAY || '0') * 1000;
const requestDelay = parseFloat(process.env.APP_REQUEST_DELAY || '0') * 1000;
const body = `${process.pid}\n`;
const server = http.createServer((req, res) => {
  const answer = () => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length,
                         Connection: 'close' });
    res.end(body);
  };
  if (requestDelay > 0) setTimeout(answer, requestDelay); else answer();
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setTimeout(() => server.listen(parseInt(process.env.APP_PORT, 10), '127.0.0.1'), startDelay);
JS

# --- the load ------------------------------------------------------------------
# One asyncio loop; request i is due at T0 + i / RATE (CLOCK_MONOTONIC, the
# driver's clock too) and gets its own task and connection. Its line in the
# output: scheduled start, lag of the connect call behind it, outcome,
# latency (end - scheduled start), pid answered (0 if none), all ns.
cat >"$TMP/client.py" <<'PY'
import asyncio, json, resource, sys, time

port, rate, t0, duration, timeout, out = sys.argv[1:]
port, rate, t0 = int(port), float(rate), int(t0)
duration, timeout = float(duration), float(timeout)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
now = time.monotonic_ns
results = []

async def one(due):
    lag = now() - due
    pid, outcome, writer = 0, "ok", None
    try:
        async def exchange():
            nonlocal writer
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            await writer.drain()
            return await reader.read()
        data = await asyncio.wait_for(exchange(), timeout)
        head, _, body = data.partition(b"\r\n\r\n")
        if not data:
            outcome = "closed"
        elif not head.startswith(b"HTTP/1.1 200 ") and not head.startswith(b"HTTP/1.0 200 "):
            outcome = "bad status"
        elif not body.strip().isdigit():
            outcome = "closed" if not body else "bad status"
        else:
            pid = int(body)
    except ConnectionRefusedError:
        outcome = "refused"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except asyncio.TimeoutError:
        outcome = "timeout"
    except OSError as e:
        outcome = f"other ({e.strerror or e})"
    finally:
        if writer is not None:
            writer.close()
    results.append((due, lag, outcome, now() - due, pid))

async def main():
    loop = asyncio.get_running_loop()
    tasks, count = [], int(duration * rate)
    for i in range(count):
        due = t0 + int(i * 1e9 / rate)
        delay = (due - now()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(due)))
    await asyncio.gather(*tasks)

asyncio.run(main())
with open(out, "w") as f:
    json.dump(results, f)
PY

# --- the driver ------------------------------------------------------------------
# Starts each peer as its child (pm2's daemon detaches: it is adopted by the
# driver, a child subreaper), measures, stops it, and prints the report. On
# TERM (the trap) it exits, and its atexit kills everything left below it.
cp benches/timing.py "$TMP/"   # beside measure.py, which imports it
cat >"$TMP/measure.py" <<'PY'
import atexit, ctypes, json, os, signal, socket, statistics, subprocess, sys, time
from timing import comm, percentile as pct, row

(tmp, herd, python, gunicorn, pm2, rate, reloads, interval, warmup, tail, request_timeout,
 window_after, startup_runs, peers_wanted) = sys.argv[1:]
rate, reloads, interval = float(rate), int(reloads), float(interval)
warmup, tail, request_timeout = float(warmup), float(tail), float(request_timeout)
window_after, startup_runs = float(window_after), int(startup_runs)
peers_wanted = peers_wanted.split(",")

PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
now = time.monotonic_ns
env = dict(os.environ)
null = os.open(os.devnull, os.O_RDWR)
APP = os.path.join(tmp, "app.py")
skipped = dict(line.rstrip("\n").split("\t", 1) for line in open(os.path.join(tmp, "skipped")))

def note(*a):
    print(*a, file=sys.stderr, flush=True)

# --------------------------------------------------------------- herd, in one place
# How herd runs the app and reloads it: the flags of issue 8 (--listen by
# the listen branch, ready=notify by the notify branch). A group of one
# process, since per-process settings such as --ready need a group.
def herd_argv(state, port):
    return [herd, "run", "--color", "never", "--state-dir", state,
            "--listen", f"tcp:127.0.0.1:{port}", "--ready", "web=notify",
            "-c", f"web=exec {python} {APP}"]

def herd_reload_argv(state):
    return [herd, "reload", "--state-dir", state]

# --------------------------------------------------------------- processes
def spawn(argv, log, extra_env=None, cwd=None):
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return subprocess.Popen(argv, stdin=null, stdout=out, stderr=out, cwd=cwd,
                                env={**env, **(extra_env or {})})
    finally:
        os.close(out)

def children(pid):
    # herd's guard (man herd, "When herd is killed") is a child of herd for
    # herd's whole life, and no generation's.
    kids = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids.update(int(p) for p in f.read().split())
            except FileNotFoundError:
                pass
    except FileNotFoundError:
        pass
    return {kid for kid in kids if comm(kid) != "herd-guard"}

def alive(pid):
    # Gone once it has exited: a zombie waiting for its parent counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False

def kill_everything_left():
    for _ in range(50):
        kids = children(os.getpid())
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

atexit.register(kill_everything_left)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

def get(port, timeout=2.0):
    """The pid that answers GET /, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(REQUEST)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(body) if b" 200 " in head.split(b"\r\n")[0] and body.strip().isdigit() else None

def wait_answer(port, deadline, proc=None):
    while now() < deadline:
        pid = get(port)
        if pid is not None:
            return pid
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.001)
    return None

def stop(proc, sig=signal.SIGTERM, grace=15):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

def tail_of(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return " / ".join(l.strip() for l in f.read().strip().splitlines()[-lines:])
    except FileNotFoundError:
        return ""

# --------------------------------------------------------------- the peers
APP_ENV = {"APP_START_DELAY": env.get("APP_START_DELAY", "0"),
           "APP_REQUEST_DELAY": env.get("APP_REQUEST_DELAY", "0")}

class Herd:
    name, workers_expected = "herd", 1
    def __init__(self):
        self.state = os.path.join(tmp, "herd-state")
        self.log = os.path.join(tmp, "herd.log")
        self.port = free_port()
        self.shown = ("`herd run --state-dir DIR --listen tcp:127.0.0.1:PORT --ready web=notify "
                      "-c 'web=exec python3 app.py'`")
        self.trigger_shown = "`herd reload --state-dir DIR`"
    def alone(self, port):
        return [python, APP], {"APP_PORT": str(port)}
    def start(self):
        self.proc = spawn(herd_argv(self.state, self.port), self.log, APP_ENV)
        self.supervisor = self.proc.pid
    def unsupported(self):
        # A herd without the flags says so at once (exit 125, "reading arguments").
        if self.proc.poll() == 125 and "reading arguments" in tail_of(self.log):
            return f"this herd lacks the flags (`{tail_of(self.log, 1)}`)"
        return None
    def supervisor_exited(self):
        return self.proc.poll() is not None
    def workers(self):
        return children(self.supervisor)
    def trigger(self):
        return spawn(herd_reload_argv(self.state), self.log)
    def stop(self):
        stop(self.proc)

class Gunicorn:
    name, workers_expected = "gunicorn", 2
    def __init__(self):
        self.log = os.path.join(tmp, "gunicorn.log")
        self.port = free_port()
        self.shown = "`gunicorn -w 2 -k sync -b 127.0.0.1:PORT wsgiapp:app`"
        self.trigger_shown = "`kill -HUP MASTER`"
    def argv(self, port):
        return [gunicorn, "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}", "--chdir", tmp,
                "--log-level", "warning", "wsgiapp:app"]
    def alone(self, port):
        return self.argv(port), {}
    def start(self):
        self.proc = spawn(self.argv(self.port), self.log, APP_ENV)
        self.supervisor = self.proc.pid
    def unsupported(self):
        return None
    def supervisor_exited(self):
        return self.proc.poll() is not None
    def workers(self):
        return children(self.supervisor)
    def trigger(self):
        os.kill(self.supervisor, signal.SIGHUP)
        return None
    def stop(self):
        stop(self.proc)

class Pm2:
    name, workers_expected = "pm2", 2
    def __init__(self):
        self.log = os.path.join(tmp, "pm2.log")
        self.port = free_port()
        self.shown = "`pm2 start app.js -i 2 --name app` (cluster mode)"
        self.trigger_shown = "`pm2 reload app`"
        self.supervisor = None
    def alone(self, port):
        return ["node", os.path.join(tmp, "app.js")], {"APP_PORT": str(port)}
    def start(self):
        self.proc = spawn([pm2, "start", os.path.join(tmp, "app.js"), "-i", "2", "--name", "app"],
                          self.log, {**APP_ENV, "APP_PORT": str(self.port)})
        self.proc.wait(60)
        with open(os.path.join(env["PM2_HOME"], "pm2.pid")) as f:
            self.supervisor = int(f.read())
    def unsupported(self):
        return None
    def supervisor_exited(self):
        return not alive(self.supervisor)
    def workers(self):
        # pm2's daemon (God) has the cluster workers as its children.
        return children(self.supervisor)
    def trigger(self):
        return spawn([pm2, "reload", "app"], self.log)
    def stop(self):
        subprocess.run([pm2, "kill"], stdin=null, stdout=null, stderr=null, env=env, timeout=30)

# --------------------------------------------------------------- measuring
def startup(peer):
    """exec -> first answer of the app alone, ns, median of startup_runs."""
    times = []
    for _ in range(startup_runs):
        port = free_port()
        argv, extra = peer.alone(port)
        start = now()
        proc = spawn(argv, os.path.join(tmp, f"{peer.name}-alone.log"), {**APP_ENV, **extra})
        pid = wait_answer(port, start + 60 * 10**9, proc)
        took = now() - start
        stop(proc)
        if pid is None:
            raise RuntimeError(f"{peer.name}'s app alone never answered: "
                               f"{tail_of(os.path.join(tmp, f'{peer.name}-alone.log'))}")
        times.append(took)
    return statistics.median(times)

def run(peer):
    note(f"{peer.name}: start-up of the app alone ({startup_runs} runs) ...")
    start_ns = startup(peer)
    note(f"{peer.name}: starting it ...")
    peer.start()
    deadline = now() + 60 * 10**9
    while now() < deadline:
        why = peer.unsupported()
        if why:
            peer.stop()
            return {"skipped": f"{why}; its app alone started in {ms(start_ns)} ms"}
        if peer.supervisor_exited():
            raise RuntimeError(f"{peer.name} exited before it served: {tail_of(peer.log)}")
        if len(peer.workers()) >= peer.workers_expected and get(peer.port) is not None:
            break
        time.sleep(0.01)
    else:
        peer.stop()
        raise RuntimeError(f"{peer.name} did not serve within 60 s: {tail_of(peer.log)}")
    time.sleep(0.5)  # every worker up, not just the first
    generation_of = {pid: 0 for pid in peer.workers()}
    duration = warmup + reloads * interval + tail
    t0 = now() + 300 * 10**6
    out = os.path.join(tmp, f"{peer.name}-requests.json")
    note(f"{peer.name}: {duration:.0f} s of load at {rate:g}/s, {reloads} reloads ...")
    client = spawn([python, os.path.join(tmp, "client.py"), str(peer.port), str(rate), str(t0),
                    str(duration), str(request_timeout), out],
                   os.path.join(tmp, "client.log"))
    done = []  # per reload: trigger, first new pid seen, old all gone, command ns and status
    for i in range(reloads):
        due = t0 + int((warmup + i * interval) * 1e9)
        while now() < due:
            time.sleep(min(0.001, max(0, (due - now()) / 1e9)))
        old = {pid for pid in peer.workers() if alive(pid)}
        for pid in old:
            generation_of.setdefault(pid, i)
        triggered = now()
        command = peer.trigger()
        seen = gone = None
        while now() - triggered < 120 * 10**9:
            current = peer.workers()
            for pid in current - old:
                if pid not in generation_of and alive(pid):
                    generation_of[pid] = i + 1
                    seen = seen or now()
            if not any(alive(pid) for pid in old):
                gone = now()
                break
            if command is not None and command.poll() not in (None, 0):
                break  # a failed reload: the old generation goes on serving
            time.sleep(0.001)
        command_ns = status = None
        if command is not None:
            status = command.wait(120)
            command_ns = now() - triggered
        for pid in peer.workers():
            generation_of.setdefault(pid, i + 1)
        done.append({"triggered": triggered, "seen": seen, "gone": gone,
                     "command_ns": command_ns, "status": status})
    client.wait()
    peer.stop()
    with open(out) as f:
        requests = json.load(f)
    return {"startup": start_ns, "reloads": done, "requests": requests,
            "generation_of": generation_of}

# --------------------------------------------------------------- report
ms = lambda ns: f"{ns / 1e6:.1f}" if ns == ns else "—"
KINDS = ["refused", "reset", "closed", "timeout", "bad status"]

def summary(peer, r):
    reqs, rel = r["requests"], r["reloads"]
    windows = [(x["triggered"], (x["gone"] or x["triggered"]) + int(window_after * 1e9))
               for x in rel]
    in_window = lambda due: any(a <= due <= b for a, b in windows)
    ok = [q for q in reqs if q[2] == "ok"]
    failed = [q for q in reqs if q[2] != "ok"]
    kinds = {k: sum(1 for q in failed if q[2] == k) for k in KINDS}
    other = len(failed) - sum(kinds.values())
    lat = [q[3] for q in ok]
    lat_w = [q[3] for q in ok if in_window(q[0])]
    gens = {r["generation_of"].get(q[4], -1) for q in ok}
    times = [x["gone"] - x["triggered"] for x in rel if x["gone"]]
    unfinished = sum(1 for x in rel if not x["gone"])
    bad_commands = sum(1 for x in rel if x["status"] not in (None, 0))
    return {
        "requests": len(reqs), "failed": len(failed), "kinds": kinds, "other": other,
        "failed_in_windows": sum(1 for q in failed if in_window(q[0])),
        "per_reload": len(failed) / max(1, len(rel)),
        "reload_median": statistics.median(times) if times else float("nan"),
        "reload_max": max(times) if times else float("nan"),
        "seen_median": statistics.median([x["seen"] - x["triggered"] for x in rel if x["seen"]])
        if any(x["seen"] for x in rel) else float("nan"),
        "command_median": statistics.median([x["command_ns"] for x in rel])
        if all(x["command_ns"] is not None for x in rel) else None,
        "unfinished": unfinished, "bad_commands": bad_commands,
        "generations": len(gens - {-1}), "unknown_pids": -1 in gens,
        "pids": len({q[4] for q in ok}),
        "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": max(lat) if lat else float("nan"),
        "p50_w": pct(lat_w, 0.5), "p99_w": pct(lat_w, 0.99),
        "lag_p99": pct([q[1] for q in reqs], 0.99),
        "startup": r["startup"], "times": times,
    }

results, notes = {}, []
for name, cls in (("herd", Herd), ("gunicorn", Gunicorn), ("pm2", Pm2)):
    if name not in peers_wanted:
        continue
    if name in skipped:
        notes.append(f"{name} skipped: {skipped[name]}")
        continue
    peer = cls()
    try:
        r = run(peer)
    except RuntimeError as e:
        notes.append(f"{name} failed: {e}")
        continue
    if "skipped" in r:
        notes.append(f"{name} skipped: {r['skipped']}")
        note(notes[-1])
        continue
    results[name] = (peer, summary(peer, r))

print(f"### Reload under load: {rate:g} new connections/s, {reloads} reloads every "
      f"{interval:g} s\n")
if not results:
    print("No peer ran (see the notes below).\n")
row("peer", "app run by", "reload by", "requests", "failed", *KINDS, "other",
    "failed in reload windows", "failed per reload", "reload time median ms", "max ms",
    "trigger → new pid seen, median ms", "generations served", "pids served",
    "p50 ms", "p99 ms", "p50 around reloads ms", "p99 around reloads ms", "max ms",
    "app start-up alone ms")
row(*["---"] * 3, *["---:"] * 21)
for name, (peer, s) in results.items():
    row(name, peer.shown, peer.trigger_shown, s["requests"], s["failed"],
        *(s["kinds"][k] for k in KINDS), s["other"], s["failed_in_windows"],
        f"{s['per_reload']:.1f}", ms(s["reload_median"]), ms(s["reload_max"]),
        ms(s["seen_median"]),
        f"{s['generations']} of {reloads + 1}" + (" (+ unknown pids)" if s["unknown_pids"] else ""),
        s["pids"], ms(s["p50"]), ms(s["p99"]), ms(s["p50_w"]), ms(s["p99_w"]), ms(s["max"]),
        ms(s["startup"]))

print(f"\nEach request is a new TCP connection to 127.0.0.1 (`GET /`, `Connection: close`), "
      f"due every {1000 / rate:g} ms whatever the answers do; latency is from its due time to "
      f"the end of the answer (ok requests only). Failed: refused (ECONNREFUSED), reset "
      f"(ECONNRESET, EPIPE), closed (EOF before a whole answer), timeout (no answer in "
      f"{request_timeout:g} s), bad status. Reload time: from the trigger to the exit of the "
      f"last pid of the generation that served before it (the supervisor's children, polled "
      f"every ms in /proc). A reload window runs from a trigger to {window_after:g} s after "
      f"that reload's end. Generations served: of the {reloads + 1} generations (the first "
      f"and one per reload), those whose pids answered at least once. App start-up alone: "
      f"median of {startup_runs} starts of the app without the supervisor's reload "
      f"(`python3 app.py`, `gunicorn ...` itself, `node app.js`), from exec to its first "
      f"answer.")
print()
for name, (peer, s) in results.items():
    extra = []
    if s["command_median"] is not None:
        extra.append(f"the trigger command returned after {ms(s['command_median'])} ms (median)")
    if s["bad_commands"]:
        extra.append(f"{s['bad_commands']} trigger commands exited non-zero")
    if s["unfinished"]:
        extra.append(f"{s['unfinished']} reloads did not end (trigger failed, or 120 s passed)")
    extra.append(f"the client's connect calls lagged their due time by {ms(s['lag_p99'])} ms "
                 f"at p99")
    print(f"- {name}: reload times ms " + (", ".join(ms(t) for t in s["times"]) or "none") + "; "
          + "; ".join(extra) + ".")
for line in notes:
    print(f"- {line}.")

if "herd" in results:
    s = results["herd"][1]
    peers_failing = [n for n, (_, o) in results.items() if n != "herd" and o["failed"]]
    print("\n| goal | result |\n| --- | --- |")
    print(f"| herd 0 failed requests where a peer has some "
          f"({', '.join(peers_failing) or 'no peer failed'}) | "
          f"{'met' if s['failed'] == 0 else '**not met**'} ({s['failed']} failed) |")
    over = s["reload_median"] - s["startup"]
    over_max = s["reload_max"] - s["startup"]
    if not s["times"]:
        verdict = "**not met** (no reload finished)"
    else:
        verdict = ("met" if over_max <= 50e6 else
                   "**not met** at the max" if over <= 50e6 else "**not met**")
        verdict += (f" (median {ms(s['reload_median'])} ms, max {ms(s['reload_max'])} ms, "
                    f"start-up {ms(s['startup'])} ms: +{ms(over)} / +{ms(over_max)} ms)")
    print(f"| herd reload time ≤ its app's start-up + 50 ms | {verdict} |")
PY

# --- the report ------------------------------------------------------------------
versions=()
[[ -n $GUNICORN ]] && versions+=("gunicorn $("$GUNICORN" --version 2>&1 | awk '{print $NF}' | tr -d '()')")
[[ -n $PM2 ]] && versions+=("pm2 $(node -p "require('$TMP/npm/node_modules/pm2/package.json').version") (node $(node --version))")
cat <<EOF
- herd $("$HERD" --version | cut -d' ' -f2): $(origin "$HERD")
- peers: ${versions[*]:-none}; apps and client on $("$PYTHON" --version 2>&1)
- app: start-up delay ${APP_START_DELAY} s, request delay ${APP_REQUEST_DELAY} s; load: $RATE/s, $RELOADS reloads every $INTERVAL s after $WARMUP s, $TAIL s after the last
- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)

EOF

log "measuring ..."
# In the background, so that a signal to this script runs the trap at once.
env "$MARKER" "$PYTHON" "$TMP/measure.py" "$TMP" "$HERD" "$PYTHON" "$GUNICORN" "$PM2" \
    "$RATE" "$RELOADS" "$INTERVAL" "$WARMUP" "$TAIL" "$REQUEST_TIMEOUT" "$WINDOW_AFTER" \
    "$STARTUP_RUNS" "$PEERS" &
HELPER=$!
wait "$HELPER"
HELPER=
