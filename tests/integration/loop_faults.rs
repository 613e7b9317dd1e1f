//! The supervisor loop must never block (issue 7): a reader of herd's
//! output that stopped reading, leftovers holding output pipes, idle control
//! clients, a process that cannot start or never gets ready, a port held by
//! another program: none may delay a signal, a restart, a reply or the
//! order of the group.

use crate::util::*;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// herd's bounded wait for its output writer at the end (OUTPUT_DRAIN).
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// What a loaded 2-CPU machine may add to a bound that herd itself keeps.
const SLACK: Duration = Duration::from_secs(3);

/// A state directory in a temporary directory of its own, and a marker
/// that everything started through it carries (killed on drop).
struct StateDir {
    /// `--state-dir`.
    dir: PathBuf,
    marker: Marker,
    tmp: TempDir,
}

impl StateDir {
    fn new(tag: &str) -> StateDir {
        StateDir::named(tag, "g")
    }

    /// A state directory called `name` in the temporary directory.
    fn named(tag: &str, name: &str) -> StateDir {
        let tmp = TempDir::new(&format!("loop-{tag}"));
        StateDir {
            dir: tmp.join(name),
            marker: Marker::new(tag),
            tmp,
        }
    }

    /// A path in the temporary directory, outside the state directory.
    fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// `herd SUBCOMMAND --state-dir DIR ARGS`, carrying the marker.
    fn supervise<S: AsRef<std::ffi::OsStr>>(&self, subcommand: &str, args: &[S]) -> Command {
        let mut command = herd();
        self.marker.apply(&mut command);
        command
            .arg(subcommand)
            .arg("--state-dir")
            .arg(&self.dir)
            .args(args);
        command
    }

    /// A client command, `herd ARGS --state-dir DIR`, run to its end.
    fn ask(&self, args: &[&str]) -> Outcome {
        run_to_end(herd().args(args).arg("--state-dir").arg(&self.dir))
    }

    /// The supervisor named by the pid file.
    fn supervisor(&self) -> u32 {
        fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in the pid file\n{}", self.story()))
    }

    /// The state directory's files, the log and what is left, for a
    /// failure message.
    fn story(&self) -> String {
        let files = file_names(&self.dir);
        let log = text_or_why(&self.dir.join("log"));
        format!(
            "state dir {}: {files:?}\nprocesses of this test alive: {:?}\nlog:\n{log}",
            self.dir.display(),
            self.marker.processes()
        )
    }

