//! The stop budget (`--stop-deadline`, `HERD_STOP_DEADLINE`), the termination
//! log, and signals blocked from herd's first instruction: through the real
//! binary, timed with the clock, never with a sleep.

use crate::util::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process that ignores SIGTERM (so does the `sleep` it becomes: an
/// ignored signal stays ignored across exec) and says so once it does.
const IGNORES_TERM: &str = "trap '' TERM; echo ignoring; exec sleep 1000";

/// `herd run --color never ARGS`, carrying `marker`.
fn marked_run(marker: &Marker, args: &[&str]) -> Command {
    let mut command = herd();
    marker.apply(&mut command);
    command.args(["run", "--color", "never"]).args(args);
    command
}

/// Sends SIGTERM to a herd whose processes all said `ignoring`; returns
/// how long it took to exit, from just before the signal, and its outcome.
fn stop_and_time(mut running: Running, processes: usize) -> (Duration, Outcome) {
    for _ in 0..processes {
        running.expect_line("ignoring");
    }
    let asked = Instant::now();
    running.signal("TERM");
    let status = running.wait();
    let took = asked.elapsed();
    (took, running.outcome(status))
}

#[test]
fn four_processes_that_ignore_term_are_all_killed_at_a_deadline_of_9s() {
    let marker = Marker::new("deadline");
    let mut args = vec!["--grace", "10", "--stop-deadline", "9"];
    let commands: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| format!("{name}={IGNORES_TERM}"))
        .collect();
    for command in &commands {
        args.extend(["-c", command]);
    }
    let running = Running::start(&mut marked_run(&marker, &args));
    let (took, outcome) = stop_and_time(running, 4);
    outcome.check(
        took >= Duration::from_millis(8700) && took <= Duration::from_millis(9300),
        &format!("gone in {took:?}, not 9 s +- 0.3 s"),
    );
    for name in ["a", "b", "c", "d"] {
        let said = format!("{name} still running at the stop deadline (9s): sending SIGKILL");
        let count = outcome.stdout.matches(&said).count();
        outcome.check(count == 1, &format!("{said:?} said {count} times"));
    }
    outcome.check(
        outcome.stdout.contains("stopping d (SIGTERM)") && !outcome.stdout.contains("stopping c"),
        "d was asked first and the deadline came during its grace",
    );
    outcome.check(
        !outcome.stdout.contains("grace: sending"),
        "no grace ran out",
    );
    outcome.check(outcome.code() == 137, "the first process was killed");
    outcome.check(marker.processes().is_empty(), "nothing is left");
}

#[test]
fn herd_stop_deadline_sets_the_budget_and_the_flag_wins_over_it() {
    let marker = Marker::new("deadline-env");
    let group = format!("web={IGNORES_TERM}");
    let timed = |env: &str, flags: &[&str]| {
        let mut args = vec!["--grace", "30"];
        args.extend(flags);
        args.extend(["-c", &group]);
        let mut command = marked_run(&marker, &args);
        command.env("HERD_STOP_DEADLINE", env);
        stop_and_time(Running::start(&mut command), 1)
    };
    let about_a_second =
        |took: Duration| took >= Duration::from_millis(700) && took <= Duration::from_millis(3000);
    let (took, outcome) = timed("1", &[]);
    outcome.check(
        about_a_second(took),
        &format!("HERD_STOP_DEADLINE=1: {took:?}"),
    );
    outcome.check(
        outcome
            .stdout
            .contains("web still running at the stop deadline (1s): sending SIGKILL"),
        "said",
    );
    let (took, outcome) = timed("60", &["--stop-deadline", "1"]);
    outcome.check(about_a_second(took), &format!("the flag's 1 s: {took:?}"));
    // Empty is unset: the grace of 30 s would apply, so stop it twice.
    let mut command = marked_run(&marker, &["--grace", "30", "-c", &group]);
    command.env("HERD_STOP_DEADLINE", "");
    let mut running = Running::start(&mut command);
    running.expect_line("ignoring");
    running.signal("TERM");
    running.expect_line("stopping web (SIGTERM)");
    running.signal("TERM");
    running.expect_line("got SIGTERM while stopping: killing everything");
    let outcome = running.finish();
    outcome.check(
        !outcome.stdout.contains("stop deadline"),
        "no deadline from an empty HERD_STOP_DEADLINE",
    );
    for bad in ["soon", "-1", "1e19"] {
        let mut command = marked_run(&marker, &["--", "true"]);
        command.env("HERD_STOP_DEADLINE", bad);
        let outcome = run_to_end(&mut command);
        outcome.check(outcome.code() == 125, bad);
        outcome.check(
            outcome.stderr.starts_with(&format!(
                "herd: reading arguments: HERD_STOP_DEADLINE: '{bad}'"
            )),
            bad,
        );
        // The flag wins: a bad variable is not even read.
        let mut command = marked_run(&marker, &["--stop-deadline", "5", "--", "true"]);
        command.env("HERD_STOP_DEADLINE", bad);
        let outcome = run_to_end(&mut command);
        outcome.check(outcome.code() == 0, bad);
    }
}

