//! Instances as foreman's formation: `-m/--formation`, the `instances=`
//! note, the names `web.1`, `web.2`, their `PS` and `PORT`, and the control
//! commands that address a whole process or one instance.

use crate::util::*;
use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

fn group(args: &[&str]) -> Command {
    let mut command = herd();
    command.arg("run").args(["--color", "never"]).args(args);
    command
}

/// The lines `NAME | text` of `stdout` whose text contains `needle`, as
/// (NAME, text) with the padding removed.
fn lines_with<'a>(stdout: &'a str, needle: &str) -> Vec<(&'a str, &'a str)> {
    stdout
        .lines()
        .filter_map(|line| line.split_once(" | "))
        .map(|(name, text)| (name.trim(), text))
        .filter(|(_, text)| text.contains(needle))
        .collect()
}

/// What each process printed as `ps=... port=...`, in its own name.
fn reports(stdout: &str) -> Vec<String> {
    let mut found: Vec<String> = lines_with(stdout, "ps=")
        .into_iter()
        .map(|(name, text)| format!("{name}: {text}"))
        .collect();
    found.sort();
    found
}

const REPORT: &str = "echo \"ps=$PS port=$PORT\"";

#[test]
fn a_formation_runs_every_instance_named_with_its_ps_and_port() {
    let web = format!("web={REPORT}");
    let worker = format!("worker={REPORT}");
    let outcome = run_to_end(&mut group(&[
        "-c",
        &web,
        "-c",
        &worker,
        "-m",
        "web=2,worker=3",
        "--port-base",
        "6000",
        "--oneshot",
        "web",
        "--oneshot",
        "worker",
    ]));
    outcome.check(outcome.code() == 0, "every oneshot exited 0");
    outcome.check(
        reports(&outcome.stdout)
            == [
                "web.1: ps=web.1 port=6000",
                "web.2: ps=web.2 port=6001",
                "worker.1: ps=worker.1 port=6100",
                "worker.2: ps=worker.2 port=6101",
                "worker.3: ps=worker.3 port=6102",
            ],
        "five processes, each with its own name, PS and PORT",
    );
    outcome.check(
        lines_with(&outcome.stdout, "started (pid").len() == 5,
        "five starts",
    );
}

#[test]
fn a_process_alone_keeps_its_name_and_gets_foremans_ps() {
    let web = format!("web={REPORT}");
    let outcome = run_to_end(&mut group(&["-c", &web, "--port-base", "6000"]));
    outcome.check(outcome.code() == 0, "exit code");
    outcome.check(
        reports(&outcome.stdout) == ["web: ps=web.1 port=6000"],
        "web, with PS=web.1",
    );
}

#[test]
fn the_instances_note_and_all_set_the_counts() {
    let dir = TempDir::new("formation-note");
    let procfile = dir.join("Procfile");
    fs::write(
        &procfile,
        format!(
            "web: {REPORT}  # herd: instances=3 oneshot\n\
             worker: {REPORT}  # herd: oneshot\n"
        ),
    )
    .unwrap();
    let procfile = procfile.to_string_lossy().to_string();
    let outcome = run_to_end(&mut group(&["-f", &procfile]));
    outcome.check(outcome.code() == 0, "exit code");
    outcome.check(
        reports(&outcome.stdout)
            == [
                "web.1: ps=web.1 port=",
                "web.2: ps=web.2 port=",
                "web.3: ps=web.3 port=",
                "worker: ps=worker.1 port=",
            ],
        "the note's three webs and one worker, no PORT without --port-base",
    );
    // all= overrides the note; a process's own count overrides all=.
    let outcome = run_to_end(&mut group(&["-f", &procfile, "-m", "all=2"]));
    outcome.check(
        reports(&outcome.stdout)
            == [
                "web.1: ps=web.1 port=",
                "web.2: ps=web.2 port=",
                "worker.1: ps=worker.1 port=",
                "worker.2: ps=worker.2 port=",
            ],
        "all=2",
    );
    let outcome = run_to_end(&mut group(&["-f", &procfile, "-m", "all=2", "-m", "web=1"]));
    outcome.check(
        reports(&outcome.stdout)
            == [
                "web: ps=web.1 port=",
                "worker.1: ps=worker.1 port=",
                "worker.2: ps=worker.2 port=",
            ],
        "web=1 beside all=2",
    );
}