    /// Asks `herd status` until it exits 0 with a table `condition`
    /// accepts; returns that table.
    fn wait_for_status(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let outcome = self.ask(&["status"]);
            if outcome.status.code() == Some(0) && condition(&outcome.stdout) {
                return outcome.stdout;
            }
            if Instant::now() > until {
                outcome.check(
                    false,
                    &format!("waited {DEADLINE:?} for {what}\n{}", self.story()),
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The cells of the status table's row for `name`.
fn row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
}

fn state_of(table: &str, name: &str) -> Option<String> {
    Some(row(table, name)?.get(1)?.to_string())
}

fn pid_of(table: &str, name: &str) -> Option<u32> {
    row(table, name)?.get(2)?.parse().ok()
}

/// Whether `text` has `name` as a word of its own (`b` in "starting b:",
/// not in "/bin/sh").
fn names(text: &str, name: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .any(|word| word == name)
}

/// The index of the first line of `text` containing `needle`.
fn line_index(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|line| line.contains(needle))
}

/// A group with prefixed output and no colour, carrying `marker`.
fn group(marker: &Marker, args: &[&str]) -> Command {
    let mut command = herd();
    marker.apply(&mut command);
    command.args(["run", "--color", "never"]).args(args);
    command
}

/// How many lines `path` holds (0 while it does not exist).
fn lines_in(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[test]
fn a_blocked_stdout_does_not_stop_restarts_or_sigterm() {
    let marker = Marker::new("blocked-stdout");
    let tmp = TempDir::new("loop-blocked-stdout");
    let stdout = Fifo::new(&tmp, "stdout");
    let count = tmp.join("count");
    let fail = format!("fail=echo x >> {}; exit 1", count.display());
    let mut command = herd_writing_to(Some(&stdout.path), None);
    marker.apply(&mut command).args([
        "run",
        "--color",
        "never",
        "--grace",
        "2",
        "-c",
        "chat=yes chatty",
        "-c",
        &fail,
        "--restart",
        "fail=always",
        "--backoff-min",
        "0.05",
        "--backoff-max",
        "0.05",
        "--start-limit",
        "1000",
    ]);
    let mut herd = Running::start(&mut command);
    let story = |herd: &Running| {
        format!(
            "herd's stdout is {}, a FIFO nobody reads; fail ran {} times (lines in {})\n{}",
            stdout.path.display(),
            lines_in(&count),
            count.display(),
            herd.story()
        )
    };
    wait_until(
        "fail to run 20 times: its restarts must go on while herd's stdout is blocked",
        || lines_in(&count) >= 20,
        || story(&herd),
    );
    let asked = Instant::now();
    herd.signal("TERM");
    let pid = herd.pid();
    wait_until(
        "herd to exit after SIGTERM, its stdout blocked",
        || !is_alive(pid),
        || story(&herd),
    );
    let took = asked.elapsed();
    let status = herd.wait();
    let bound = Duration::from_secs(2) + OUTPUT_DRAIN + SLACK;
    assert!(
        took < bound,
        "herd took {took:?} to exit after SIGTERM with its stdout blocked, more than \
         --grace 2s + the output drain 1s + {SLACK:?}\n{}",
        story(&herd)
    );
    assert!(
        status.code().is_some(),
        "herd was killed ({status:?}) instead of exiting\n{}",
        story(&herd)
    );
}

#[test]
fn leftovers_holding_output_pipes_do_not_stall_the_loop() {
    let state = StateDir::new("leftovers");
    let pids = state.scratch("pids");
    let mut args: Vec<String> = vec!["--color".into(), "never".into()];
    for n in 1..=20 {
        // The sleep leaves the process group (setsid) and keeps the output
        // pipe open after its shell, the main process, exited.
        let command = format!(
            "p{n}=setsid sleep 1000 </dev/null & echo $! >> {}; exit 0",
            pids.display()
        );
        args.extend(["-c".into(), command, "--oneshot".into(), format!("p{n}")]);
    }
    args.extend(["-c".into(), "keep=exec sleep 1000".into()]);
    let herd = Running::start(&mut state.supervise("run", &args));
    wait_until(
        "the 20 leftovers to be started",
        || lines_in(&pids) >= 20,
        || format!("{}\n{}", herd.story(), state.story()),
    );
    // Right after the 20 exits: each may hold the loop up while the loop
    // waits for an output reader that never sees the end of its pipe.
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            let asked = Instant::now();
            let outcome = state.ask(&["status"]);
            let took = asked.elapsed();
            outcome.check(
                outcome.code() == 0,
                &format!("herd status failed\n{}", state.story()),
            );
            took
        })
        .collect();
    let slowest = times.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(200),
        "herd status took {times:?} right after 20 processes exited whose leftovers hold \
         their output pipes: the slowest must be under 0.2s\n{}\n{}",
        herd.story(),
        state.story()
    );
    state.wait_for_status("the 20 exits seen, keep running", |table| {
        (1..=20).all(|n| state_of(table, &format!("p{n}")).as_deref() == Some("exited"))
            && state_of(table, "keep").as_deref() == Some("running")
    });
    let outcome = state.ask(&["stop"]);
    outcome.check(
        outcome.code() == 0,
        &format!("herd stop with the leftovers alive\n{}", state.story()),
    );
    let outcome = herd.finish();
    outcome.check(
        outcome.code() == 0,
        &format!("herd run stopped on request\n{}", state.story()),
    );
}

/// Opens `count` connections to `socket` and returns them, idle. A
/// supervisor that stops accepting fails the test at the deadline instead of
/// hanging it.
fn idle_connections(state: &StateDir, count: usize) -> Vec<UnixStream> {
    let (sender, connections) = mpsc::channel();
    let socket = state.socket();
    thread::spawn(move || {
        for _ in 0..count {
            if sender.send(UnixStream::connect(&socket)).is_err() {
                return;
            }
        }
    });
    (0..count)
        .map(|index| match connections.recv_timeout(DEADLINE) {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => panic!("connection {index} of {count}: {e}\n{}", state.story()),
            Err(_) => panic!(
                "connection {index} of {count} not made within {DEADLINE:?}\n{}",
                state.story()
            ),
        })
        .collect()
}

/// `name`'s uptime in seconds, from the output of `herd status --json`.
fn uptime_of(json: &str, name: &str) -> Option<f64> {
    let after = json.split_once(&format!("\"name\":\"{name}\""))?.1;
    let value = after.split_once("\"uptime\":")?.1;
    let end = value.find([',', '}'])?;
    value[..end].parse().ok()
}

