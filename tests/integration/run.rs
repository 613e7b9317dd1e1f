//! `herd run -- CMD`: exit codes, signal forwarding, reaping, grace, fds.

use crate::util::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn herd_run_sh(script: &str) -> Command {
    let mut command = herd();
    command.args(["run", "--", "sh", "-c", script]);
    command
}

#[test]
fn every_exit_code_passes_through() {
    for code in 0..=255 {
        let outcome = run_to_end(&mut herd_run_sh(&format!("exit {code}")));
        outcome.check(outcome.code() == code, &format!("exit {code}"));
        outcome.check(outcome.stderr.is_empty(), "herd said something");
    }
}

#[test]
fn death_by_signal_gives_128_plus_n() {
    for (name, number) in [("TERM", 15), ("KILL", 9), ("USR1", 10), ("SEGV", 11)] {
        let outcome = run_to_end(&mut herd_run_sh(&format!("ulimit -c 0; kill -{name} $$")));
        outcome.check(
            outcome.code() == 128 + number,
            &format!("death by SIG{name}"),
        );
    }
}

#[test]
fn a_missing_command_gives_127_with_its_name() {
    let outcome = run_to_end(herd().args(["run", "herd-no-such-command"]));
    outcome.check(outcome.code() == 127, "exit code");
    outcome.check(
        outcome.stderr == "herd: executing herd-no-such-command: command not found\n",
        "message",
    );
    let outcome = run_to_end(herd().args(["run", "/nonexistent/tool"]));
    outcome.check(outcome.code() == 127, "exit code for a path");
    outcome.check(
        outcome.stderr == "herd: executing /nonexistent/tool: no such file or directory\n",
        "message for a path",
    );
}

#[test]
fn a_command_that_cannot_be_executed_gives_126() {
    let dir = TempDir::new("noexec");
    let script = dir.join("not-executable");
    fs::write(&script, "#!/bin/sh\necho never\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let outcome = run_to_end(herd().arg("run").arg(&script));
    outcome.check(outcome.code() == 126, "exit code");
    let expected = format!("herd: executing {}: permission denied\n", script.display());
    outcome.check(outcome.stderr == expected, "message");
    outcome.check(outcome.stdout.is_empty(), "the script ran");
}

#[test]
fn a_bad_flag_gives_125_and_names_the_flag() {
    let outcome = run_to_end(herd().args(["run", "--no-such-flag", "true"]));
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr.contains("'--no-such-flag'"),
        "names the flag",
    );
    outcome.check(outcome.stderr.lines().count() == 1, "one line");
    let outcome = run_to_end(herd().args(["run", "--grace", "soon", "true"]));
    outcome.check(outcome.code() == 125, "bad value exit code");
    let outcome = run_to_end(herd().arg("run"));
    outcome.check(outcome.code() == 125, "missing command exit code");
}

#[test]
fn the_childs_own_flags_are_not_parsed() {
    let outcome = run_to_end(herd().args(["run", "sh", "-c", "echo $0 $1", "-v", "--help"]));
    outcome.check(outcome.code() == 0, "exit code");
    outcome.check(outcome.stdout == "-v --help\n", "argv reached the child");
}

#[test]
fn help_and_version() {
    let outcome = run_to_end(herd().arg("--help"));
    outcome.check(
        outcome.code() == 0 && outcome.stdout.contains("herd run"),
        "--help",
    );
    let outcome = run_to_end(herd().args(["run", "--help"]));
    outcome.check(outcome.stdout.contains("--grace [NAME=]SECS"), "run --help");
    let outcome = run_to_end(herd().arg("--version"));
    let expected = format!("herd {}\n", env!("CARGO_PKG_VERSION"));
    outcome.check(outcome.stdout == expected, "--version");
}