#[test]
fn a_process_with_0_instances_is_never_started() {
    let dir = TempDir::new("formation-zero");
    let marker = dir.join("worker-ran");
    let worker = format!("worker=touch {}", marker.display());
    let web = format!("web={REPORT}");
    let outcome = run_to_end(&mut group(&[
        "-c",
        &web,
        "-c",
        &worker,
        "-m",
        "worker=0",
        "--port-base",
        "6000",
    ]));
    outcome.check(outcome.code() == 0, "web's exit 0 ends the group");
    outcome.check(!marker.exists(), "worker ran");
    outcome.check(!outcome.stdout.contains("worker"), "worker was mentioned");
    outcome.check(
        reports(&outcome.stdout) == ["web: ps=web.1 port=6000"],
        "web alone",
    );
    // Its block of ports stays its own: the next process's PORT is unmoved.
    let outcome = run_to_end(&mut group(&[
        "-c",
        &worker,
        "-c",
        &web,
        "-m",
        "worker=0",
        "--port-base",
        "6000",
    ]));
    outcome.check(
        reports(&outcome.stdout) == ["web: ps=web.1 port=6100"],
        "web keeps the second block",
    );
    let outcome = run_to_end(&mut group(&["-c", &worker, "-m", "all=0"]));
    outcome.check(outcome.code() == 125, "nothing to run is an error");
    outcome.check(
        outcome.stderr
            == "herd: reading arguments: every process has 0 instances: nothing to run\n",
        "message",
    );
    outcome.check(!marker.exists(), "worker ran");
}

#[test]
fn bad_formations_are_refused_before_anything_starts() {
    let dir = TempDir::new("formation-bad");
    let marker = dir.join("ran");
    let web = format!("web=touch {}", marker.display());
    for (formation, why) in [
        ("wbe=2", "--formation: no process named 'wbe'"),
        (
            "web=-1",
            "--formation: '-1' is not a number of instances (0 to 100)",
        ),
        (
            "web=101",
            "--formation: '101' is more than 100 instances, the most herd runs of one process",
        ),
        (
            "web=18446744073709551616",
            "--formation: '18446744073709551616' is more than 100 instances, the most herd runs of one process",
        ),
        ("web=", "--formation: 'web=' needs a count: web=N"),
        (
            "=2",
            "--formation: '' is not a valid name (letters, digits, '_', '.', '-'; not '.' or '..')",
        ),
        ("web=2,web=3", "--formation: 'web' is given twice"),
        ("web", "--formation: 'web' is not NAME=N"),
        ("web=2,", "--formation: 'web=2,' has an empty entry (NAME=N[,NAME=N...])"),
    ] {
        let outcome = run_to_end(&mut group(&["-c", &web, "-m", formation]));
        outcome.check(outcome.code() == 125, &format!("{formation}: exit code"));
        outcome.check(
            outcome.stderr == format!("herd: reading arguments: {why}\n"),
            &format!("{formation}: message"),
        );
        outcome.check(outcome.stdout.is_empty(), &format!("{formation}: output"));
    }
    let outcome = run_to_end(&mut group(&["-c", &web, "-m", "web=1", "-m", "web=2"]));
    outcome.check(
        outcome.stderr == "herd: reading arguments: --formation: 'web' is given twice\n",
        "twice over two -m",
    );
    let outcome = run_to_end(herd().args(["run", "-m", "web=2", "--", "true"]));
    outcome.check(outcome.code() == 125, "one command: exit code");
    outcome.check(
        outcome.stderr.contains("--formation") && outcome.stderr.contains("need a group"),
        "one command: message",
    );
    let procfile = dir.join("Procfile");
    fs::write(&procfile, "a: true\nweb: true # herd: instances=1000\n").unwrap();
    let outcome = run_to_end(&mut group(&["-f", &procfile.to_string_lossy()]));
    outcome.check(outcome.code() == 125, "note: exit code");
    outcome.check(
        outcome.stderr
            == format!(
                "herd: {}:2: '1000' is more than 100 instances, the most herd runs of one process\n",
                procfile.display()
            ),
        "note: message names the line",
    );
    let outcome = run_to_end(&mut group(&["-c", "web=a", "-c", "web.1=b", "-m", "web=2"]));
    outcome.check(
        outcome.stderr
            == "herd: reading arguments: 'web.1' would name both an instance of 'web' and the process 'web.1'\n",
        "a name that would mean two things",
    );
    outcome.check(!marker.exists(), "something ran");
}

/// Two consecutive free ports on 127.0.0.1: a base for two instances.
fn two_free_ports() -> u16 {
    let until = Instant::now() + DEADLINE;
    loop {
        let base = free_port();
        let both_free = base < u16::MAX
            && TcpListener::bind(("127.0.0.1", base)).is_ok()
            && TcpListener::bind(("127.0.0.1", base + 1)).is_ok();
        if both_free {
            return base;
        }
        assert!(Instant::now() < until, "no two consecutive free ports");
    }
}