#[test]
fn a_restart_works_with_300_idle_control_connections() {
    let state = StateDir::new("idle300");
    let outcome = run_to_end(&mut state.supervise("start", &["-c", "web=exec sleep 1000"]));
    outcome.check(
        outcome.code() == 0,
        &format!("herd start\n{}", state.story()),
    );
    let supervisor = state.supervisor();
    let before = state.wait_for_status("web running", |t| {
        state_of(t, "web").as_deref() == Some("running")
    });
    let old = pid_of(&before, "web");
    let idle = idle_connections(&state, 300);

    let outcome = state.ask(&["restart", "web"]);
    outcome.check(
        outcome.code() == 0,
        &format!(
            "herd restart web with 300 idle connections open\n{}",
            state.story()
        ),
    );
    state.wait_for_status("web running with a new pid", |t| {
        state_of(t, "web").as_deref() == Some("running") && pid_of(t, "web") != old
    });

    // An idle connection must cost the loop nothing: over a second by
    // herd's own clock (web's uptime), herd may spend a few ticks at most
    // (a loop spinning on them would spend about 100 a second).
    let ticks = || {
        cpu_ticks(supervisor)
            .unwrap_or_else(|| panic!("no /proc/{supervisor}/stat\n{}", state.story()))
    };
    let uptime = || {
        let outcome = state.ask(&["status", "--json"]);
        let uptime = uptime_of(&outcome.stdout, "web");
        outcome.check(
            uptime.is_some(),
            &format!("no uptime for web\n{}", state.story()),
        );
        uptime.unwrap_or_default()
    };
    let ticks_before = ticks();
    let start = uptime();
    let until = Instant::now() + DEADLINE;
    let mut up = start;
    while up < start + 1.0 {
        assert!(
            Instant::now() < until,
            "web's uptime went from {start}s to only {up}s in {DEADLINE:?}\n{}",
            state.story()
        );
        // Not a synchronisation: the time between two looks at the clock.
        thread::sleep(Duration::from_millis(100));
        up = uptime();
    }
    let spent = ticks().saturating_sub(ticks_before);
    assert!(
        spent <= 5,
        "herd spent {spent} clock ticks of CPU while 300 connections sat idle for {:.3}s \
         (web's uptime {start}s to {up}s)\n{}",
        up - start,
        state.story()
    );

    let outcome = state.ask(&["stop"]);
    outcome.check(
        outcome.code() == 0,
        &format!(
            "herd stop with 300 idle connections open\n{}",
            state.story()
        ),
    );
    wait_until(
        "the supervisor to be gone",
        || !is_alive(supervisor),
        || state.story(),
    );
    drop(idle);
}

#[test]
fn a_process_that_cannot_be_spawned_stops_the_group_before_later_ones_start() {
    let marker = Marker::new("e2big");
    let tmp = TempDir::new("loop-e2big");
    let c_started = tmp.join("c-started");
    let procfile = tmp.join("Procfile");
    // One argument over 128 KiB (MAX_ARG_STRLEN): `sh -c` cannot be executed.
    let text = format!(
        "a: exec sleep 1000\nb: echo {}\nc: touch {}; exec sleep 1000\n",
        "A".repeat(200_000),
        c_started.display()
    );
    fs::write(&procfile, text).unwrap();
    let procfile = procfile.display().to_string();
    let outcome = run_to_end(&mut group(&marker, &["-f", &procfile]));
    let mut problems = Vec::new();
    if outcome.code() != 126 {
        problems.push(format!(
            "exit code {} (expected 126: b cannot be executed)",
            outcome.code()
        ));
    }
    let says_why = outcome.stdout.lines().any(|line| {
        line.starts_with("herd ") && names(line, "b") && line.contains("argument list too long")
    });
    if !says_why {
        problems.push("no herd line names b and says \"argument list too long\"".to_string());
    }
    let last = outcome.stderr.lines().last().unwrap_or_default();
    if !(last.starts_with("herd: ") && names(last, "b")) {
        problems.push(format!("stderr's last line {last:?} does not name b"));
    }
    if outcome.stdout.contains("c started") || c_started.exists() {
        problems.push("c was started after b could not be".to_string());
    }
    outcome.check(problems.is_empty(), &problems.join("\n"));
}

