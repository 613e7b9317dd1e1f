//! Probes through the real binary: `herd status --ready` and `--live`, and
//! the `--health` HTTP responder, during start, once ready and during stop;
//! hostile probe clients, which must never hold up the supervisor loop.

use crate::util::*;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long herd gives a probe connection (src/health.rs CONNECTION_TIME).
const CONNECTION_TIME: Duration = Duration::from_secs(2);

/// A herd run in the foreground with a state directory and `--health` on
/// a port of its own; everything it starts carries `marker`.
struct Probed {
    herd: Running,
    dir: TempDir,
    port: u16,
    _marker: Marker,
}

impl Probed {
    fn run(tag: &str, args: &[&str]) -> Probed {
        let dir = TempDir::new(&format!("health-{tag}"));
        let port = free_port();
        let marker = Marker::new(&format!("health-{tag}"));
        let mut command = herd();
        marker
            .apply(&mut command)
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("g"))
            .args(["--health", &format!("tcp:127.0.0.1:{port}")])
            .args(args);
        let herd = Running::start(&mut command);
        let probed = Probed {
            herd,
            dir,
            port,
            _marker: marker,
        };
        wait_until(
            "the health port to take connections",
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
            || probed.herd.story(),
        );
        probed
    }

    /// `herd status FLAG` exits 0 or 1, printing nothing either way.
    fn status(&self, flag: &str) -> i32 {
        status_probe(&self.dir.join("g"), flag, &self.herd.story())
    }

    fn http(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// Every probe says what `ready` and `live` say.
    fn expect_probes(&self, ready: bool, live: bool, when: &str) {
        let story = || format!("{when}\n{}", self.herd.story());
        assert_eq!(
            self.status("--ready"),
            i32::from(!ready),
            "--ready {}",
            story()
        );
        assert_eq!(
            self.status("--live"),
            i32::from(!live),
            "--live {}",
            story()
        );
        let (code, body) = self.http("/ready");
        let want = if ready {
            (200, "ready\n")
        } else {
            (503, "not ready\n")
        };
        assert_eq!((code, body.as_str()), want, "/ready {}", story());
        let (code, body) = self.http("/live");
        let want = if live { 200 } else { 503 };
        assert_eq!(code, want, "/live: {body} {}", story());
    }
}

/// `herd status FLAG --state-dir DIR`: its exit code, which must be 0 or
/// 1, with nothing on stdout or stderr.
fn status_probe(dir: &std::path::Path, flag: &str, story: &str) -> i32 {
    let outcome = run_to_end(herd().args(["status", flag, "--state-dir"]).arg(dir));
    outcome.check(
        outcome.stdout.is_empty() && outcome.stderr.is_empty(),
        &format!("{flag} printed something\n{story}"),
    );
    let code = outcome.code();
    outcome.check(
        code == 0 || code == 1,
        &format!("{flag} exit code\n{story}"),
    );
    code
}

/// `GET path` on one connection: the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let response = exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n").as_bytes(),
    );
    let code = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (code, body)
}

/// Sends `request` and reads until herd closes the connection.
fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to --health");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("herd answers and closes");
    String::from_utf8_lossy(&response).into_owned()
}

fn open_fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn ready_and_http_probes_follow_a_group_through_start_ready_and_stop() {
    let dir = TempDir::new("health-paths");
    let db_up = dir.join("db-up").display().to_string();
    let web_go = dir.join("web-go").display().to_string();
    let web = format!(
        "web=trap 'echo web got TERM; until [ -e {web_go} ]; do sleep 0.01; done; exit 0' TERM; \
         echo web up; while :; do sleep 0.05; done"
    );
    let mut probed = Probed::run(
        "lifecycle",
        &[
            "-c",
            "db=exec sleep 1000",
            "--ready",
            &format!("db=file:{db_up}"),
            "-c",
            &web,
        ],
    );
    probed.herd.expect_line("db started");
    probed.expect_probes(false, true, "db is starting, web waits");

    fs::write(&db_up, "").unwrap();
    probed.herd.expect_line("web up");
    wait_until(
        "herd status --ready to pass",
        || probed.status("--ready") == 0,
        || probed.herd.story(),
    );
    probed.expect_probes(true, true, "db and web are up");
    let (code, body) = http_get(probed.port, "/nothing-here");
    assert_eq!(
        (code, body.as_str()),
        (404, "not found: GET /ready or /live\n")
    );

    probed.herd.signal("TERM");
    probed.herd.expect_line("web got TERM");
    probed.expect_probes(false, true, "web is stopping and holds up the stop");

    fs::write(&web_go, "").unwrap();
    let port = probed.port;
    let state_dir = probed.dir.join("g");
    let outcome = probed.herd.finish();
    outcome.check(outcome.code() == 0, "a requested stop exits 0");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the health port closed with herd"
    );
    assert_eq!(status_probe(&state_dir, "--ready", "after the end"), 1);
    assert_eq!(status_probe(&state_dir, "--live", "after the end"), 1);
}