#[test]
fn a_tcp_port_ready_check_waits_for_each_instances_own_port() {
    let base = two_free_ports();
    // Only web.2 listens late; were its check on web.1's port, worker
    // would start before web.2 listens and find nothing there.
    let server = "web=exec python3 -c 'import os,socket,time; \
         time.sleep(0.3 if os.environ[\"PS\"] == \"web.2\" else 0); \
         s=socket.socket(); s.bind((\"127.0.0.1\", int(os.environ[\"PORT\"]))); \
         s.listen(); print(\"listening\", flush=True); time.sleep(100)'";
    let client = format!(
        "worker=exec python3 -c 'import socket; \
         socket.create_connection((\"127.0.0.1\", {})); print(\"connected\")'",
        base + 1
    );
    let base = base.to_string();
    let mut herd = Running::start(&mut group(&[
        "-c",
        server,
        "-c",
        &client,
        "-m",
        "web=2",
        "--port-base",
        &base,
        "--ready",
        "web=tcp:$PORT",
        "--oneshot",
        "worker",
    ]));
    herd.expect_line("worker | connected");
    herd.signal("TERM");
    let outcome = herd.finish();
    let at = |needle: &str| {
        outcome
            .stdout
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?}\n{}", outcome.stdout))
    };
    outcome.check(
        at("web.1 is ready") < at("web.2 started") && at("web.2 is ready") < at("worker started"),
        "each instance held back the next until its own port listened",
    );
}

/// A foreground group with a state directory, and its client commands.
struct Group {
    herd: Running,
    dir: PathBuf,
    _tmp: TempDir,
}

impl Group {
    fn start(tag: &str, args: &[&str]) -> Group {
        let tmp = TempDir::new(&format!("formation-{tag}"));
        let dir = tmp.join("g");
        let mut command = group(&[]);
        command.arg("--state-dir").arg(&dir).args(args);
        Group {
            herd: Running::start(&mut command),
            dir,
            _tmp: tmp,
        }
    }

    fn ask(&self, args: &[&str]) -> Outcome {
        run_to_end(herd().args(args).arg("--state-dir").arg(&self.dir))
    }