#[test]
fn each_signal_reaches_the_child() {
    let names = ["HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "TERM"];
    let script = "for s in HUP INT QUIT USR1 USR2 WINCH; do trap \"echo got $s\" $s; done
        trap 'echo got TERM; exit 0' TERM
        echo ready
        while :; do sleep 0.05; done";
    let mut herd = Running::start(&mut herd_run_sh(script));
    herd.expect_line("ready");
    for name in names {
        herd.signal(name);
        herd.expect_line(&format!("got {name}"));
    }
    let status = herd.wait();
    assert_eq!(status.code(), Some(0), "{}", herd.story());
}

#[test]
fn group_signal_reaches_a_grandchild() {
    let script = "sh -c 'trap \"echo grandchild got USR1; exit 0\" USR1
            echo grandchild ready; while :; do sleep 0.05; done' &
        trap 'echo child got USR1' USR1
        echo child ready
        while :; do sleep 0.05; done";
    let mut herd = Running::start(herd().args(["run", "-g", "--", "sh", "-c", script]));
    herd.expect_line("grandchild ready");
    herd.expect_line("child ready");
    herd.signal("USR1");
    // The two lines come from two processes, in either order.
    let first = herd.expect_line("got USR1");
    let other = if first.starts_with("child") {
        "grandchild got"
    } else {
        "child got"
    };
    herd.expect_line(other);
    herd.signal("TERM");
    let status = herd.wait();
    assert_eq!(status.code(), Some(128 + 15), "{}", herd.story());
}

#[test]
fn without_group_signal_only_the_child_is_signalled() {
    // The grandchild numbers the USR1s it gets; the child passes one on for
    // each USR2. Had herd sent USR1 to the group, the count would be ahead.
    let script = "sh -c 'n=0; trap \"n=\\$((n+1)); echo grandchild USR1 number \\$n\" USR1
            echo grandchild ready; while :; do sleep 0.05; done' &
        trap 'echo child got USR1' USR1
        trap 'kill -USR1 $!' USR2
        echo child ready
        while :; do sleep 0.05; done";
    let mut herd = Running::start(&mut herd_run_sh(script));
    herd.expect_line("grandchild ready");
    herd.expect_line("child ready");
    herd.signal("USR1");
    herd.expect_line("child got USR1");
    for expected in ["grandchild USR1 number 1", "grandchild USR1 number 2"] {
        herd.signal("USR2");
        let line = herd.expect_line("grandchild USR1 number");
        assert_eq!(line, expected, "{}", herd.story());
    }
    herd.signal("TERM");
    herd.wait();
}

/// herd escalated to SIGKILL, `took` after the stop began: not before the
/// grace ran out, and not long after.
fn assert_killed_after_grace(herd: &Running, took: Duration, grace: Duration) {
    let story = herd.story();
    assert!(
        took >= grace,
        "killed after {took:?}, grace {grace:?}\n{story}"
    );
    assert!(
        took < grace + Duration::from_secs(5),
        "took {took:?}\n{story}"
    );
    // herd has exited, but its last line may still be on its way through
    // the pipe to the test's stderr reader.
    herd.expect_stderr("herd's SIGKILL note", |stderr| {
        stderr.contains("sending SIGKILL")
    });
}

#[test]
fn a_child_ignoring_term_is_killed_after_the_grace_and_not_before() {
    let script = "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done";
    let args = ["run", "-v", "--grace", "1", "--", "sh", "-c", script];
    let mut herd = Running::start(herd().args(args));
    herd.expect_line("ready");
    let sent = Instant::now();
    herd.signal("TERM");
    herd.expect_line("got TERM");
    let status = herd.wait();
    assert_eq!(status.code(), Some(128 + 9), "{}", herd.story());
    assert_killed_after_grace(&herd, sent.elapsed(), Duration::from_secs(1));
}

#[test]
fn when_the_child_exits_its_group_is_stopped() {
    let script = "(trap 'echo grandchild got TERM; exit 0' TERM
            echo grandchild ready; while :; do sleep 0.05; done) &
        read line; exit 7";
    let mut herd = Running::start(&mut herd_run_sh(script));
    herd.expect_line("grandchild ready");
    herd.close_stdin();
    herd.expect_line("grandchild got TERM");
    let status = herd.wait();
    assert_eq!(status.code(), Some(7), "{}", herd.story());
}

