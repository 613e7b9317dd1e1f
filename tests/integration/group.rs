//! `herd run -c/-f`: order, prefixed output, restarts, stops, exit codes.

use crate::util::*;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

fn group(args: &[&str]) -> Command {
    let mut command = herd();
    command.arg("run").args(["--color", "never"]).args(args);
    command
}

/// The index of the first line of `stdout` containing `needle`.
fn position(outcome: &Outcome, needle: &str) -> usize {
    let found = outcome
        .stdout
        .lines()
        .position(|line| line.contains(needle));
    outcome.check(found.is_some(), &format!("no line with {needle:?}"));
    found.unwrap()
}

fn assert_in_order(outcome: &Outcome, needles: &[&str]) {
    let positions: Vec<usize> = needles.iter().map(|n| position(outcome, n)).collect();
    let sorted = positions.windows(2).all(|pair| pair[0] < pair[1]);
    outcome.check(
        sorted,
        &format!("not in order: {needles:?} at {positions:?}"),
    );
}

const STOPS_SLOWLY: &str =
    "trap 'echo stopping; sleep 0.3; echo stopped; exit 0' TERM; echo up; while :; do sleep 0.05; done";

#[test]
fn processes_start_in_order_and_a_ready_check_holds_back_the_rest() {
    let dir = TempDir::new("ready");
    let flag = dir.join("a-is-up");
    let a = format!("a=sleep 0.3; touch {}; exec sleep 100", flag.display());
    let ready = format!("a=file:{}", flag.display());
    let mut herd = Running::start(&mut group(&[
        "-c",
        &a,
        "-c",
        "b=echo b up; exec sleep 100",
        "-c",
        "c=echo c up; exec sleep 100",
        "--ready",
        &ready,
    ]));
    herd.expect_line("c    | c up");
    herd.signal("TERM");
    let outcome = herd.finish();
    assert_in_order(
        &outcome,
        &["a started", "a is ready", "b started", "c started"],
    );
    outcome.check(outcome.code() == 0, "stopped on request, all ended by TERM");
}

#[test]
fn the_group_stops_in_reverse_order_each_waited_for() {
    let mut herd = Running::start(&mut group(&[
        "-c",
        &format!("a={STOPS_SLOWLY}"),
        "-c",
        &format!("b={STOPS_SLOWLY}"),
        "-c",
        &format!("c={STOPS_SLOWLY}"),
    ]));
    herd.expect_line("c    | up");
    herd.expect_line("a    | up");
    herd.expect_line("b    | up");
    herd.signal("TERM");
    let outcome = herd.finish();
    assert_in_order(
        &outcome,
        &[
            "c    | stopping",
            "c    | stopped",
            "b    | stopping",
            "b    | stopped",
            "a    | stopping",
            "a    | stopped",
        ],
    );
    outcome.check(outcome.code() == 0, "every process exited 0 when asked");
}

#[test]
fn parallel_stop_asks_every_process_at_once() {
    let mut herd = Running::start(&mut group(&[
        "--parallel-stop",
        "-c",
        &format!("a={STOPS_SLOWLY}"),
        "-c",
        &format!("b={STOPS_SLOWLY}"),
    ]));
    herd.expect_line("a    | up");
    herd.expect_line("b    | up");
    herd.signal("TERM");
    let outcome = herd.finish();
    let first_stopped = position(&outcome, "| stopped");
    outcome.check(
        position(&outcome, "a    | stopping") < first_stopped,
        "a asked late",
    );
    outcome.check(
        position(&outcome, "b    | stopping") < first_stopped,
        "b asked late",
    );
}

#[test]
fn a_process_trapping_term_is_killed_with_its_whole_group_after_the_grace() {
    let script = "x=trap '' TERM; sleep 1000 & echo grandchild $!; while :; do sleep 0.05; done";
    let mut herd = Running::start(&mut group(&["--grace", "0.5", "-c", script]));
    let line = herd.expect_line("grandchild");
    let grandchild: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let asked = Instant::now();
    herd.signal("TERM");
    let status = herd.wait();
    let took = asked.elapsed();
    let outcome = herd.outcome(status);
    outcome.check(
        took >= Duration::from_millis(500),
        "killed before the grace ran out",
    );
    outcome.check(
        outcome.stdout.contains("sending SIGKILL"),
        "no SIGKILL event",
    );
    outcome.check(outcome.code() == 128 + 9, "exit code of a killed process");
    wait_until(
        "the grandchild to be gone",
        || process_state(grandchild).is_none_or(|state| state == 'Z'),
        || outcome.stdout.clone(),
    );
}