#[test]
fn a_single_command_that_ignores_term_is_killed_at_the_deadline_not_after_its_grace() {
    let marker = Marker::new("deadline-single");
    let mut command = marked_run(
        &marker,
        &[
            "-v",
            "--grace",
            "30",
            "--stop-deadline",
            "1",
            "--",
            "sh",
            "-c",
            IGNORES_TERM,
        ],
    );
    let (took, outcome) = stop_and_time(Running::start(&mut command), 1);
    outcome.check(
        took >= Duration::from_millis(700) && took <= Duration::from_millis(3000),
        &format!("gone in {took:?}"),
    );
    outcome.check(outcome.code() == 137, "its own status: SIGKILL");
    outcome.check(
        outcome
            .stderr
            .contains("stop deadline (1s) ran out: sending SIGKILL"),
        "said with -v",
    );
    outcome.check(marker.processes().is_empty(), "nothing is left");
}

#[test]
fn a_deadline_of_zero_kills_at_once_and_hostile_values_are_refused() {
    let marker = Marker::new("deadline-zero");
    let group = format!("web={IGNORES_TERM}");
    let running = Running::start(&mut marked_run(
        &marker,
        &["--grace", "30", "--stop-deadline", "0", "-c", &group],
    ));
    let (took, outcome) = stop_and_time(running, 1);
    outcome.check(took < Duration::from_secs(2), &format!("{took:?}"));
    outcome.check(outcome.code() == 137, "killed");
    for bad in ["-1", "nan", "inf", "1e19", "", "9s", "0x10"] {
        let outcome = run_to_end(&mut marked_run(
            &marker,
            &["--stop-deadline", bad, "--", "true"],
        ));
        outcome.check(outcome.code() == 125, bad);
        outcome.check(
            outcome
                .stderr
                .starts_with("herd: reading arguments: --stop-deadline: "),
            bad,
        );
    }
    // A year is taken, and changes nothing for a stop that is quick.
    let outcome = run_to_end(&mut marked_run(
        &marker,
        &["--stop-deadline", "31536000", "--", "sh", "-c", "exit 4"],
    ));
    outcome.check(outcome.code() == 4, "a year");
}

// --- the termination log -------------------------------------------------

/// Runs `herd run --termination-log LOG ARGS` to its end; returns the
/// outcome and what the log holds.
fn run_logging(dir: &TempDir, args: &[&str]) -> (Outcome, String) {
    let log = dir.join("termination-log");
    let mut command = herd();
    command
        .args(["run", "--termination-log"])
        .arg(&log)
        .args(args);
    let outcome = run_to_end(&mut command);
    let text = text_or_why(&log);
    (outcome, text)
}

