//! `herd start` and the control socket: detaching until ready, the state
//! directory's lock and files, the client commands, and the wire protocol.

use crate::util::*;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// One state directory in a temporary directory of its own, and whatever
/// herd runs there. Everything a test starts carries `marker` in its
/// environment, so that leftovers can be found; on drop the supervisor named
/// by the pid file is SIGKILLed with its whole tree.
struct Herd {
    /// The state directory (`--state-dir`); its name `g` is the group's name.
    dir: PathBuf,
    /// `KEY=VALUE`, unique to this test.
    marker: String,
    tmp: TempDir,
}

impl Herd {
    fn new(tag: &str) -> Herd {
        let tmp = TempDir::new(&format!("control-{tag}"));
        let dir = tmp.join("g");
        let marker = format!("HERD_CONTROL_TEST={}", dir.display());
        Herd { dir, marker, tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn pid_file(&self) -> PathBuf {
        self.path("pid")
    }

    fn socket(&self) -> PathBuf {
        self.path("control.sock")
    }

    /// A file in the temporary directory, outside the state directory.
    fn scratch(&self, name: &str) -> String {
        self.tmp.join(name).display().to_string()
    }

    /// herd with this test's marker in its environment.
    fn marked(&self) -> Command {
        let (key, value) = self.marker.split_once('=').unwrap();
        let mut command = herd();
        command.env(key, value);
        command
    }

    /// `herd start --state-dir DIR ARGS`.
    fn start(&self, args: &[&str]) -> Command {
        let mut command = self.marked();
        command
            .arg("start")
            .arg("--state-dir")
            .arg(&self.dir)
            .args(args);
        command
    }

    /// `herd run --state-dir DIR ARGS`, the foreground form.
    fn run(&self, args: &[&str]) -> Command {
        let mut command = self.marked();
        command
            .args(["run", "--color", "never", "--state-dir"])
            .arg(&self.dir)
            .args(args);
        command
    }

    /// A client command: `herd ARGS --state-dir DIR`.
    fn client(&self, args: &[&str]) -> Command {
        let mut command = herd();
        command.args(args).arg("--state-dir").arg(&self.dir);
        command
    }

    fn ask(&self, args: &[&str]) -> Outcome {
        run_to_end(&mut self.client(args))
    }

    /// Starts the group, which must succeed; returns the supervisor's pid.
    fn started(&self, args: &[&str]) -> u32 {
        let outcome = run_to_end(&mut self.start(args));
        self.check(&outcome, outcome.code() == 0, "herd start failed");
        self.check(
            &outcome,
            outcome.stderr.is_empty(),
            "herd start said something",
        );
        self.supervisor()
    }

    /// Does what logrotate does: renames `log` to `log.1` and sends the
    /// supervisor SIGUSR1. Returns the new name once herd has opened `log`
    /// again, from when on its output must go there.
    fn rotate_log(&self, supervisor: u32, log: &str) -> String {
        let rotated = format!("{log}.1");
        fs::rename(log, &rotated).unwrap();
        send_signal(supervisor, "USR1");
        wait_until(
            "the log to be created again",
            || Path::new(log).exists(),
            || self.story(),
        );
        rotated
    }

    /// The pid in the pid file.
    fn pid_in_file(&self) -> Option<u32> {
        fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The pid in the pid file, which must be a live herd.
    fn supervisor(&self) -> u32 {
        let pid = self
            .pid_in_file()
            .unwrap_or_else(|| panic!("no pid in the pid file\n{}", self.story()));
        self.ensure(
            is_alive(pid) && process_name(pid) == "herd",
            &format!("pid {pid} from the pid file is not a live herd"),
        );
        pid
    }

    /// Every live process this test started, supervisors included.
    fn processes(&self) -> Vec<u32> {
        processes_with_env(&self.marker)
    }

    /// The state directory's files and herd's log, for a failure message.
    fn story(&self) -> String {
        let files = file_names(&self.dir);
        let log = text_or_why(&self.path("log"));
        format!(
            "state dir {}: {files:?}\npid file: {:?}\nprocesses left: {:?}\nlog:\n{log}",
            self.dir.display(),
            self.pid_in_file(),
            self.processes()
        )
    }

    fn ensure(&self, ok: bool, what: &str) {
        assert!(ok, "{what}\n{}", self.story());
    }

    fn check(&self, outcome: &Outcome, ok: bool, what: &str) {
        outcome.check(ok, &format!("{what}\n{}", self.story()));
    }

    fn status(&self) -> Outcome {
        self.ask(&["status"])
    }

    /// Asks `herd status` until it exits 0 with a table that `condition`
    /// accepts; returns that table.
    fn wait_for_status(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let outcome = self.status();
            if outcome.status.code() == Some(0) && condition(&outcome.stdout) {
                return outcome.stdout;
            }
            if Instant::now() > until {
                self.check(&outcome, false, &format!("waited {DEADLINE:?} for {what}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the group with `herd stop`, which must wait for the end.
    fn stop(&self) {
        let supervisor = self.supervisor();
        let outcome = self.ask(&["stop"]);
        self.check(&outcome, outcome.code() == 0, "herd stop failed");
        self.assert_gone(supervisor);
        // A clean end takes the log with it.
        self.ensure(!self.path("log").exists(), "log is left");
    }

    /// The supervisor, its processes, its pid file and socket are all gone.
    fn assert_gone(&self, supervisor: u32) {
        // The lock goes as the supervisor exits, a moment before it is gone.
        wait_until(
            "the supervisor and its processes to be gone",
            || !is_alive(supervisor) && self.processes().is_empty(),
            || self.story(),
        );
        for file in ["pid", "control.sock"] {
            self.ensure(!self.path(file).exists(), &format!("{file} is left"));
        }
    }
}

impl Drop for Herd {
    fn drop(&mut self) {
        let processes = self.processes();
        if let Some(pid) = self.pid_in_file().filter(|pid| processes.contains(pid)) {
            kill_with_tree(pid);
        }
        // What a failed test may have left outside the supervisor's tree:
        // only processes started by this test carry its marker.
        for pid in self.processes() {
            kill_with_tree(pid);
        }
    }
}

/// The cells of the status table's row for `name` (the last one, LAST
/// EXIT, may be several words).
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
}

fn state_of(table: &str, name: &str) -> String {
    row(table, name)[1].to_string()
}

fn pid_of(table: &str, name: &str) -> u32 {
    row(table, name)[2]
        .parse()
        .unwrap_or_else(|_| panic!("no pid for {name} in\n{table}"))
}

/// A script that makes `file` once it is ready, for `--ready NAME=file:`.
fn touches(file: &str, then: &str) -> String {
    format!("touch {file}; {then}")
}

const SLEEPS: &str = "s=exec sleep 1000";

#[test]
fn start_returns_once_ready_and_stop_waits_for_the_end() {
    let herd = Herd::new("ready");
    let port = free_port();
    // The server binds only after half a second: a start that returned
    // before the check passed would find nothing listening.
    let web = format!(
        "web=sleep 0.5; exec python3 -c 'import http.server as h; \
         h.HTTPServer((\"127.0.0.1\", {port}), h.BaseHTTPRequestHandler).serve_forever()'"
    );
    let asked = Instant::now();
    let supervisor = herd.started(&["-c", &web, "--ready", &format!("web=tcp:{port}")]);
    let took = asked.elapsed();
    let connected = TcpStream::connect(("127.0.0.1", port));
    herd.ensure(
        connected.is_ok(),
        &format!("web unreachable right after herd start returned: {connected:?}"),
    );
    drop(connected);
    herd.ensure(
        took >= Duration::from_millis(500),
        &format!("herd start returned after {took:?}, before web could listen"),
    );

    herd.ensure(
        is_flocked(&herd.pid_file()),
        "the pid file is not locked while herd runs",
    );
    let socket = fs::metadata(herd.socket()).expect("control.sock exists");
    herd.ensure(socket.file_type().is_socket(), "control.sock is no socket");
    herd.ensure(
        socket.permissions().mode() & 0o777 == 0o600,
        "control.sock is not 0600",
    );
    let table = herd.wait_for_status("web running", |t| state_of(t, "web") == "running");
    let web_pid = pid_of(&table, "web");
    herd.ensure(is_alive(web_pid), "web's pid is not alive");

    herd.stop();
    herd.ensure(!is_alive(web_pid), "web outlived herd stop");
    herd.ensure(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "web still listens after herd stop",
    );
    herd.assert_gone(supervisor);
}

/// A start that failed: non-zero, the reason on stderr, nothing left.
fn assert_failed_start(herd: &Herd, outcome: &Outcome, code: i32, reason: &str) {
    herd.check(outcome, outcome.code() == code, &format!("exit {code}"));
    herd.check(
        outcome,
        outcome.stderr.starts_with("herd: g did not get ready: ")
            && outcome.stderr.contains(reason)
            && outcome.stderr.lines().count() == 1,
        &format!("one line giving the reason, {reason:?}"),
    );
    herd.ensure(herd.processes().is_empty(), "processes are left");
    herd.ensure(!herd.pid_file().exists(), "the pid file is left");
    herd.ensure(!herd.socket().exists(), "the control socket is left");
}

#[test]
fn a_start_whose_command_is_not_found_fails_with_127_and_leaves_nothing() {
    let herd = Herd::new("notfound");
    let never = herd.scratch("never");
    let outcome = run_to_end(&mut herd.start(&[
        "-c",
        "web=no-such-cmd-xyz",
        "--ready",
        &format!("web=file:{never}"),
    ]));
    assert_failed_start(&herd, &outcome, 127, "web ended (exit 127)");
}

#[test]
fn without_a_ready_check_a_command_that_dies_at_once_fails_the_start() {
    // --settle (0.5 s by default): a process without a ready check must
    // stay up that long before herd start reports success.
    let herd = Herd::new("settle");
    let outcome = run_to_end(&mut herd.start(&["-c", "web=no-such-cmd-xyz"]));
    assert_failed_start(&herd, &outcome, 127, "web ended (exit 127)");
    let single = Herd::new("settle-single");
    let outcome = run_to_end(&mut single.start(&["--", "sh", "-c", "exit 4"]));
    assert_failed_start(&single, &outcome, 4, "sh ended (exit 4)");
}

#[test]
fn a_start_whose_ready_check_times_out_fails_with_124_and_leaves_nothing() {
    let herd = Herd::new("timeout");
    let outcome = run_to_end(&mut herd.start(&[
        "-c",
        "a=exec sleep 1000",
        "-c",
        "web=sleep 1000 & exec sleep 1000",
        "--ready",
        "web=file:/nonexistent",
        "--ready-timeout",
        "0.3",
    ]));
    assert_failed_start(&herd, &outcome, 124, "web: not ready after 0.3s");
}

#[test]
fn a_start_whose_process_exits_fails_with_its_code_and_leaves_nothing() {
    let herd = Herd::new("exits");
    let outcome = run_to_end(&mut herd.start(&[
        "-c",
        "a=exec sleep 1000",
        "-c",
        "web=exit 3",
        "--ready",
        "web=file:/nonexistent",
    ]));
    assert_failed_start(&herd, &outcome, 3, "web ended (exit 3)");
}

#[test]
fn a_failed_start_keeps_the_log_it_points_to() {
    let herd = Herd::new("failedlog");
    let outcome = run_to_end(&mut herd.start(&[
        "-c",
        "web=echo the reason is in here; exit 3",
        "--ready",
        "web=file:/nonexistent",
    ]));
    herd.check(&outcome, outcome.code() == 3, "exit 3");
    let log = herd.path("log").display().to_string();
    herd.check(
        &outcome,
        outcome.stderr.contains(&format!("(see {log})")),
        "the message points to the log",
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    herd.check(
        &outcome,
        text.contains("web  | the reason is in here") && text.contains("web exited with code 3"),
        "the log the message points to is gone or does not tell what happened",
    );
}

#[test]
fn of_many_simultaneous_starts_exactly_one_wins() {
    let herd = Herd::new("race");
    let mut starts: Vec<Running> = (0..20)
        .map(|_| Running::start(&mut herd.start(&["-c", SLEEPS])))
        .collect();
    let outcomes: Vec<Outcome> = starts
        .drain(..)
        .map(|mut start| {
            let status = start.wait();
            start.outcome(status)
        })
        .collect();
    let supervisor = herd.supervisor();
    let winners = outcomes.iter().filter(|o| o.code() == 0).count();
    herd.ensure(winners == 1, &format!("{winners} starts exited 0"));
    let refusal = format!("herd: g is already running (pid {supervisor})\n");
    for outcome in outcomes.iter().filter(|o| o.code() != 0) {
        herd.check(outcome, outcome.code() == 125, "a loser exited with 125");
        herd.check(outcome, outcome.stderr == refusal, &format!("{refusal:?}"));
    }
    let herds: Vec<u32> = herd
        .processes()
        .into_iter()
        .filter(|&pid| process_name(pid) == "herd")
        .collect();
    herd.ensure(herds == [supervisor], "not exactly one supervisor");
    herd.ensure(
        herd.processes()
            .into_iter()
            .filter(|&pid| !is_guard(pid))
            .count()
            == 2,
        "not exactly one supervisor and one process",
    );
    herd.stop();
}

#[test]
fn a_stale_state_dir_is_taken_over() {
    let herd = Herd::new("stale");
    let first = herd.started(&["-c", SLEEPS]);
    kill_with_tree(first);
    wait_until(
        "the killed supervisor's lock to go",
        || !is_alive(first) && !is_flocked(&herd.pid_file()),
        || herd.story(),
    );
    herd.ensure(herd.pid_file().exists(), "the pid file went with SIGKILL");
    herd.ensure(herd.socket().exists(), "the socket went with SIGKILL");
    let outcome = herd.status();
    herd.check(&outcome, outcome.code() == 3, "status of a stale dir");
    herd.check(
        &outcome,
        outcome.stderr == "herd: g is not running\n",
        "status message",
    );
    let outcome = herd.ask(&["stop"]);
    herd.check(&outcome, outcome.code() == 125, "stop of a stale dir");
    herd.check(
        &outcome,
        outcome.stderr == "herd: no herd is running as g\n",
        "stop message",
    );

    let second = herd.started(&["-c", SLEEPS]);
    herd.ensure(second != first, "the pid file still names the dead one");
    let table = herd.wait_for_status("s running", |t| state_of(t, "s") == "running");
    herd.ensure(
        children_of(second).contains(&pid_of(&table, "s")),
        "s is not the new supervisor's child",
    );
    herd.stop();
}

#[test]
fn status_prints_a_table_or_json_with_lsb_exit_codes() {
    let herd = Herd::new("status");
    let supervisor = herd.started(&["-c", "web=exec sleep 1000", "-c", "worker=exec sleep 1000"]);
    let outcome = herd.status();
    herd.check(&outcome, outcome.code() == 0, "status of a running herd");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    herd.check(
        &outcome,
        lines.len() == 3,
        "a header and a line per process",
    );
    herd.check(
        &outcome,
        lines[0].split_whitespace().collect::<Vec<_>>()
            == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST", "EXIT"],
        "header",
    );
    let state_column = lines[0].find("STATE").unwrap();
    for (line, name) in lines[1..].iter().zip(["web", "worker"]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        herd.check(&outcome, cells.len() == 6, "six cells");
        herd.check(&outcome, cells[0] == name, "processes in order");
        herd.check(&outcome, cells[1] == "running", "running");
        herd.check(
            &outcome,
            line[state_column..].starts_with("running"),
            "columns line up",
        );
        let pid: u32 = cells[2].parse().unwrap();
        herd.check(
            &outcome,
            children_of(supervisor).contains(&pid),
            "the pid is the supervisor's child",
        );
        herd.check(
            &outcome,
            cells[3].ends_with('s') && cells[4] == "0" && cells[5] == "-",
            "uptime, restarts, last exit",
        );
    }

    let outcome = herd.ask(&["status", "--json"]);
    herd.check(&outcome, outcome.code() == 0, "status --json");
    let json = outcome.stdout.as_str();
    herd.check(
        &outcome,
        json.starts_with(&format!(
            "{{\"name\":\"g\",\"pid\":{supervisor},\"processes\":[{{\"name\":\"web\",\"state\":\"running\",\"pid\":"
        )) && json.contains("},{\"name\":\"worker\",\"state\":\"running\",\"pid\":")
            && json.matches("\"restarts\":0,\"last_exit\":null,\"reload\":null,\"status\":null,\"watchdog\":null}").count() == 2
            && json.ends_with("}]}\n")
            && json.lines().count() == 1,
        "one line of JSON with both processes",
    );

    herd.stop();
    for args in [&["status"][..], &["status", "--json"]] {
        let outcome = herd.ask(args);
        herd.check(&outcome, outcome.code() == 3, "status of no herd");
        herd.check(&outcome, outcome.stdout.is_empty(), "nothing on stdout");
        herd.check(
            &outcome,
            outcome.stderr == "herd: g is not running\n",
            "message",
        );
    }
}

#[test]
fn status_of_a_pid_file_locked_by_something_else_is_unknown() {
    let herd = Herd::new("unknown");
    fs::create_dir_all(&herd.dir).unwrap();
    let mut holder = Running::start(Command::new("flock").arg(herd.pid_file()).args([
        "sh",
        "-c",
        "echo locked; exec sleep 1000",
    ]));
    holder.expect_line("locked");
    fs::write(herd.pid_file(), format!("{}\n", holder.pid())).unwrap();
    let outcome = herd.status();
    herd.check(&outcome, outcome.code() == 4, "status with no socket");
    herd.check(
        &outcome,
        outcome.stderr.starts_with("herd: status of g")
            && outcome.stderr.contains("scoreboard: it does not exist; ")
            && outcome
                .stderr
                .ends_with("; its control socket does not answer\n")
            && outcome.stderr.lines().count() == 1,
        "message",
    );
}

#[test]
fn restart_gives_a_process_a_new_pid_and_counts_it() {
    let herd = Herd::new("restart");
    herd.started(&["-c", "web=exec sleep 1000", "-c", "other=exec sleep 1000"]);
    let before = herd.wait_for_status("web running", |t| state_of(t, "web") == "running");
    let outcome = herd.ask(&["restart", "web"]);
    herd.check(&outcome, outcome.code() == 0, "restart");
    let old = pid_of(&before, "web");
    let after = herd.wait_for_status("web running again", |t| {
        state_of(t, "web") == "running" && pid_of(t, "web") != old
    });
    herd.ensure(!is_alive(old), "the old web is alive");
    herd.ensure(row(&after, "web")[4] == "1", "restarts is not 1");
    herd.ensure(
        pid_of(&after, "other") == pid_of(&before, "other") && row(&after, "other")[4] == "0",
        "the other process was touched",
    );
    herd.stop();
}

#[test]
fn signal_reaches_the_process() {
    let herd = Herd::new("signal");
    let up = herd.scratch("up");
    let web = touches(&up, "while :; do sleep 0.05; done");
    let web = format!("web=trap 'echo got usr1' USR1; {web}");
    herd.started(&["-c", &web, "--ready", &format!("web=file:{up}")]);
    let outcome = herd.ask(&["signal", "web", "USR1"]);
    herd.check(&outcome, outcome.code() == 0, "signal");
    wait_until(
        "the trap's line in the log",
        || {
            fs::read_to_string(herd.path("log"))
                .unwrap_or_default()
                .contains("web  | got usr1")
        },
        || herd.story(),
    );
    herd.wait_for_status("web still running", |t| state_of(t, "web") == "running");
    herd.stop();
}

#[test]
fn sigusr1_reopens_the_log_after_logrotate_moved_it() {
    let herd = Herd::new("logrotate");
    let up = herd.scratch("up");
    let log = herd.scratch("herd.log");
    let web = touches(&up, "while :; do sleep 0.05; done");
    let web = format!("web=trap 'echo ping' HUP; {web}");
    let supervisor = herd.started(&[
        "--log",
        &log,
        "-c",
        &web,
        "--ready",
        &format!("web=file:{up}"),
    ]);
    let rotated = herd.rotate_log(supervisor, &log);
    let outcome = herd.ask(&["signal", "web", "HUP"]);
    herd.check(&outcome, outcome.code() == 0, "signal");
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    wait_until(
        "ping in the new log",
        || read(&log).contains("web  | ping"),
        || herd.story(),
    );
    herd.ensure(
        read(&rotated).contains("web started"),
        "the old log lost its lines",
    );
    herd.ensure(
        !read(&rotated).contains("ping"),
        "a line went to the rotated log",
    );
    herd.ensure(is_alive(supervisor), "USR1 stopped the supervisor");
    herd.stop();
}

#[test]
fn a_single_command_follows_the_reopened_log_too() {
    let herd = Herd::new("logrotate-one");
    let log = herd.scratch("herd.log");
    let go = herd.scratch("go");
    let command = format!(
        "echo before; while [ ! -e {go} ]; do sleep 0.05; done; echo after; exec sleep 1000"
    );
    let supervisor = herd.started(&["--log", &log, "--", "sh", "-c", &command]);
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    wait_until(
        "the first line in the log",
        || read(&log) == "before\n",
        || herd.story(),
    );
    let rotated = herd.rotate_log(supervisor, &log);
    fs::write(&go, "").unwrap();
    wait_until(
        "the next line in the new log",
        || read(&log) == "after\n",
        || format!("rotated log: {:?}\n{}", read(&rotated), herd.story()),
    );
    herd.ensure(read(&rotated) == "before\n", "the rotated log changed");
    herd.stop();
}

#[test]
fn send_writes_to_a_stdin_pipe_from_an_argument_or_from_stdin() {
    let herd = Herd::new("send");
    herd.started(&["-c", "in=exec cat", "--stdin-pipe", "in"]);
    let in_log = |text: &str| {
        fs::read_to_string(herd.path("log"))
            .unwrap_or_default()
            .contains(&format!("in   | {text}"))
    };
    let outcome = herd.ask(&["send", "in", "hello from an argument\n"]);
    herd.check(&outcome, outcome.code() == 0, "send TEXT");
    wait_until(
        "the argument in the log",
        || in_log("hello from an argument"),
        || herd.story(),
    );

    let mut send = Running::start(&mut herd.client(&["send", "in", "-"]));
    send.write_stdin("hello from stdin\nand a second line\n");
    send.close_stdin();
    let outcome = send.finish();
    herd.check(&outcome, outcome.code() == 0, "send -");
    wait_until(
        "stdin's lines in the log",
        || in_log("hello from stdin") && in_log("and a second line"),
        || herd.story(),
    );
    herd.stop();
}

#[test]
fn stop_and_start_one_process_while_the_group_runs() {
    let herd = Herd::new("stopone");
    herd.started(&["-c", "web=exec sleep 1000", "-c", "other=exec sleep 1000"]);
    let before = herd.wait_for_status("both running", |t| {
        state_of(t, "web") == "running" && state_of(t, "other") == "running"
    });
    let outcome = herd.ask(&["stop", "web"]);
    herd.check(&outcome, outcome.code() == 0, "stop web");
    let stopped = herd.wait_for_status("web stopped", |t| state_of(t, "web") == "stopped");
    herd.ensure(
        row(&stopped, "web")[2] == "-",
        "a stopped process has a pid",
    );
    herd.ensure(!is_alive(pid_of(&before, "web")), "web is alive");
    herd.ensure(
        pid_of(&stopped, "other") == pid_of(&before, "other"),
        "other was touched",
    );

    let outcome = herd.ask(&["start", "web"]);
    herd.check(&outcome, outcome.code() == 0, "start web");
    let table = herd.wait_for_status("web running", |t| state_of(t, "web") == "running");
    herd.ensure(is_alive(pid_of(&table, "web")), "web is not alive");
    herd.stop();
}

#[test]
fn requests_for_unknown_or_unfit_processes_are_refused() {
    let herd = Herd::new("refused");
    herd.started(&["-c", "web=exec sleep 1000"]);
    let before = herd.wait_for_status("web running", |t| state_of(t, "web") == "running");
    let refusals: [(&[&str], &str); 8] = [
        (&["restart", "nope"], "no process named 'nope'"),
        (&["signal", "nope", "TERM"], "no process named 'nope'"),
        (&["send", "nope", "x"], "no process named 'nope'"),
        (&["stop", "nope"], "no process named 'nope'"),
        (&["start", "nope"], "no process named 'nope'"),
        (
            &["send", "web", "x"],
            "web was not started with --stdin-pipe",
        ),
        (&["start", "web"], "web is already running"),
        (&["signal", "web", "NOSUCHSIG"], "NOSUCHSIG"),
    ];
    for (args, message) in refusals {
        let outcome = herd.ask(args);
        herd.check(&outcome, outcome.code() == 125, &format!("{args:?}: 125"));
        herd.check(
            &outcome,
            outcome.stderr.starts_with("herd: ")
                && outcome.stderr.contains(message)
                && outcome.stderr.lines().count() == 1,
            &format!("{args:?}: {message:?}"),
        );
    }
    let after = herd.wait_for_status("web untouched", |t| state_of(t, "web") == "running");
    herd.ensure(
        pid_of(&after, "web") == pid_of(&before, "web"),
        "web was restarted",
    );

    herd.stop();
    let outcome = herd.ask(&["restart", "web"]);
    herd.check(&outcome, outcome.code() == 125, "restart with no herd");
    herd.check(
        &outcome,
        outcome.stderr == "herd: no herd is running as g\n",
        "message with no herd",
    );
}

/// A copy of herd that any user may run, for a test that drops privileges.
fn herd_for_anyone(herd: &Herd) -> PathBuf {
    let copy = herd.tmp.join("herd");
    fs::copy(herd_path(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&herd.tmp.0, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// `herd ARGS --state-dir DIR` as uid and gid 65534.
fn as_nobody(herd: &Herd, program: &PathBuf, args: &[&str]) -> Outcome {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(program)
        .args(args)
        .arg("--state-dir")
        .arg(&herd.dir);
    run_to_end(&mut command)
}

#[test]
fn another_user_is_refused_by_the_socket_itself() {
    if !runs_as_root("switching to another user") {
        return;
    }
    let herd = Herd::new("peercred");
    let program = herd_for_anyone(&herd);
    let probe = run_to_end(Command::new("setpriv").args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "true",
    ]));
    probe.check(probe.code() == 0, "setpriv(1) cannot drop privileges here");
    let supervisor = herd.started(&["-c", SLEEPS]);
    // Past the file modes, so that only the peer credentials check is left.
    fs::set_permissions(&herd.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(herd.pid_file(), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(herd.socket(), fs::Permissions::from_mode(0o666)).unwrap();

    let outcome = as_nobody(&herd, &program, &["status"]);
    herd.check(&outcome, outcome.code() == 4, "status as another user");
    herd.check(
        &outcome,
        outcome.stdout.is_empty()
            && outcome.stderr.starts_with("herd: status of g")
            && outcome.stderr.lines().count() == 1,
        "status message",
    );
    for args in [&["stop"][..], &["restart", "s"], &["signal", "s", "KILL"]] {
        let outcome = as_nobody(&herd, &program, args);
        herd.check(&outcome, outcome.code() == 125, &format!("{args:?}"));
        herd.check(
            &outcome,
            outcome.stderr.starts_with("herd: ") && outcome.stderr.lines().count() == 1,
            &format!("{args:?}: message"),
        );
    }
    herd.ensure(is_alive(supervisor), "the supervisor went");
    let table = herd.wait_for_status("s untouched", |t| state_of(t, "s") == "running");
    herd.ensure(row(&table, "s")[4] == "0", "s was restarted");
    herd.stop();
}

/// The scoreboard is the supervisor's user's alone: another user can
/// neither read it nor bump a heartbeat in it, even past the directory.
#[test]
fn another_user_can_neither_read_nor_write_the_scoreboard() {
    let herd = Herd::new("board-stranger");
    let program = herd_for_anyone(&herd);
    herd.started(&["-c", SLEEPS]);
    // Past the directory's and the pid file's modes: the scoreboard's own
    // is left.
    fs::set_permissions(&herd.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(herd.pid_file(), fs::Permissions::from_mode(0o644)).unwrap();
    let board = herd.dir.join("scoreboard");
    for (what, script) in [
        ("read", "cat \"$0\" > /dev/null"),
        ("write", "printf x >> \"$0\""),
    ] {
        let outcome = run_to_end(
            Command::new("setpriv")
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .args(["sh", "-c", script])
                .arg(&board),
        );
        herd.check(
            &outcome,
            outcome.code() != 0 && outcome.stderr.contains("Permission denied"),
            &format!("another user's {what}"),
        );
    }
    let outcome = as_nobody(&herd, &program, &["status"]);
    herd.check(&outcome, outcome.code() == 4, "status as another user");
    herd.check(
        &outcome,
        outcome.stderr.contains("scoreboard: permission denied") && outcome.stdout.is_empty(),
        "status says why it cannot read the scoreboard",
    );
    herd.stop();
}

/// The supervisor answers a refused peer with an error frame saying why,
/// and closes at once; the client must report that reason, however its own
/// hello fared.
#[test]
fn another_user_is_told_permission_denied_every_time() {
    if !runs_as_root("switching to another user") {
        return;
    }
    let herd = Herd::new("denied");
    let program = herd_for_anyone(&herd);
    let supervisor = herd.started(&["-c", SLEEPS]);
    fs::set_permissions(&herd.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(herd.socket(), fs::Permissions::from_mode(0o666)).unwrap();
    // The race between the supervisor's close and the client's hello is
    // lost only now and then: ask many times.
    for attempt in 1..=200 {
        let outcome = as_nobody(&herd, &program, &["stop"]);
        herd.check(
            &outcome,
            outcome.code() == 125 && outcome.stderr == "herd: permission denied\n",
            &format!("herd stop as another user, attempt {attempt}"),
        );
    }
    herd.ensure(is_alive(supervisor), "the supervisor went");
    herd.stop();
}

#[test]
fn status_as_a_user_who_cannot_read_the_state_dir_is_unknown_not_stopped() {
    if !runs_as_root("switching to another user") {
        return;
    }
    let herd = Herd::new("unreadable");
    let program = herd_for_anyone(&herd);
    herd.started(&["-c", SLEEPS]);
    // The state directory is 0700, as herd made it.
    let outcome = as_nobody(&herd, &program, &["status"]);
    herd.check(
        &outcome,
        outcome.code() == 4,
        "a herd that is running is reported as not running (LSB: 4 is unknown)",
    );
    herd.stop();
}

fn connect(herd: &Herd) -> UnixStream {
    let stream = UnixStream::connect(herd.socket()).expect("connecting to control.sock");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// A connection past a hello; returns it and the supervisor's hello body.
fn greeted(herd: &Herd) -> (UnixStream, String) {
    let mut stream = connect(herd);
    stream.write_all(&frame(HELLO, b"version=1\n")).unwrap();
    let (kind, body) = read_frame(&mut stream).expect("a hello reply");
    assert_eq!(kind, HELLO, "reply to hello: {body}");
    (stream, body)
}

/// Reads an error frame, then the end of the connection; returns the body.
fn expect_error_and_close(herd: &Herd, stream: &mut UnixStream, what: &str) -> String {
    let reply = read_frame(stream);
    herd.ensure(
        matches!(&reply, Some((ERROR, body)) if body.starts_with("error=")),
        &format!("{what}: expected an error frame, got {reply:?}"),
    );
    let after = read_frame(stream);
    herd.ensure(
        after.is_none(),
        &format!("{what}: the connection stayed open ({after:?})"),
    );
    reply.unwrap().1
}

/// Whether the supervisor still holds the connection open, without waiting:
/// no bytes and no end of stream.
fn still_open(stream: &UnixStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let result = (&*stream).read(&mut [0u8; 1]);
    stream.set_nonblocking(false).unwrap();
    matches!(result, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// `herd status` answers 0 within a few seconds.
fn assert_still_serving(herd: &Herd, what: &str) {
    let asked = Instant::now();
    let outcome = herd.status();
    herd.check(&outcome, outcome.code() == 0, &format!("{what}: status"));
    herd.check(
        &outcome,
        asked.elapsed() < Duration::from_secs(5),
        &format!("{what}: status took {:?}", asked.elapsed()),
    );
}

#[test]
fn silent_and_half_sent_clients_hold_up_nobody() {
    let herd = Herd::new("idle");
    herd.started(&["-c", SLEEPS]);
    let silent = connect(&herd);
    let hello = frame(HELLO, b"version=1\n");
    let mut half = connect(&herd);
    half.write_all(&hello[..2]).unwrap();
    assert_still_serving(&herd, "with a silent and a half-sent client");
    herd.ensure(still_open(&silent), "the silent client was dropped");
    herd.ensure(still_open(&half), "the half-sent client was dropped");
    // The two bytes were kept: the rest of the frame completes a hello.
    half.write_all(&hello[2..]).unwrap();
    let reply = read_frame(&mut half);
    herd.ensure(
        matches!(&reply, Some((HELLO, _))),
        &format!("a frame sent in two pieces: {reply:?}"),
    );
    herd.stop();
}

#[test]
fn bad_frames_get_an_error_and_the_connection_closed() {
    let herd = Herd::new("badframes");
    herd.started(&["-c", SLEEPS]);

    let (mut stream, _) = greeted(&herd);
    stream.write_all(&0x0020_0000u32.to_be_bytes()).unwrap();
    let error = expect_error_and_close(&herd, &mut stream, "an oversized length");
    herd.ensure(error.contains("2097152"), &format!("message: {error}"));
    assert_still_serving(&herd, "after an oversized frame");

    let (mut stream, _) = greeted(&herd);
    stream.write_all(&[0, 0, 0, 0]).unwrap();
    expect_error_and_close(&herd, &mut stream, "a zero length");
    assert_still_serving(&herd, "after a zero-length frame");

    let mut stream = connect(&herd);
    stream.write_all(&frame(HELLO, b"version=2\n")).unwrap();
    let error = expect_error_and_close(&herd, &mut stream, "hello version=2");
    herd.ensure(error.contains("version"), &format!("message: {error}"));

    let mut stream = connect(&herd);
    stream
        .write_all(&frame(REQUEST, b"command=status\n"))
        .unwrap();
    let error = expect_error_and_close(&herd, &mut stream, "a request before hello");
    herd.ensure(error.contains("hello"), &format!("message: {error}"));

    let mut stream = connect(&herd);
    stream.write_all(&0x0020_0000u32.to_be_bytes()).unwrap();
    expect_error_and_close(&herd, &mut stream, "an oversized length before hello");
    assert_still_serving(&herd, "after all of them");
    herd.stop();
}

#[test]
fn a_client_speaking_the_protocol_gets_hello_and_status() {
    let herd = Herd::new("protocol");
    let supervisor = herd.started(&["-c", SLEEPS]);
    let (mut stream, hello) = greeted(&herd);
    herd.ensure(
        hello.lines().any(|l| l == "version=1")
            && hello.lines().any(|l| l == format!("pid={supervisor}"))
            && hello.lines().any(|l| l == "name=g"),
        &format!("hello reply: {hello:?}"),
    );

    stream
        .write_all(&frame(REQUEST, b"command=status\n"))
        .unwrap();
    let reply = read_frame(&mut stream);
    herd.ensure(
        matches!(&reply, Some((OK, body))
            if body.lines().any(|l| l == "processes=1")
                && body.lines().any(|l| l == "process.0.name=s")
                && body.lines().any(|l| l == "process.0.state=running")),
        &format!("status reply: {reply:?}"),
    );

    // A refused request leaves the connection usable.
    stream.write_all(&frame(REQUEST, b"command=fly\n")).unwrap();
    let reply = read_frame(&mut stream);
    herd.ensure(
        matches!(&reply, Some((ERROR, body)) if body.contains("fly")),
        &format!("unknown command: {reply:?}"),
    );
    stream
        .write_all(&frame(REQUEST, b"command=status"))
        .unwrap();
    let reply = read_frame(&mut stream);
    herd.ensure(
        matches!(&reply, Some((OK, body)) if body.starts_with("processes=1\n")),
        &format!("status after an error, without the final newline: {reply:?}"),
    );
    drop(stream);
    herd.stop();
}

#[test]
fn run_with_a_state_dir_serves_clients_and_is_refused_a_second_time() {
    let herd = Herd::new("foreground");
    let running = Running::start(&mut herd.run(&["-c", SLEEPS]));
    herd.wait_for_status("s running", |t| state_of(t, "s") == "running");
    herd.ensure(
        herd.pid_in_file() == Some(running.pid()),
        "the pid file does not name herd run",
    );

    let refusal = format!("herd: g is already running (pid {})\n", running.pid());
    let outcome = run_to_end(&mut herd.run(&["-c", SLEEPS]));
    herd.check(&outcome, outcome.code() == 125, "a second herd run");
    herd.check(&outcome, outcome.stderr == refusal, "message");
    let outcome = run_to_end(&mut herd.start(&["-c", SLEEPS]));
    herd.check(&outcome, outcome.code() == 125, "a herd start");
    herd.check(&outcome, outcome.stderr == refusal, "message");
    herd.wait_for_status("s still running", |t| state_of(t, "s") == "running");

    let outcome = herd.ask(&["stop"]);
    herd.check(&outcome, outcome.code() == 0, "herd stop");
    let outcome = running.finish();
    herd.check(&outcome, outcome.code() == 0, "herd run stopped on request");
    herd.check(
        &outcome,
        outcome.stdout.contains("herd | stop requested: stopping"),
        "the stop in herd run's output",
    );
    for file in ["pid", "control.sock"] {
        herd.ensure(!herd.path(file).exists(), &format!("{file} is left"));
    }
    herd.ensure(herd.processes().is_empty(), "processes are left");
}

#[test]
fn stop_gives_up_waiting_after_its_timeout_and_a_term_then_kills_everything() {
    let herd = Herd::new("stoptimeout");
    let up = herd.scratch("up");
    let web = touches(&up, "while :; do sleep 0.05; done");
    let web = format!("web=trap '' TERM; {web}");
    let supervisor = herd.started(&[
        "--grace",
        "30",
        "-c",
        &web,
        "--ready",
        &format!("web=file:{up}"),
    ]);
    let asked = Instant::now();
    let outcome = herd.ask(&["stop", "--timeout", "0.5"]);
    let took = asked.elapsed();
    herd.check(&outcome, outcome.code() == 1, "stop that timed out");
    herd.check(
        &outcome,
        outcome.stderr == "herd: stop: g still running after 0.5s\n",
        "message",
    );
    herd.check(
        &outcome,
        took >= Duration::from_millis(500) && took < Duration::from_secs(10),
        &format!("stop waited {took:?}"),
    );
    let table = herd.wait_for_status("web stopping", |t| state_of(t, "web") == "stopping");
    herd.ensure(is_alive(pid_of(&table, "web")), "web is gone");

    // As a second Ctrl-C: a stop request while stopping kills everything,
    // well before the 30 s grace.
    send_signal(supervisor, "TERM");
    wait_until(
        "the supervisor to end",
        || !is_alive(supervisor),
        || herd.story(),
    );
    herd.assert_gone(supervisor);
}