/// The instants at which lines containing `needle` arrived.
fn arrivals(herd: &mut Running, needle: &str, count: usize) -> Vec<Instant> {
    (0..count)
        .map(|_| {
            herd.expect_line(needle);
            Instant::now()
        })
        .collect()
}

#[test]
fn restarts_back_off_doubling_up_to_the_cap_then_give_up() {
    let mut herd = Running::start(&mut group(&[
        "--restart",
        "on-failure",
        "--backoff-min",
        "0.1",
        "--backoff-max",
        "0.4",
        "--start-limit",
        "4",
        "-c",
        "f=exit 1",
    ]));
    let starts = arrivals(&mut herd, "f started", 5);
    let outcome = herd.finish();
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, expected_ms) in gaps.iter().zip([100, 200, 400, 400]) {
        let expected = Duration::from_millis(expected_ms);
        // The lines are timed as they reach the test, not as herd starts
        // the process: one line that is a little later on its way than the
        // next shortens a gap by that much.
        let jitter = Duration::from_millis(10);
        outcome.check(
            *gap + jitter >= expected && *gap < expected + Duration::from_millis(400),
            &format!("gaps {gaps:?} do not follow 0.1, 0.2, 0.4, 0.4 s"),
        );
    }
    assert_in_order(
        &outcome,
        &[
            "restarting in 0.1s",
            "restarting in 0.2s",
            "restarting in 0.4s",
        ],
    );
    outcome.check(
        outcome
            .stdout
            .contains("f: gave up after 4 restarts in 60s"),
        "give-up event",
    );
    outcome.check(
        outcome.stderr == "herd: f: gave up after 4 restarts in 60s\n",
        "message",
    );
    outcome.check(outcome.code() == 1, "the code of the process that gave up");
}

#[test]
fn stopping_during_a_backoff_cancels_the_restart() {
    let mut herd = Running::start(&mut group(&[
        "--restart",
        "always",
        "--backoff-min",
        "30",
        "-c",
        "f=exit 3",
        "-c",
        "g=exec sleep 100",
    ]));
    herd.expect_line("f restarting in 30s");
    let asked = Instant::now();
    herd.signal("TERM");
    let status = herd.wait();
    let took = asked.elapsed();
    let outcome = herd.outcome(status);
    outcome.check(
        took < Duration::from_secs(10),
        "herd waited for the backoff",
    );
    outcome.check(
        outcome.stdout.matches("f started").count() == 1,
        "f restarted",
    );
    outcome.check(outcome.code() == 3, "f's failure is the group's exit code");
}

#[test]
fn a_oneshot_exiting_0_leaves_the_others_running() {
    let mut herd = Running::start(&mut group(&[
        "-c",
        "once=echo did it",
        "--oneshot",
        "once",
        "-c",
        "svc=echo up; exec sleep 100",
    ]));
    herd.expect_line("once exited with code 0");
    herd.expect_line("svc  | up");
    // The group is still running: a request stops it, and only then.
    herd.signal("TERM");
    herd.expect_line("got SIGTERM: stopping");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "a clean stop");
}

#[test]
fn a_oneshot_exiting_1_stops_the_group_with_code_1() {
    let outcome = run_to_end(&mut group(&[
        "-c",
        "once=exit 1",
        "--oneshot",
        "once",
        "-c",
        "svc=exec sleep 100",
    ]));
    outcome.check(outcome.code() == 1, "exit code");
    outcome.check(
        outcome.stdout.contains("stopping svc (SIGTERM)"),
        "svc was stopped",
    );
}