#[test]
fn a_ready_timeout_after_the_first_start_goes_through_the_restart_policy() {
    let marker = Marker::new("ready-again");
    let tmp = TempDir::new("loop-ready-again");
    let (once, ready) = (tmp.join("once"), tmp.join("ready"));
    // Ready on its first run only: later runs find `once` and never make
    // `ready`.
    let web = format!(
        "web=if [ -e {0} ]; then exec sleep 1000; fi; touch {0} {1}; exec sleep 1000",
        once.display(),
        ready.display()
    );
    let check = format!("web=file:{}", ready.display());
    let mut herd = Running::start(&mut group(
        &marker,
        &[
            "-c",
            &web,
            "--ready",
            &check,
            "--ready-timeout",
            "1",
            "--restart",
            "web=always",
            "--backoff-min",
            "0.1",
            "--backoff-max",
            "0.1",
        ],
    ));
    let started = herd.expect_line("web started (pid ");
    let first: u32 = started
        .rsplit_once("(pid ")
        .and_then(|(_, pid)| pid.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started:?}\n{}", herd.story()));
    herd.expect_line("web is ready");
    fs::remove_file(&ready).unwrap();
    send_signal(first, "TERM");
    herd.expect_line("web restarting in");
    herd.expect_line("web started");
    herd.expect_line("web: not ready after 1s");
    let next = herd.expect_any(
        "after its second run was not ready in time, web must be restarted, not the group stopped",
        &["web restarting in", "web started"],
    );
    if next.contains("restarting") {
        herd.expect_line("web started");
    }
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(
        outcome.code() != 124,
        "exit 124: the group stopped because web was not ready, though web restarts always",
    );
    outcome.check(
        outcome.code() == 0,
        "stopped on request, web ended by herd's SIGTERM: expected exit 0",
    );
}

#[test]
fn a_tcp_ready_check_ignores_a_port_held_by_another_program() {
    let marker = Marker::new("port-taken");
    let tmp = TempDir::new("loop-port-taken");
    let after_started = tmp.join("after-started");
    // The test holds the port: herd's probe connects, but not to web.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let ready = format!("web=tcp:{port}");
    let after = format!("after=touch {}; exec sleep 1000", after_started.display());
    let mut herd = Running::start(&mut group(
        &marker,
        &[
            "-c",
            "web=exec sleep 1000",
            "--ready",
            &ready,
            "--ready-timeout",
            "1",
            "-c",
            &after,
        ],
    ));
    let verdict = herd.expect_any(
        &format!("the ready check of web on port {port}, which the test holds"),
        &["web is ready", "another program"],
    );
    assert!(
        !verdict.contains("web is ready"),
        "web was reported ready on port {port}, which the test listens on, not web\n{}",
        herd.story()
    );
    assert!(
        verdict.starts_with("herd ") && verdict.contains(&port),
        "the line about another program does not name port {port}: {verdict:?}\n{}",
        herd.story()
    );
    let outcome = herd.finish();
    let mut problems = Vec::new();
    if outcome.code() != 124 {
        problems.push(format!(
            "exit code {} (expected 124: web never got ready)",
            outcome.code()
        ));
    }
    if outcome.stdout.contains("web is ready") {
        problems.push("web was reported ready".to_string());
    }
    if outcome.stdout.contains("after started") || after_started.exists() {
        problems.push("after was started though web never got ready".to_string());
    }
    outcome.check(problems.is_empty(), &problems.join("\n"));
    drop(listener);
}

fn has_python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn ready_checks_accept_host_and_ipv6_forms() {
    if !has_python3() {
        eprintln!("skipped: ready_checks_accept_host_and_ipv6_forms needs python3");
        return;
    }
    let marker = Marker::new("ready-hosts");
    let (port6, port4) = (free_port_at("::1"), free_port_at("127.0.0.1"));
    // Each server listens only after 0.3 s; the client connects to both
    // once: had it started before both checks passed, it would be refused.
    let server = |name: &str, family: &str, host: &str, port: u16| {
        format!(
            "{name}=exec python3 -c 'import socket,time; time.sleep(0.3); \
             s=socket.socket(socket.{family}); s.bind((\"{host}\", {port})); \
             s.listen(); time.sleep(1000)'"
        )
    };
    let client = format!(
        "client=exec python3 -c 'import socket; \
         socket.create_connection((\"::1\", {port6})); \
         socket.create_connection((\"127.0.0.1\", {port4})); print(\"connected\")'"
    );
    let mut herd = Running::start(&mut group(
        &marker,
        &[
            "--ready-timeout",
            "15",
            "-c",
            &server("web6", "AF_INET6", "::1", port6),
            "--ready",
            &format!("web6=tcp:[::1]:{port6}"),
            "-c",
            &server("web4", "AF_INET", "127.0.0.1", port4),
            "--ready",
            &format!("web4=tcp:127.0.0.1:{port4}"),
            "-c",
            &client,
        ],
    ));
    herd.expect_line("web6 is ready");
    herd.expect_line("web4 is ready");
    herd.expect_line("client | connected");
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "a clean stop on request");
}