#[test]
fn the_old_generation_serving_during_a_reload_keeps_the_probes_ready() {
    let dir = TempDir::new("health-reload-paths");
    let first = dir.join("first-done").display().to_string();
    let go = dir.join("go").display().to_string();
    let web = format!(
        "web=if [ -e {first} ]; then echo generation 2 waits; until [ -e {go} ]; do sleep 0.01; done; \
         else touch {first}; fi; {herd} notify --ready; exec sleep 1000",
        herd = herd_path()
    );
    let mut probed = Probed::run("reload", &["-c", &web, "--ready", "web=notify"]);
    probed.herd.expect_line("web is ready");
    wait_until(
        "herd status --ready to pass",
        || probed.status("--ready") == 0,
        || probed.herd.story(),
    );
    let reload = Running::start(
        herd()
            .args(["reload", "--state-dir"])
            .arg(probed.dir.join("g")),
    );
    probed.herd.expect_line("generation 2 waits");
    probed.expect_probes(true, true, "generation 1 serves while 2 starts");
    fs::write(&go, "").unwrap();
    probed.herd.expect_line("generation 2 is serving");
    let outcome = reload.finish();
    outcome.check(outcome.code() == 0, "the reload succeeded");
    probed.expect_probes(true, true, "generation 2 serves");
    probed.herd.signal("TERM");
    let outcome = probed.herd.finish();
    outcome.check(outcome.code() == 0, "a requested stop exits 0");
}

#[test]
fn a_single_command_is_ready_while_it_runs_and_gets_no_health_fd() {
    let mut probed = Probed::run(
        "single",
        &["--", "sh", "-c", "echo pid=$$; exec sleep 1000"],
    );
    let line = probed.herd.expect_line("pid=");
    let pid: u32 = line.trim_start_matches("pid=").parse().unwrap();
    // Probes in flight while the child looks at its fds.
    let (code, _) = probed.http("/ready");
    assert_eq!(code, 200, "{}", probed.herd.story());
    // What the test harness passed down may be there too, but no socket.
    let sockets: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| fs::read_link(entry.unwrap().path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.starts_with("socket:"))
        .collect();
    assert!(sockets.is_empty(), "{sockets:?}\n{}", probed.herd.story());
    assert_eq!(probed.status("--ready"), 0);
    probed.herd.signal("TERM");
    let outcome = probed.herd.finish();
    outcome.check(outcome.code() == 128 + 15, "the child's own status");
}

#[test]
fn herd_start_answers_probes_from_the_detached_supervisor() {
    let dir = TempDir::new("health-start");
    let state = dir.join("g");
    let port = free_port();
    let marker = Marker::new("health-start");
    let mut command = herd();
    marker
        .apply(&mut command)
        .arg("start")
        .arg("--state-dir")
        .arg(&state)
        .args(["--health", &format!("tcp:127.0.0.1:{port}")])
        .args(["-c", "web=exec sleep 1000"]);
    let outcome = run_to_end(&mut command);
    outcome.check(outcome.code() == 0, "herd start");
    // start returns once the group is ready: no waiting needed.
    assert_eq!(http_get(port, "/ready").0, 200);
    assert_eq!(http_get(port, "/live").0, 200);
    assert_eq!(status_probe(&state, "--ready", "started"), 0);
    let stop = run_to_end(herd().arg("stop").arg("--state-dir").arg(&state));
    stop.check(stop.code() == 0, "herd stop");
    assert_eq!(status_probe(&state, "--ready", "stopped"), 1);
    assert_eq!(status_probe(&state, "--live", "stopped"), 1);
}