#[test]
fn no_line_is_lost_or_mixed_when_three_processes_write_fast() {
    let mut args = Vec::new();
    for name in ["p1", "p2", "p3"] {
        args.push("-c".to_string());
        args.push(format!("{name}=seq -f '{name}-%.0f' 1 100000"));
        args.push("--oneshot".to_string());
        args.push(name.to_string());
    }
    let outcome = run_to_end(group(&[]).args(&args));
    outcome.check(outcome.code() == 0, "exit code");
    for name in ["p1", "p2", "p3"] {
        let prefix = format!("{name}   | {name}-");
        let numbers: Vec<u64> = outcome
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        let complete = numbers.len() == 100_000 && numbers.iter().zip(1..).all(|(n, i)| *n == i);
        outcome.check(
            complete,
            &format!("{name}: {} lines, or out of order", numbers.len()),
        );
    }
    let stray = outcome
        .stdout
        .lines()
        .filter(|line| !line.starts_with("herd | ") && !line.starts_with("p"))
        .count();
    outcome.check(stray == 0, "lines that are not whole");
}

#[test]
fn a_line_over_64_kib_is_split_not_lost_and_a_last_line_needs_no_newline() {
    let script = "p=head -c 200000 /dev/zero | tr '\\0' a; echo; printf 'no newline'";
    let outcome = run_to_end(&mut group(&["-c", script]));
    let pieces: Vec<&str> = outcome
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("p    | "))
        .collect();
    let a_count: usize = pieces
        .iter()
        .filter(|p| p.starts_with('a'))
        .map(|p| p.len())
        .sum();
    outcome.check(a_count == 200_000, &format!("{a_count} of 200000 bytes"));
    outcome.check(
        pieces.iter().all(|p| p.len() <= 65536),
        "a piece over 64 KiB",
    );
    outcome.check(pieces.last() == Some(&"no newline"), "the last line");
}

#[test]
fn stdin_goes_to_the_named_process_and_dev_null_to_the_others() {
    let mut herd = Running::start(&mut group(&[
        "-c",
        "reader=cat",
        "--oneshot",
        "reader",
        "--stdin",
        "reader",
        "-c",
        "other=cat; echo other got eof",
        "--oneshot",
        "other",
    ]));
    herd.expect_line("other  | other got eof");
    herd.write_stdin("hello\n");
    herd.expect_line("reader | hello");
    herd.close_stdin();
    let status = herd.wait();
    assert_eq!(status.code(), Some(0), "{}", herd.story());
}

#[test]
fn a_grandchild_holding_the_pipe_does_not_hang_the_stop() {
    // The grandchild leaves the process group (setsid), so the group stop
    // does not reach it, and it keeps the stdout pipe open.
    let script = "p=setsid sh -c 'echo holder $$; exec sleep 1000' & exec sleep 1000";
    let mut herd = Running::start(&mut group(&["--grace", "1", "-c", script]));
    let line = herd.expect_line("holder");
    let holder: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let asked = Instant::now();
    herd.signal("TERM");
    let status = herd.wait();
    let took = asked.elapsed();
    send_signal(holder, "KILL");
    assert!(
        took < Duration::from_secs(5),
        "stop took {took:?}\n{}",
        herd.story()
    );
    assert_eq!(status.code(), Some(0), "{}", herd.story());
}

#[test]
fn a_second_stop_request_kills_everything_at_once() {
    let script = "slow=trap 'echo ignoring' TERM; echo up; while :; do sleep 0.05; done";
    let mut herd = Running::start(&mut group(&["--grace", "30", "-c", script]));
    herd.expect_line("slow | up");
    herd.signal("INT");
    herd.expect_line("stopping slow");
    let asked = Instant::now();
    herd.signal("INT");
    herd.expect_line("killing everything");
    let status = herd.wait();
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{}",
        herd.story()
    );
    assert_eq!(status.code(), Some(128 + 9), "{}", herd.story());
}

#[test]
fn a_ready_check_that_never_passes_stops_the_group_with_124() {
    let outcome = run_to_end(&mut group(&[
        "-c",
        "a=exec sleep 100",
        "--ready",
        "a=file:/nonexistent/herd",
        "--ready-timeout",
        "0.3",
        "-c",
        "b=echo never started",
    ]));
    outcome.check(outcome.code() == 124, "exit code");
    outcome.check(
        outcome.stderr == "herd: a: not ready after 0.3s\n",
        "message",
    );
    outcome.check(!outcome.stdout.contains("b started"), "b was started");
}