#[test]
fn the_control_socket_exists_before_the_command_is_spawned() {
    // The socket's path, past the 108 bytes of sun_path, cannot be bound.
    let state = StateDir::named("long-path", &"d".repeat(120));
    assert!(
        state.socket().as_os_str().len() > 108,
        "{} is not too long for a socket",
        state.socket().display()
    );
    let single = state.scratch("single-started");
    let member = state.scratch("member-started");
    let single_command = ["--", "touch", &single.display().to_string()].map(String::from);
    let group_member = ["-c".to_string(), format!("a=touch {}", member.display())];
    let mut problems = Vec::new();
    for (what, args, started) in [
        ("a single command", &single_command[..], &single),
        ("a group", &group_member[..], &member),
    ] {
        let outcome = run_to_end(&mut state.supervise("run", args));
        // Whatever herd spawned carries the marker: once none is left, a
        // process that was spawned has made its file.
        wait_until(
            "what herd spawned to be gone",
            || state.marker.processes().is_empty(),
            || state.story(),
        );
        let message = outcome.stderr.trim_end();
        let mut wrong = Vec::new();
        if outcome.status.code() != Some(125) {
            wrong.push(format!("exit {:?} (expected 125)", outcome.status));
        }
        let about_the_socket = message.contains("control.sock") || message.contains("socket");
        if !(message.starts_with("herd: ") && about_the_socket && !message.contains('\n')) {
            wrong.push("stderr is not one herd line about the socket".to_string());
        }
        if started.exists() {
            wrong.push("the command was spawned before the socket failed".to_string());
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "{what} ({args:?}): {}\n  stdout: {:?}\n  stderr: {message:?}",
                wrong.join("; "),
                outcome.stdout
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "with the socket path {} too long to bind:\n{}",
        state.socket().display(),
        problems.join("\n")
    );
}

#[test]
fn the_exit_line_comes_after_the_last_output_line() {
    let marker = Marker::new("exit-line");
    for run in 1..=20 {
        let outcome = run_to_end(&mut group(&marker, &["-c", "a=echo one; echo two; exit 3"]));
        let two = line_index(&outcome.stdout, "a    | two");
        let exited = line_index(&outcome.stdout, "herd | a exited with code 3");
        outcome.check(
            matches!((two, exited), (Some(two), Some(exited)) if two < exited),
            &format!("run {run}: \"a | two\" at line {two:?}, the exit line at {exited:?}"),
        );
        outcome.check(outcome.code() == 3, &format!("run {run}: a's exit code"));
    }
}

#[test]
fn sigterm_during_a_blocked_stdout_in_single_command_mode() {
    let marker = Marker::new("blocked-single");
    let tmp = TempDir::new("loop-blocked-single");
    // The child writes to herd's stdout itself and blocks there; herd's -v
    // notes go to its stderr, full before herd starts.
    let stdout = Fifo::new(&tmp, "stdout");
    let stderr = Fifo::new(&tmp, "stderr");
    let filled = stderr.fill();
    let trapped = tmp.join("trapped");
    let script = format!(
        "trap '' TERM; touch {}; while :; do echo spam; done",
        trapped.display()
    );
    let mut command = herd_writing_to(Some(&stdout.path), Some(&stderr.path));
    marker
        .apply(&mut command)
        .args(["run", "-v", "--grace", "1", "--", "sh", "-c", &script]);
    let mut herd = Running::start(&mut command);
    let story = |herd: &Running| {
        format!(
            "herd's stdout {} is a FIFO nobody reads; its stderr {} one filled with {filled} \
             bytes before herd started\n{}",
            stdout.path.display(),
            stderr.path.display(),
            herd.story()
        )
    };
    wait_until(
        "the child to ignore SIGTERM",
        || trapped.exists(),
        || story(&herd),
    );
    let asked = Instant::now();
    herd.signal("TERM");
    let pid = herd.pid();
    wait_until(
        "herd to SIGKILL the child after the 1s grace and exit, its stderr blocked",
        || !is_alive(pid),
        || story(&herd),
    );
    let took = asked.elapsed();
    let status = herd.wait();
    assert_eq!(
        status.code(),
        Some(128 + 9),
        "the child ignores SIGTERM: herd must exit as it, killed by SIGKILL\n{}",
        story(&herd)
    );
    assert!(
        took >= Duration::from_secs(1),
        "herd exited {took:?} after SIGTERM, before the 1s grace ran out\n{}",
        story(&herd)
    );
}