#[test]
fn the_termination_log_says_why_after_a_crash_a_give_up_and_a_requested_stop() {
    let dir = TempDir::new("termination-log");
    let log = dir.join("termination-log");
    // What was there (a longer message of a run before) is replaced.
    fs::write(&log, "x".repeat(10_000)).unwrap();
    let (outcome, text) = run_logging(&dir, &["-c", "db=sleep 1000", "-c", "web=exit 3"]);
    outcome.check(outcome.code() == 3, "the crash's code");
    outcome.check(
        text == "web ended (exit 3)\n",
        &format!("after a crash: {text:?}"),
    );

    let (outcome, text) = run_logging(
        &dir,
        &[
            "--restart",
            "always",
            "--start-limit",
            "2",
            "--backoff-min",
            "0.01",
            "-c",
            "web=exit 1",
        ],
    );
    outcome.check(outcome.code() == 1, "the last run's code");
    outcome.check(
        text == "web: gave up after 2 restarts in 60s\n",
        &format!("after a give-up: {text:?}"),
    );

    let mut command = herd();
    command
        .args(["run", "--termination-log"])
        .arg(&log)
        .args(["-c", "web=echo up; exec sleep 1000"]);
    let mut running = Running::start(&mut command);
    running.expect_line("up");
    running.signal("TERM");
    let outcome = running.finish();
    outcome.check(outcome.code() == 0, "a clean stop");
    let text = text_or_why(&log);
    outcome.check(
        text == "stopped on request\n",
        &format!("after a stop: {text:?}"),
    );

    let (outcome, text) = run_logging(&dir, &["--", "sh", "-c", "exit 4"]);
    outcome.check(outcome.code() == 4, "one command");
    outcome.check(
        text == "sh ended (exit 4)\n",
        &format!("one command: {text:?}"),
    );
}

#[test]
fn the_termination_log_holds_herds_own_failure_as_stderr_says_it() {
    let dir = TempDir::new("termination-failure");
    let missing = dir.join("no-Procfile");
    let (outcome, text) = run_logging(&dir, &["-f", missing.to_str().unwrap()]);
    outcome.check(outcome.code() == 125, "herd's failure");
    let said = outcome.stderr.strip_prefix("herd: ").unwrap_or_default();
    outcome.check(
        !said.is_empty() && text == said,
        &format!("the log {text:?} is stderr's line {said:?}"),
    );
    let (outcome, text) = run_logging(&dir, &["--", "no-such-command-anywhere"]);
    outcome.check(outcome.code() == 127, "not found");
    outcome.check(
        text == "executing no-such-command-anywhere: command not found\n",
        &format!("{text:?}"),
    );
}

#[test]
fn a_termination_log_herd_cannot_write_is_refused_before_anything_runs() {
    let dir = TempDir::new("termination-refused");
    let ran = dir.join("ran");
    let touch = format!("touch {}", ran.display());
    let fifo = dir.join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success() && fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let cases = [
        (dir.join("missing/log"), "no such file or directory"),
        (dir.0.clone(), "is a directory"),
        // A FIFO nobody reads: refused at once, not waited on.
        (fifo, "no such device or address"),
    ];
    for (path, cause) in cases {
        let asked = Instant::now();
        let outcome = run_to_end(
            herd()
                .args(["run", "--termination-log"])
                .arg(&path)
                .args(["--", "sh", "-c", &touch]),
        );
        outcome.check(outcome.code() == 125, &format!("{}", path.display()));
        let expected = format!(
            "herd: opening the termination log {}: {cause}\n",
            path.display()
        );
        outcome.check(outcome.stderr == expected, &format!("wanted {expected:?}"));
        outcome.check(!ran.exists(), "nothing ran");
        outcome.check(asked.elapsed() < Duration::from_secs(5), "at once");
    }
}

#[test]
fn a_termination_log_that_is_herds_own_output_gets_the_line_added_not_emptied() {
    let dir = TempDir::new("termination-stdout");
    let output = dir.join("output");
    fs::write(&output, "before\n").unwrap();
    // stdout appends to the file, as a shell's `>>` (or herd start's log).
    let mut appending = Command::new("sh");
    appending.env("HERD_TEST_OUTPUT", &output).args([
        "-c",
        "exec \"$0\" \"$@\" >>\"$HERD_TEST_OUTPUT\"",
        herd_path(),
        "run",
        "--termination-log",
        "/dev/stdout",
        "--",
        "sh",
        "-c",
        "echo child; exit 5",
    ]);
    let outcome = run_to_end(&mut appending);
    outcome.check(outcome.code() == 5, "the command's code");
    let text = text_or_why(&output);
    outcome.check(
        text == "before\nchild\nsh ended (exit 5)\n",
        &format!("herd's output is kept: {text:?}"),
    );
}