#[test]
fn a_tcp_ready_check_passes_once_the_port_listens() {
    let port = free_port();
    // The server listens only after 0.3 s; the client connects once: had it
    // started before the check passed, the connection would be refused.
    let server = format!(
        "web=exec python3 -c 'import socket,time; print(\"waiting\", flush=True); \
         time.sleep(0.3); s=socket.socket(); s.bind((\"127.0.0.1\", {port})); \
         s.listen(); time.sleep(100)'"
    );
    let client = format!(
        "client=exec python3 -c 'import socket; \
         socket.create_connection((\"127.0.0.1\", {port})); print(\"connected\")'"
    );
    let ready = format!("web=tcp:{port}");
    let mut herd = Running::start(&mut group(&[
        "-c", &server, "--ready", &ready, "-c", &client,
    ]));
    herd.expect_line("client | connected");
    herd.signal("TERM");
    let outcome = herd.finish();
    assert_in_order(
        &outcome,
        &["web    | waiting", "web is ready", "client started"],
    );
}

#[test]
fn procfile_settings_env_file_and_ports_reach_the_processes() {
    let dir = TempDir::new("procfile");
    let procfile = dir.join("Procfile");
    // second waits for first's line before it ends the group.
    let printed = dir.join("printed");
    let text = format!(
        "# a comment\n\nfirst: echo $PORT $GREETING; touch {0}  # herd: oneshot\n\
         second: while [ ! -e {0} ]; do sleep 0.01; done; echo $PORT; exit 5\n",
        printed.display()
    );
    fs::write(&procfile, text).unwrap();
    let env = dir.join(".env");
    fs::write(&env, "GREETING=\"hello there\"\n").unwrap();
    let outcome = run_to_end(&mut group(&[
        "-f",
        &procfile.to_string_lossy(),
        "--env-file",
        &env.to_string_lossy(),
        "--port-base",
        "5000",
    ]));
    outcome.check(
        outcome.stdout.contains("first  | 5000 hello there"),
        "first's env",
    );
    outcome.check(outcome.stdout.contains("second | 5100"), "second's port");
    outcome.check(outcome.code() == 5, "second's exit stopped the group");
}

#[test]
fn a_bad_procfile_line_fails_before_anything_starts() {
    let dir = TempDir::new("badprocfile");
    let procfile = dir.join("Procfile");
    let marker = dir.join("started");
    fs::write(
        &procfile,
        format!("ok: touch {}\nbad line\n", marker.display()),
    )
    .unwrap();
    let outcome = run_to_end(&mut group(&["-f", &procfile.to_string_lossy()]));
    outcome.check(outcome.code() == 125, "exit code");
    let expected = format!("herd: {}:2: expected 'name: command'\n", procfile.display());
    outcome.check(outcome.stderr == expected, "message names file:line");
    outcome.check(!marker.exists(), "a process was started");
}

#[test]
fn color_always_colours_the_names_and_never_does_not() {
    let outcome = run_to_end(herd().args(["run", "--color", "always", "-c", "p=echo hi"]));
    outcome.check(outcome.stdout.contains("\u{1b}["), "no escape sequence");
    outcome.check(outcome.stdout.contains("hi"), "the line");
    let outcome = run_to_end(herd().args(["run", "--color", "never", "-c", "p=echo hi"]));
    outcome.check(
        !outcome.stdout.contains('\u{1b}'),
        "colour with --color never",
    );
    outcome.check(outcome.stdout.contains("p    | hi"), "the plain line");
}

#[test]
fn timestamps_come_before_the_name() {
    let outcome = run_to_end(&mut group(&["--timestamps", "-c", "p=echo hi"]));
    let line = outcome
        .stdout
        .lines()
        .find(|l| l.ends_with("p    | hi"))
        .unwrap_or("");
    let stamp = line.split(' ').next().unwrap_or("");
    let shaped = stamp.len() == 12
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            2 | 5 => b == b':',
            8 => b == b'.',
            _ => b.is_ascii_digit(),
        });
    outcome.check(shaped, &format!("{stamp:?} is not HH:MM:SS.mmm"));
}