#[test]
fn a_group_member_ignoring_the_stop_signal_is_killed_after_the_grace() {
    let script = "(trap '' TERM; echo grandchild ready; while :; do sleep 0.05; done) &
        read line; exit 3";
    let args = ["run", "-v", "--grace", "0.5", "--", "sh", "-c", script];
    let mut herd = Running::start(herd().args(args));
    herd.expect_line("grandchild ready");
    let closed = Instant::now();
    herd.close_stdin();
    let status = herd.wait();
    assert_eq!(status.code(), Some(3), "{}", herd.story());
    assert_killed_after_grace(&herd, closed.elapsed(), Duration::from_millis(500));
}

#[test]
fn orphans_are_adopted_and_reaped_when_not_pid_1() {
    let script = "for i in $(seq 20); do (sleep 1000 &); done; echo spawned; read line; exit 0";
    let mut herd = Running::start(herd().args(["run", "-v", "--", "sh", "-c", script]));
    herd.expect_line("spawned");
    let herd_pid = herd.pid();
    let adopted = || {
        children_of(herd_pid)
            .into_iter()
            .filter(|&pid| process_name(pid) == "sleep")
            .collect::<Vec<_>>()
    };
    wait_until(
        "20 adopted sleeps",
        || adopted().len() == 20,
        || herd.story(),
    );
    Command::new("kill")
        .args(adopted().iter().map(u32::to_string))
        .status()
        .unwrap();
    herd.expect_stderr("20 reaped orphans", |err| {
        err.matches("reaped adopted pid").count() == 20
    });
    assert_eq!(zombie_children(herd_pid), 0, "{}", herd.story());
    herd.close_stdin();
    assert_eq!(herd.wait().code(), Some(0), "{}", herd.story());
}

#[test]
fn without_subreaper_orphans_are_not_adopted() {
    let script = "(sleep 1000 &); echo spawned; read line; exit 0";
    let args = ["run", "--no-subreaper", "--", "sh", "-c", script];
    let mut herd = Running::start(herd().args(args));
    herd.expect_line("spawned");
    let names: Vec<String> = children_of(herd.pid())
        .into_iter()
        .map(process_name)
        .collect();
    assert_eq!(names, ["sh"], "{}", herd.story());
    // The orphan is still in the child's process group: it is stopped with it.
    herd.close_stdin();
    assert_eq!(herd.wait().code(), Some(0), "{}", herd.story());
}

/// Starts `pid1_command` as PID 1 of a new PID namespace; its script makes
/// 100 orphans that exit at once, then prints `spawned` and waits on stdin.
fn namespace_with_orphans(pid1_command: &[&str]) -> (Running, u32) {
    let mut unshare = Command::new("unshare");
    unshare
        .args(["--pid", "--fork", "--kill-child"])
        .args(pid1_command);
    let running = Running::start(&mut unshare);
    let unshare_pid = running.pid();
    let init = || children_of(unshare_pid).into_iter().next();
    wait_until(
        "the namespace's PID 1",
        || init().is_some(),
        || running.story(),
    );
    let init = init().unwrap();
    (running, init)
}

const ORPHAN_SCRIPT: &str =
    "for i in $(seq 100); do (sleep 0 &); done; echo spawned; read line; exit 0";

#[test]
fn as_pid_1_herd_reaps_every_orphan() {
    if !runs_as_root("a PID namespace") {
        return;
    }
    let herd_path = herd_path();
    let (mut namespace, init) =
        namespace_with_orphans(&[herd_path, "run", "-v", "--", "sh", "-c", ORPHAN_SCRIPT]);
    namespace.expect_line("spawned");
    namespace.expect_stderr("100 orphans reaped", |err| {
        err.matches("reaped adopted pid").count() == 100
    });
    assert_eq!(zombie_children(init), 0, "{}", namespace.story());
    // Signals reach PID 1 herd (the kernel drops signals to an init that has no
    // handler, but herd waits for them) and are forwarded.
    // unshare(1) ignores TERM itself: signal herd, its child, directly.
    send_signal(init, "TERM");
    assert_eq!(
        namespace.wait().code(),
        Some(128 + 15),
        "{}",
        namespace.story()
    );
}