#[test]
fn a_relative_termination_log_of_herd_start_is_where_start_ran_not_its_chdir() {
    let dir = TempDir::new("termination-start");
    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let marker = Marker::new("termination-start");
    let mut start = herd();
    marker.apply(&mut start);
    start
        .current_dir(&dir.0)
        .args(["start", "--state-dir", "state", "--chdir"])
        .arg(&elsewhere)
        .args(["--termination-log", "why", "-c", "web=sleep 1000"]);
    let outcome = run_to_end(&mut start);
    outcome.check(outcome.code() == 0, "started");
    let mut stop = herd();
    stop.current_dir(&dir.0)
        .args(["stop", "--state-dir", "state"]);
    let stopped = run_to_end(&mut stop);
    stopped.check(stopped.code() == 0, "stopped");
    let text = text_or_why(&dir.join("why"));
    stopped.check(text == "stopped on request\n", &format!("{text:?}"));
    stopped.check(!elsewhere.join("why").exists(), "not in --chdir");
}

/// Runs `script` as PID 1 of new PID and mount namespaces (unshare(1));
/// the script can bind a directory of its own over /dev there without the
/// host seeing it. `None` when herd's tests do not run as root.
fn as_pid_1_with_own_dev(dir: &TempDir, with_log: bool, pid_namespace: bool) -> Option<Outcome> {
    if !is_root() {
        eprintln!("skipped: a PID and mount namespace needs root");
        return None;
    }
    let dev = dir.join("dev");
    fs::create_dir(&dev).unwrap();
    fs::write(dev.join("null"), "").unwrap();
    if with_log {
        fs::write(dev.join("termination-log"), "").unwrap();
    }
    let script = format!(
        "mount --bind /dev/null {dev}/null && mount --bind {dev} /dev && exec {herd} run -- sh -c 'exit 7'",
        dev = dev.display(),
        herd = herd_path()
    );
    let mut unshare = Command::new("unshare");
    unshare.arg("--mount");
    if pid_namespace {
        unshare.args(["--pid", "--fork", "--kill-child"]);
    }
    Some(run_to_end(unshare.args(["sh", "-c", &script])))
}

fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn as_pid_1_herd_writes_dev_termination_log_when_it_is_there() {
    let dir = TempDir::new("termination-pid1");
    let Some(outcome) = as_pid_1_with_own_dev(&dir, true, true) else {
        return;
    };
    outcome.check(outcome.code() == 7, "the command's code");
    let text = text_or_why(&dir.join("dev/termination-log"));
    outcome.check(text == "sh ended (exit 7)\n", &format!("{text:?}"));
    // Without the file, PID 1 writes nothing and says nothing of it.
    let dir = TempDir::new("termination-pid1-none");
    let outcome = as_pid_1_with_own_dev(&dir, false, true).unwrap();
    outcome.check(outcome.code() == 7, "the command's code");
    outcome.check(outcome.stderr.is_empty(), "not a word");
    outcome.check(!dir.join("dev/termination-log").exists(), "nothing created");
    // Not PID 1: the file is someone else's to write.
    let dir = TempDir::new("termination-not-pid1");
    let outcome = as_pid_1_with_own_dev(&dir, true, false).unwrap();
    outcome.check(outcome.code() == 7, "the command's code");
    let text = text_or_why(&dir.join("dev/termination-log"));
    outcome.check(text.is_empty(), &format!("not PID 1, yet {text:?}"));
}

// --- signals blocked from the first instruction --------------------------

/// Whether herd has run the first lines of its `main`: it ignores SIGPIPE
/// there (bit 13 of SigIgn), which the test's own spawn reset to default.
fn has_started(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (13 - 1)) != 0)
}