#[test]
fn other_signals_reach_every_process_group() {
    // Only the grandchild acts on HUP: the main process ignores it, so that
    // no exit stops the group before every grandchild has said so.
    let script = |name: &str| {
        format!("{name}=trap '' HUP; (trap - HUP; exec sh -c 'trap \"echo {name} grandchild got HUP\" HUP; echo {name} ready; while :; do sleep 0.05; done') & wait")
    };
    let mut herd = Running::start(&mut group(&["-c", &script("a"), "-c", &script("b")]));
    herd.expect_line("a ready");
    herd.expect_line("b ready");
    herd.signal("HUP");
    herd.expect_line("a grandchild got HUP");
    herd.expect_line("b grandchild got HUP");
    herd.signal("TERM");
    herd.wait();
}

#[test]
fn a_port_base_that_overflows_is_refused_before_anything_starts() {
    let outcome = run_to_end(&mut group(&[
        "--port-base",
        "65500",
        "-c",
        "a=true",
        "-c",
        "b=true",
    ]));
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr == "herd: reading arguments: --port-base 65500: b would get PORT=65600\n",
        "message",
    );
    outcome.check(outcome.stdout.is_empty(), "something started");
}

#[test]
fn ctrl_z_stops_every_process_and_herd_and_sigcont_resumes_them() {
    let mut herd = Running::start(&mut group(&[
        "-c",
        "a=echo up; exec sleep 1000",
        "-c",
        "b=echo up; exec sleep 1000",
    ]));
    herd.expect_line("a    | up");
    herd.expect_line("b    | up");
    let herd_pid = herd.pid();
    // Not the guard: it is in a session of its own, out of the terminal's reach.
    let processes: Vec<u32> = children_of(herd_pid)
        .into_iter()
        .filter(|&pid| !is_guard(pid))
        .collect();
    assert_eq!(processes.len(), 2, "{}", herd.story());
    let all_stopped = || {
        process_state(herd_pid) == Some('T')
            && processes.iter().all(|&p| process_state(p) == Some('T'))
    };
    herd.signal("TSTP");
    wait_until("herd and its processes to stop", all_stopped, || {
        herd.story()
    });
    herd.signal("CONT");
    let all_running = || {
        process_state(herd_pid) != Some('T')
            && processes.iter().all(|&p| process_state(p) != Some('T'))
    };
    wait_until("herd and its processes to resume", all_running, || {
        herd.story()
    });
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "a clean stop after resuming");
}

/// A set-user-ID root program that becomes root for good (real, effective
/// and saved uid 0), prints its pid and waits: a process a non-root herd
/// may not signal. `None` when this test cannot make one (not root, no C
/// compiler).
fn unsignallable_program(dir: &TempDir) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_root = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"));
    if !is_root {
        eprintln!("skipped: making a set-user-ID root program needs root");
        return None;
    }
    let source = dir.join("stay.c");
    let program = dir.join("stay");
    fs::write(
        &source,
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) { if (setuid(0) || setgid(0)) return 1;\n\
         printf(\"root pid %d\\n\", getpid()); fflush(stdout);\n\
         for (;;) pause(); }\n",
    )
    .unwrap();
    let compiled = Command::new("cc")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status();
    if !compiled.is_ok_and(|status| status.success()) {
        eprintln!("skipped: cc could not build the set-user-ID program");
        return None;
    }
    fs::set_permissions(&program, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    Some(program)
}

#[test]
fn a_group_member_herd_may_not_signal_is_not_waited_for_forever() {
    let dir = TempDir::new("eperm");
    let Some(program) = unsignallable_program(&dir) else {
        return;
    };
    let herd_copy = dir.join("herd");
    fs::copy(herd_path(), &herd_copy).unwrap();
    // The main process leaves the root program in its process group and
    // exits: herd, as nobody, may not signal what is left.
    let command = format!("a={} & read line; exit 0", program.display());
    let mut herd = Running::start(
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&herd_copy)
            .args(["run", "--color", "never", "--stdin", "a", "-c", &command]),
    );
    let line = herd.expect_line("root pid ");
    let leftover: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            send_signal(self.0, "KILL");
        }
    }
    let _leftover = KillOnDrop(leftover);
    herd.write_stdin("go\n");
    herd.expect_line("cannot be signalled by herd (permission denied); not waiting for it");
    let status = herd.wait();
    assert_eq!(status.code(), Some(0), "{}", herd.story());
    assert!(is_alive(leftover), "the root program was somehow stopped");
}