    /// `herd status` once its table satisfies `condition`.
    fn status_when(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let outcome = self.ask(&["status"]);
            if outcome.status.code() == Some(0) && condition(&outcome.stdout) {
                return outcome.stdout;
            }
            outcome.check(
                Instant::now() < until,
                &format!("waited {DEADLINE:?} for {what}\n{}", self.herd.story()),
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(mut self) {
        let outcome = self.ask(&["stop"]);
        outcome.check(outcome.code() == 0, "herd stop");
        self.herd.wait();
    }
}

fn row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
}

fn state(table: &str, name: &str) -> String {
    row(table, name).map_or("(no row)".to_string(), |cells| cells[1].to_string())
}

fn pid(table: &str, name: &str) -> String {
    row(table, name).map_or("-".to_string(), |cells| cells[2].to_string())
}

fn names(table: &str) -> Vec<&str> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

fn all_running(table: &str) -> bool {
    names(table)
        .iter()
        .all(|name| state(table, name) == "running")
}

#[test]
fn status_shows_a_row_per_instance_and_stop_takes_a_process_or_an_instance() {
    let group = Group::start(
        "stop",
        &[
            "-c",
            "web=exec sleep 100",
            "-c",
            "worker=exec sleep 100",
            "-m",
            "web=2",
        ],
    );
    let table = group.status_when("everything running", all_running);
    assert_eq!(names(&table), ["web.1", "web.2", "worker"], "{table}");
    let web1 = pid(&table, "web.1");

    let outcome = group.ask(&["stop", "web.2"]);
    outcome.check(outcome.code() == 0, "stop web.2");
    let table = group.status_when("web.2 stopped", |t| state(t, "web.2") == "stopped");
    assert_eq!(state(&table, "web.1"), "running", "{table}");
    assert_eq!(pid(&table, "web.1"), web1, "web.1 was touched\n{table}");
    assert_eq!(state(&table, "worker"), "running", "{table}");

    let outcome = group.ask(&["stop", "web"]);
    outcome.check(outcome.code() == 0, "stop web stops what is left of it");
    let table = group.status_when("web.1 stopped", |t| state(t, "web.1") == "stopped");
    assert_eq!(state(&table, "worker"), "running", "{table}");
    let outcome = group.ask(&["stop", "web"]);
    outcome.check(
        outcome.code() == 125 && outcome.stderr.contains("web is not running"),
        "stop web with none running",
    );

    let outcome = group.ask(&["start", "web"]);
    outcome.check(outcome.code() == 0, "start web starts every instance");
    group.status_when("web.1 and web.2 running", all_running);
    let outcome = group.ask(&["stop", "web.3"]);
    outcome.check(
        outcome.code() == 125 && outcome.stderr.contains("no process named 'web.3'"),
        "an instance that does not exist",
    );
    group.stop();
}

#[test]
fn a_restart_of_one_instance_leaves_the_others_alone() {
    let group = Group::start("restart", &["-c", "web=exec sleep 100", "-m", "web=3"]);
    let before = group.status_when("everything running", all_running);
    let outcome = group.ask(&["restart", "web.2"]);
    outcome.check(outcome.code() == 0, "restart web.2");
    let after = group.status_when("web.2 restarted", |t| {
        all_running(t) && pid(t, "web.2") != pid(&before, "web.2")
    });
    for name in ["web.1", "web.3"] {
        assert_eq!(pid(&after, name), pid(&before, name), "{name}\n{after}");
        assert_eq!(
            row(&after, name).unwrap()[4],
            "0",
            "{name}'s restarts\n{after}"
        );
    }
    assert_eq!(row(&after, "web.2").unwrap()[4], "1", "{after}");

    let outcome = group.ask(&["restart", "web"]);
    outcome.check(outcome.code() == 0, "restart web");
    let again = group.status_when("every web restarted", |t| {
        all_running(t)
            && ["web.1", "web.2", "web.3"]
                .iter()
                .all(|name| pid(t, name) != pid(&after, name))
    });
    assert_eq!(names(&again), ["web.1", "web.2", "web.3"], "{again}");
    group.stop();
}

#[test]
fn send_and_signal_address_a_process_or_one_instance() {
    let mut group = Group::start(
        "send",
        &[
            "-c",
            // A HUP interrupts `read`, which then fails: the loop goes on.
            "web=trap 'echo \"$PS got HUP\"' HUP; \
             while :; do if read line; then echo \"$PS got $line\"; fi; done",
            "-m",
            "web=2",
            "--stdin-pipe",
            "web",
        ],
    );
    group.status_when("everything running", all_running);
    let outcome = group.ask(&["send", "web", "hello\n"]);
    outcome.check(
        outcome.code() == 125
            && outcome
                .stderr
                .contains("web has 2 instances (web.1 to web.2): send to one of them"),
        "send to a process of several instances",
    );
    let outcome = group.ask(&["send", "web.2", "hello\n"]);
    outcome.check(outcome.code() == 0, "send to web.2");
    group.herd.expect_line("web.2 | web.2 got hello");
    let outcome = group.ask(&["signal", "web", "HUP"]);
    outcome.check(outcome.code() == 0, "signal web");
    group.herd.expect_line("web.1 | web.1 got HUP");
    group.herd.expect_line("web.2 | web.2 got HUP");
    let outcome = group.ask(&["send", "web.1", "bye\n"]);
    outcome.check(outcome.code() == 0, "send to web.1");
    group.herd.expect_line("web.1 | web.1 got bye");
    group.stop();
}

/// A detached herd of this test, SIGKILLed with its tree on drop should
/// the test fail before `herd stop`.
struct Detached(PathBuf);

impl Drop for Detached {
    fn drop(&mut self) {
        let pid = fs::read_to_string(self.0.join("pid")).ok();
        if let Some(pid) = pid.and_then(|text| text.trim().parse().ok()) {
            kill_with_tree(pid);
        }
    }
}

#[test]
fn herd_start_runs_the_formation_and_returns_once_every_instance_is_up() {
    let tmp = TempDir::new("formation-start");
    let dir = tmp.join("g");
    let detached = Detached(dir.clone());
    let client = |args: &[&str]| run_to_end(herd().args(args).arg("--state-dir").arg(&dir));
    let outcome = run_to_end(
        herd()
            .args(["start", "--settle", "0.1", "--state-dir"])
            .arg(&dir)
            .args(["-c", "web=exec sleep 100", "-c", "worker=exec sleep 100"])
            .args(["--formation", "web=2", "-m", "worker=0"]),
    );
    outcome.check(outcome.code() == 0, "herd start");
    let status = client(&["status"]);
    outcome.check(
        names(&status.stdout) == ["web.1", "web.2"] && all_running(&status.stdout),
        &format!("status after start:\n{}", status.stdout),
    );
    let stopped = client(&["stop"]);
    stopped.check(stopped.code() == 0, "herd stop");
    drop(detached);
}