#[test]
fn as_pid_1_a_plain_sleep_leaves_zombies() {
    if !runs_as_root("a PID namespace") {
        return;
    }
    // The control for the test above: the same orphans under an init that
    // never reaps stay zombies, so the zombie count is a real measure.
    let script = format!("sh -c '{ORPHAN_SCRIPT}' & exec sleep 1000");
    let (mut namespace, init) = namespace_with_orphans(&["sh", "-c", &script]);
    namespace.expect_line("spawned");
    wait_until(
        "100 zombies",
        || zombie_children(init) >= 100,
        || namespace.story(),
    );
}

#[test]
fn as_pid_1_herd_stops_processes_that_left_the_group_before_exiting() {
    if !runs_as_root("a PID namespace") {
        return;
    }
    let script = "setsid sh -c 'trap \"echo daemon got TERM; exit 0\" TERM
            echo daemon ready; while :; do sleep 0.05; done' &
        read line; exit 0";
    let herd_path = herd_path();
    let (mut namespace, _) = namespace_with_orphans(&[herd_path, "run", "--", "sh", "-c", script]);
    namespace.expect_line("daemon ready");
    namespace.close_stdin();
    namespace.expect_line("daemon got TERM");
    assert_eq!(namespace.wait().code(), Some(0), "{}", namespace.story());
}

#[test]
fn the_child_gets_only_the_standard_fds() {
    let close_all =
        "for fd in /proc/$$/fd/*; do n=${fd##*/}; [ $n -gt 2 ] && eval \"exec $n>&-\"; done";
    // No pipe in the listing shell: it would hold the pipe's fds while ls runs.
    let list = "ls /proc/\\$\\$/fd";
    let herd = herd_path();
    let script = format!("{close_all}; exec {herd} run -- sh -c \"{list}\"");
    let outcome = run_to_end(Command::new("bash").args(["-c", &script]));
    outcome.check(outcome.stdout == "0\n1\n2\n", "fds other than 0, 1, 2");
    // What herd itself inherited, it passes on: herd is transparent.
    let script = format!("{close_all}; exec 7</dev/null; exec {herd} run -- sh -c \"{list}\"");
    let outcome = run_to_end(Command::new("bash").args(["-c", &script]));
    outcome.check(outcome.stdout == "0\n1\n2\n7\n", "the inherited fd 7");
}

#[test]
fn a_closed_standard_fd_is_dev_null_for_herd_and_the_child() {
    // Without it, the first file herd opens would become its stdin or stdout.
    let herd = herd_path();
    let script = format!("exec <&- {herd} run -- readlink /proc/self/fd/0");
    let outcome = run_to_end(Command::new("sh").args(["-c", &script]));
    outcome.check(outcome.stdout == "/dev/null\n", "the child's fd 0");
}