#[test]
fn a_health_port_that_is_taken_stops_herd_before_it_starts_anything() {
    let dir = TempDir::new("health-taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let touched = dir.join("started");
    let outcome = run_to_end(
        herd()
            .args(["run", "--health", &format!("tcp:127.0.0.1:{port}"), "--"])
            .args(["touch", &touched.display().to_string()]),
    );
    outcome.check(outcome.code() == 125, "herd's own failure");
    outcome.check(
        outcome.stderr
            == format!(
                "herd: listening on --health tcp:127.0.0.1:{port}: address already in use\n"
            ),
        "one line naming the flag",
    );
    assert!(!touched.exists(), "nothing was started");
    for bad in ["tcp:127.0.0.1:0", "unix:/tmp/x", "tcp:example.com:80", "80"] {
        let outcome = run_to_end(herd().args(["run", "--health", bad, "--", "true"]));
        outcome.check(
            outcome.code() == 125
                && outcome
                    .stderr
                    .starts_with("herd: reading arguments: --health: "),
            bad,
        );
    }
}

#[test]
fn long_garbage_and_silent_requests_are_refused_or_cut_off_in_time() {
    let probed = Probed::run("hostile", &["-c", "web=exec sleep 1000"]);
    // The port takes connections before web is ready; the answers below are
    // those of a ready group.
    wait_until(
        "the group to be ready",
        || probed.http("/ready").0 == 200,
        || probed.herd.story(),
    );
    let long = format!("GET /ready HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(2000));
    let response = exchange(probed.port, long.as_bytes());
    assert!(response.starts_with("HTTP/1.0 431 "), "{response}");
    let response = exchange(probed.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(response.starts_with("HTTP/1.0 400 "), "{response}");
    let response = exchange(probed.port, b"GET /ready\n");
    assert!(
        response.starts_with("HTTP/1.0 200 "),
        "no version: {response}"
    );
    let response = exchange(probed.port, b"HEAD /ready HTTP/1.0\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.0 200 ") && response.ends_with("\r\n\r\n"),
        "HEAD has no body: {response}"
    );

    // A client that connects and says nothing is closed once its time is up.
    let connected = Instant::now();
    let response = exchange(probed.port, b"");
    let took = connected.elapsed();
    assert!(response.starts_with("HTTP/1.0 408 "), "{response}");
    assert!(
        took >= CONNECTION_TIME - Duration::from_millis(50) && took < CONNECTION_TIME * 3,
        "a silent client was closed after {took:?}"
    );

    // Hundreds of silent clients hold no more than the cap of fds, and a
    // probe that comes after them is still answered.
    let before = open_fd_count(probed.herd.pid());
    let silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", probed.port)).unwrap())
        .collect();
    let asked = Instant::now();
    assert_eq!(probed.http("/ready").0, 200, "{}", probed.herd.story());
    assert!(
        asked.elapsed() < CONNECTION_TIME,
        "answered after {:?}",
        asked.elapsed()
    );
    let held = open_fd_count(probed.herd.pid());
    // 64, and a 65th for the moment it takes one's place.
    assert!(
        held <= before + 65,
        "herd held {held} fds with 300 silent clients, {before} before"
    );
    drop(silent);
}

/// Many probe clients that never finish a request, on one thread: half
/// send a byte at a time, half send garbage; each one herd closes is
/// opened again at once, until `stop`. Says how many connections it made.
struct Abuse {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<usize>,
}

impl Abuse {
    fn start(port: u16, clients: usize) -> Abuse {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let connect = || {
                let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
                stream.set_nonblocking(true).ok()?;
                Some(stream)
            };
            let mut streams: Vec<Option<TcpStream>> = (0..clients).map(|_| connect()).collect();
            let mut made = clients;
            let garbage = [0xAAu8; 700];
            let mut buffer = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                for (index, slot) in streams.iter_mut().enumerate() {
                    let bytes: &[u8] = if index % 2 == 0 { b"G" } else { &garbage };
                    let alive = slot.as_mut().is_some_and(|stream| {
                        let wrote = match stream.write(bytes) {
                            Ok(_) => true,
                            Err(e) => e.kind() == ErrorKind::WouldBlock,
                        };
                        let open = match stream.read(&mut buffer) {
                            Ok(_) => false,
                            Err(e) => e.kind() == ErrorKind::WouldBlock,
                        };
                        wrote && open
                    });
                    if !alive {
                        *slot = connect();
                        made += 1;
                    }
                }
                // The pace of the abuse, not a wait for anything.
                thread::sleep(Duration::from_millis(2));
            }
            made
        });
        Abuse { stop, thread }
    }

    fn end(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Kills web's current process `times` times and measures, each time,
/// how long until its next run says its pid; returns the median.
fn restart_times(probed: &mut Probed, mut pid: u32, times: usize) -> (Duration, u32) {
    let mut took = Vec::new();
    for _ in 0..times {
        let killed = Instant::now();
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill {pid}");
        loop {
            let line = probed.herd.expect_line("web pid=");
            let next: u32 = line.rsplit('=').next().unwrap().parse().unwrap();
            if next != pid {
                pid = next;
                break;
            }
        }
        took.push(killed.elapsed());
    }
    took.sort();
    (took[took.len() / 2], pid)
}

#[test]
fn two_hundred_slow_or_garbage_probe_connections_do_not_delay_a_restart() {
    let mut probed = Probed::run(
        "restart",
        &[
            "-c",
            "web=echo web pid=$$; exec sleep 1000",
            "--restart",
            "always",
            "--backoff-min",
            "0.05",
            "--backoff-max",
            "0.05",
            "--start-limit",
            "1000",
        ],
    );
    let line = probed.herd.expect_line("web pid=");
    let pid: u32 = line.rsplit('=').next().unwrap().parse().unwrap();
    let (calm, pid) = restart_times(&mut probed, pid, 7);

    let before = open_fd_count(probed.herd.pid());
    let abuse = Abuse::start(probed.port, 200);
    wait_until(
        "the abuse to fill herd's connection cap",
        || open_fd_count(probed.herd.pid()) >= before + 60,
        || probed.herd.story(),
    );
    let (abused, _) = restart_times(&mut probed, pid, 7);
    let ready_under_abuse = probed.status("--ready");
    let made = abuse.end();
    let story = format!(
        "median restart {calm:?} calm, {abused:?} under abuse ({made} connections)\n{}",
        probed.herd.story()
    );
    assert!(made > 200, "herd closed no abusive connection: {story}");
    assert!(
        abused < calm + Duration::from_millis(250),
        "the abuse delayed restarts: {story}"
    );
    assert_eq!(ready_under_abuse, 0, "{story}");
}

#[test]
fn probes_read_the_scoreboard_and_a_stopped_supervisor_fails_them_at_once() {
    let dir = TempDir::new("health-board");
    let state = dir.join("g");
    let marker = Marker::new("health-board");
    let mut command = herd();
    marker
        .apply(&mut command)
        .args(["start", "--state-dir"])
        .arg(&state)
        .args(["-c", "web=exec sleep 1000"]);
    let outcome = run_to_end(&mut command);
    outcome.check(outcome.code() == 0, "herd start");
    // Without the control socket, only the scoreboard can answer.
    let socket = state.join("control.sock");
    let moved = state.join("control.sock.away");
    fs::rename(&socket, &moved).unwrap();
    assert_eq!(status_probe(&state, "--ready", "socket moved away"), 0);
    assert_eq!(status_probe(&state, "--live", "socket moved away"), 0);
    fs::rename(&moved, &socket).unwrap();
    let supervisor: u32 = fs::read_to_string(state.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    send_signal(supervisor, "STOP");
    wait_until(
        "the supervisor to stop",
        || process_state(supervisor) == Some('T'),
        String::new,
    );
    let asked = Instant::now();
    let ready = status_probe(&state, "--ready", "supervisor stopped");
    let live = status_probe(&state, "--live", "supervisor stopped");
    let took = asked.elapsed();
    send_signal(supervisor, "CONT");
    let stop = run_to_end(herd().arg("stop").arg("--state-dir").arg(&state));
    stop.check(stop.code() == 0, "herd stop");
    assert_eq!((ready, live), (1, 1), "a stopped supervisor is neither");
    // The socket would have made each wait its 5 s.
    assert!(
        took < Duration::from_secs(5),
        "the two probes took {took:?}"
    );
}