#[test]
fn a_signal_sent_as_soon_as_herd_runs_reaches_the_child_every_time() {
    const RUNS: usize = 500;
    let marker = Marker::new("early-signal");
    let mut before_the_child = 0;
    for run in 0..RUNS {
        // A shell waiting to send the signal, so that it goes with one
        // system call the moment the test knows herd's pid is running.
        let mut killer = Command::new("sh")
            .args(["-c", "read pid; kill -TERM \"$pid\""])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut command = herd();
        marker.apply(&mut command);
        let mut herd = command
            .args(["run", "--", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = herd.id();
        let until = Instant::now() + DEADLINE;
        while !has_started(pid) && Instant::now() < until {
            std::hint::spin_loop();
        }
        if children_of(pid).is_empty() {
            before_the_child += 1;
        }
        let mut line = killer.stdin.take().unwrap();
        writeln!(line, "{pid}").unwrap();
        drop(line);
        assert!(killer.wait().unwrap().success(), "kill -TERM {pid}");
        let until = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = herd.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                kill_with_tree(pid);
                panic!("run {run}: herd did not pass the TERM on within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(
            status.code(),
            Some(128 + 15),
            "run {run}: herd must forward the TERM and exit as its child did, not die of it: {status:?}"
        );
    }
    assert!(
        before_the_child > 0,
        "no signal of {RUNS} came before herd started its child: the test proved nothing"
    );
}

#[test]
fn the_client_commands_get_their_signals_back_so_ctrl_c_ends_them() {
    let marker = Marker::new("client-signals");
    let dir = TempDir::new("client-signals");
    let state = dir.join("state");
    let mut start = herd();
    marker.apply(&mut start);
    start.args(["start", "--state-dir"]).arg(&state).args([
        "--grace",
        "30",
        "-c",
        &format!("web={IGNORES_TERM}"),
    ]);
    let started = run_to_end(&mut start);
    started.check(started.code() == 0, "started");
    // herd stop waits for a supervisor that takes its time; Ctrl-C ends
    // the wait (ctrlc's handler), not the stop.
    let mut stop = herd();
    stop.args(["stop", "--state-dir"]).arg(&state);
    let stopping = Running::start(&mut stop);
    let pid = stopping.pid();
    wait_until(
        "herd stop to catch SIGINT with nothing blocked",
        || {
            signal_mask(pid, "SigBlk:") == Some(0)
                && signal_mask(pid, "SigCgt:").is_some_and(|caught| caught & 1 << (2 - 1) != 0)
        },
        || stopping.story(),
    );
    stopping.signal("INT");
    let outcome = stopping.finish();
    outcome.check(outcome.code() == 130, "interrupted");
    outcome.check(
        outcome
            .stderr
            .contains("stop: interrupted; state goes on stopping"),
        "said",
    );
    // A `herd start` waiting for a group that never gets ready dies of
    // Ctrl-C as any program would.
    let waiting_state = dir.join("waiting");
    let mut start = herd();
    marker.apply(&mut start);
    start
        .args(["start", "--state-dir"])
        .arg(&waiting_state)
        .args([
            "--ready",
            "web=file:/nonexistent/never",
            "--ready-timeout",
            "600",
            "-c",
            "web=sleep 1000",
        ]);
    let mut waiting = Running::start(&mut start);
    let pid = waiting.pid();
    wait_until(
        "herd start to wait with its signals back",
        || waiting_state.join("pid").exists() && signal_mask(pid, "SigBlk:") == Some(0),
        || waiting.story(),
    );
    waiting.signal("INT");
    let status = waiting.wait();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{}", waiting.story());
}

/// One of the signal masks of `pid` (`SigBlk:`, `SigCgt:`...), if it
/// still exists.
fn signal_mask(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
}

#[test]
fn a_groups_processes_start_with_no_signal_blocked_or_ignored() {
    let outcome = run_to_end(herd().args([
        "run",
        "--color",
        "never",
        "-c",
        "web=grep -E '^Sig(Blk|Ign)' /proc/self/status",
    ]));
    for field in ["SigBlk", "SigIgn"] {
        outcome.check(
            outcome
                .stdout
                .contains(&format!("{field}:\t0000000000000000")),
            field,
        );
    }
    // The same for a process that gets an fd of its own (the fork path).
    let outcome = run_to_end(herd().args([
        "run",
        "--color",
        "never",
        "--ready",
        "web=fd:3",
        "-c",
        "web=grep -E '^Sig(Blk|Ign)' /proc/self/status",
    ]));
    for field in ["SigBlk", "SigIgn"] {
        outcome.check(
            outcome
                .stdout
                .contains(&format!("{field}:\t0000000000000000")),
            field,
        );
    }
}