#[test]
fn writing_to_a_closed_pipe_does_not_kill_herd() {
    // The only reader of this pipe has exited: herd's write gets EPIPE.
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("true starts");
    let write_end = reader.stdin.take().expect("a pipe to true");
    reader.wait().expect("true exits");
    let output = herd()
        .arg("--help")
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("herd starts");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn the_child_gets_an_empty_mask_and_default_dispositions() {
    let herd = herd_path();
    // herd's caller ignores HUP and PIPE: the child must not inherit that.
    let script = format!("trap '' HUP PIPE; exec {herd} run -- cat /proc/self/status");
    let outcome = run_to_end(Command::new("sh").args(["-c", &script]));
    let field = |name: &str| {
        outcome
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    outcome.check(field("SigBlk:") == "0000000000000000", "blocked signals");
    outcome.check(field("SigIgn:") == "0000000000000000", "ignored signals");
}

#[test]
fn a_closed_pipe_ends_the_child_but_never_herd_with_a_message() {
    let herd = herd_path();
    let script = format!(
        "{herd} run -- yes 2>herd-stderr | head -1; echo ${{PIPESTATUS[0]}}; cat herd-stderr"
    );
    let dir = TempDir::new("sigpipe");
    let outcome = run_to_end(
        Command::new("bash")
            .current_dir(&dir.0)
            .args(["-c", &script]),
    );
    outcome.check(
        outcome.stdout == "y\n141\n",
        "yes died of SIGPIPE, herd said nothing",
    );
}

#[test]
fn the_child_owns_the_terminal_when_herd_does() {
    // script(1) gives herd a pseudo-terminal on stdin, herd in its foreground.
    let herd = herd_path();
    let inner = format!("{herd} run -- cat /proc/self/stat");
    let outcome = run_to_end(&mut under_terminal(&inner));
    let stat = outcome
        .stdout
        .lines()
        .find(|l| l.contains("(cat)"))
        .unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or("", |p| p.1)
        .split(' ')
        .collect();
    outcome.check(fields.len() > 5, "no /proc/self/stat line");
    let (pid, pgrp, tpgid) = (stat.split(' ').next().unwrap(), fields[2], fields[5]);
    outcome.check(pgrp == pid, "the child leads its own process group");
    outcome.check(
        tpgid == pgrp,
        "the child's group is the terminal's foreground",
    );
}

#[test]
fn verbose_logs_the_decisions() {
    let outcome = run_to_end(herd().args(["run", "-v", "--", "sh", "-c", "exit 4"]));
    outcome.check(outcome.code() == 4, "exit code");
    outcome.check(outcome.stderr.contains("herd: spawned pid"), "spawn logged");
    outcome.check(outcome.stderr.contains("(exit 4)"), "reaping logged");
}

/// Every descendant of `pid` whose command name is `name`.
fn descendants_named(pid: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        for child in children_of(next) {
            if process_name(child) == name {
                found.push(child);
            }
            queue.push(child);
        }
    }
    found
}

#[test]
fn a_stopped_child_stops_herd_and_a_continued_herd_resumes_it() {
    // Under a pseudo-terminal herd hands the terminal to its child; when the
    // child stops (as with Ctrl-Z), herd stops too so that its parent sees the
    // job stopped, and continuing herd resumes the child.
    let inner = format!(
        "{} run -- sh -c 'echo ready; read line; echo resumed'",
        herd_path()
    );
    let mut terminal = Running::start(&mut under_terminal(&inner));
    terminal.expect_line("ready");
    let herd_pid = descendants_named(terminal.pid(), "herd")[0];
    let child = children_of(herd_pid).into_iter().next().unwrap();
    send_signal(child, "TSTP");
    wait_until(
        "herd to stop",
        || process_state(herd_pid) == Some('T'),
        || terminal.story(),
    );
    // script(1) treats herd as its job: it stops when herd stops, and its
    // SIGCONT (as from a shell's `fg`) continues herd, which resumes the child.
    let script_pid = terminal.pid();
    wait_until(
        "script to see its job stopped",
        || process_state(script_pid) == Some('T'),
        || terminal.story(),
    );
    send_signal(script_pid, "CONT");
    wait_until(
        "the child to resume",
        || process_state(child).is_some_and(|s| s != 'T') && process_state(herd_pid) != Some('T'),
        || terminal.story(),
    );
    terminal.write_stdin("go\n");
    terminal.expect_line("resumed");
    assert_eq!(terminal.wait().code(), Some(0), "{}", terminal.story());
}

#[test]
fn as_pid_1_a_group_also_stops_processes_that_left_its_groups() {
    if !runs_as_root("a PID namespace") {
        return;
    }
    let daemon = "d=setsid sh -c 'trap \"echo daemon got TERM; exit 0\" TERM
            echo daemon ready; while :; do sleep 0.05; done' &
        read line; exit 0";
    let herd_path = herd_path();
    let (mut namespace, _) = namespace_with_orphans(&[
        herd_path, "run", "--color", "never", "--stdin", "d", "-c", daemon,
    ]);
    namespace.expect_line("daemon ready");
    namespace.close_stdin();
    namespace.expect_line("daemon got TERM");
    assert_eq!(namespace.wait().code(), Some(0), "{}", namespace.story());
}
