//! No orphan outlives a killed herd, through the real binary: a `herd start`
//! that takes over the state directory of a supervisor killed with SIGKILL
//! stops what it left (and leaves alone a pid that is another process's
//! now); a foreground herd killed with SIGKILL takes its processes along
//! (its guard and each process's parent-death signal), unless
//! `--no-death-signal`.

use crate::util::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// A process that ignores SIGTERM, as its two children do (an ignored
/// signal stays ignored across exec): only SIGKILL of the whole group ends
/// it.
const STUBBORN: &str = "stubborn=trap '' TERM; sleep 1000 & sleep 1001";

/// A `sh -c` line whose shell forks its command: the shell's death alone
/// leaves the `sleep`.
const FORKING: &str = "forking=sleep 1000";

const POLITE: &str = "polite=exec sleep 1000";

/// `herd start` of the three in `dir`, with a grace of 1 s.
fn start(dir: &TempDir, marker: &Marker, extra: &[&str]) -> Outcome {
    let mut command = herd();
    command
        .args(["start", "--state-dir"])
        .arg(dir.join("state"))
        .args(["--grace", "1"])
        .args(extra)
        .args(["-c", STUBBORN, "-c", FORKING, "-c", POLITE]);
    marker.apply(&mut command);
    let outcome = run_to_end(&mut command);
    outcome.check(outcome.code() == 0, "herd start failed");
    outcome
}

fn supervisor_pid(dir: &TempDir) -> u32 {
    let text = fs::read_to_string(dir.join("state/pid")).unwrap_or_default();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}/state/pid: {text:?}", dir.0.display()))
}

/// The marked processes but the supervisor (and its guard, a clone of it).
fn processes_of_group(marker: &Marker) -> Vec<u32> {
    marker
        .processes()
        .into_iter()
        .filter(|&pid| {
            !fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("herd"))
        })
        .collect()
}

/// SIGKILLs the supervisor of `dir`, and waits until it is gone.
fn kill_supervisor(dir: &TempDir) {
    let supervisor = supervisor_pid(dir);
    send_signal(supervisor, "KILL");
    wait_until(
        "the killed supervisor to be gone",
        || !is_alive(supervisor),
        String::new,
    );
}

/// `start` of the three with no death signal (and so no guard), then
/// SIGKILL of its supervisor: what it left is a takeover's to stop. Returns
/// the processes it left.
fn left_by_a_killed_supervisor(dir: &TempDir, marker: &Marker) -> Vec<u32> {
    start(dir, marker, &["--no-death-signal"]);
    let left = processes_of_group(marker);
    kill_supervisor(dir);
    left
}

fn log(dir: &TempDir) -> String {
    fs::read_to_string(dir.join("state/log")).unwrap_or_default()
}

fn stop(dir: &TempDir) {
    let _ = run_to_end(herd().args(["stop", "--state-dir"]).arg(dir.join("state")));
}

#[test]
fn a_start_after_sigkill_of_a_detached_supervisor_stops_every_process_it_left() {
    let dir = TempDir::new("orphans-takeover");
    let marker = Marker::new("takeover");
    // No death signal and so no guard: what is left is the takeover's.
    let old = left_by_a_killed_supervisor(&dir, &marker);
    assert_eq!(old.len(), 6, "three processes and three children: {old:?}");
    assert!(
        old.iter().all(|&pid| is_alive(pid)),
        "left running: {old:?}"
    );
    start(&dir, &marker, &[]);
    let left: Vec<u32> = old.iter().copied().filter(|&pid| is_alive(pid)).collect();
    let story = log(&dir);
    stop(&dir);
    assert!(
        left.is_empty(),
        "still running from the old group: {left:?}\n{story}"
    );
    assert!(
        story.contains("died and left 3 processes running: stopping stubborn (group"),
        "{story}"
    );
}

#[test]
fn a_takeover_leaves_alone_a_pid_whose_start_time_is_not_the_one_in_the_scoreboard() {
    let dir = TempDir::new("orphans-reused");
    let marker = Marker::new("reused");
    let old = left_by_a_killed_supervisor(&dir, &marker);
    // Slot 0 (stubborn): its start-time word, at byte 128 + 120, as if its
    // pid had been given to a process started at another time.
    let board = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("state/scoreboard"))
        .expect("the dead supervisor's scoreboard");
    board
        .write_all_at(&1u64.to_le_bytes(), 128 + 120)
        .expect("writing the start time");
    start(&dir, &marker, &[]);
    let story = log(&dir);
    let survivors: Vec<u32> = old.iter().copied().filter(|&pid| is_alive(pid)).collect();
    stop(&dir);
    assert!(
        story.contains("stubborn had pid")
            && story.contains("which is now another process's: left alone"),
        "{story}"
    );
    assert!(
        story.contains("left 2 processes running: stopping forking (group"),
        "{story}"
    );
    // The stubborn shell and its two children, and nothing else.
    assert_eq!(survivors.len(), 3, "{survivors:?} of {old:?}\n{story}");
}

/// `herd run` of the three, in the foreground, with a grace of 1 s.
fn foreground(marker: &Marker, extra: &[&str]) -> Running {
    let mut command = herd();
    command
        .args(["run", "--color", "never", "--grace", "1"])
        .args(extra)
        .args(["-c", STUBBORN, "-c", FORKING, "-c", POLITE]);
    marker.apply(&mut command);
    let mut herd = Running::start(&mut command);
    for name in ["stubborn", "forking", "polite"] {
        herd.expect_line(&format!("{name} started"));
    }
    herd
}

#[test]
fn sigkill_of_a_foreground_group_stops_all_its_processes_within_their_grace() {
    let marker = Marker::new("foreground");
    let mut herd = foreground(&marker, &[]);
    wait_until(
        "every process and child to start",
        || processes_of_group(&marker).len() == 6,
        || herd.story(),
    );
    send_signal(herd.pid(), "KILL");
    let killed = Instant::now();
    herd.wait();
    wait_until(
        "the processes of a killed herd to be gone",
        || processes_of_group(&marker).is_empty(),
        || format!("left: {:?}", processes_of_group(&marker)),
    );
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(1) + Duration::from_secs(5),
        "gone {took:?} after herd was killed, with a grace of 1s"
    );
}

#[test]
fn sigkill_of_a_single_command_sends_it_its_stop_signal() {
    let marker = Marker::new("single");
    let mut command = herd();
    command
        .args(["run", "--stop-signal", "INT", "--", "sh", "-c"])
        .arg("trap 'echo got INT; exit 0' INT; echo up; while :; do sleep 0.05; done");
    marker.apply(&mut command);
    let mut herd = Running::start(&mut command);
    herd.expect_line("up");
    send_signal(herd.pid(), "KILL");
    herd.wait();
    herd.expect_line("got INT");
    wait_until(
        "the command of a killed herd to end",
        || processes_of_group(&marker).is_empty(),
        || format!("left: {:?}", processes_of_group(&marker)),
    );
}

#[test]
fn with_no_death_signal_the_processes_outlive_a_killed_herd() {
    let marker = Marker::new("no-death-signal");
    let dir = TempDir::new("orphans-kept");
    let beat = dir.join("beat");
    let beater = format!(
        "beater=trap 'echo TERM >> {path}' TERM; while :; do echo . >> {path}; sleep 0.02; done",
        path = beat.display()
    );
    let mut command = herd();
    command.args([
        "run",
        "--color",
        "never",
        "--no-death-signal",
        "-c",
        &beater,
        "-c",
        POLITE,
    ]);
    marker.apply(&mut command);
    let mut herd = Running::start(&mut command);
    herd.expect_line("beater started");
    herd.expect_line("polite started");
    send_signal(herd.pid(), "KILL");
    herd.wait();
    let beats = || fs::read_to_string(&beat).unwrap_or_default();
    let then = beats().len();
    wait_until(
        "the beater to beat on after herd died",
        || beats().len() >= then + 10,
        beats,
    );
    assert!(!beats().contains("TERM"), "it was signalled: {}", beats());
    let left = processes_of_group(&marker);
    assert!(left.len() >= 2, "the beater and polite: {left:?}");
}

#[test]
fn sigint_during_a_takeover_kills_what_is_left_at_once_and_ends_herd() {
    let dir = TempDir::new("orphans-interrupted");
    let marker = Marker::new("interrupted");
    let mut first = herd();
    first
        .args([
            "start",
            "--no-death-signal",
            "--grace",
            "300",
            "--state-dir",
        ])
        .arg(dir.join("state"))
        .args(["-c", STUBBORN]);
    marker.apply(&mut first);
    let outcome = run_to_end(&mut first);
    outcome.check(outcome.code() == 0, "herd start failed");
    let old = processes_of_group(&marker);
    kill_supervisor(&dir);
    // In the foreground this time: the takeover waits for a grace of 300 s.
    let mut second = herd();
    second
        .args(["run", "--state-dir"])
        .arg(dir.join("state"))
        .args(["-c", POLITE]);
    marker.apply(&mut second);
    let herd = Running::start(&mut second);
    herd.expect_stderr("the takeover note", |text| {
        text.contains("stopping stubborn")
    });
    // The dead supervisor's scoreboard says its group was ready; it is not
    // this supervisor's, which is not ready yet.
    let probe = run_to_end(
        crate::util::herd()
            .args(["status", "--ready", "--state-dir"])
            .arg(dir.join("state")),
    );
    probe.check(probe.code() == 1, "status --ready during the takeover");
    herd.signal("INT");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 125, "herd exits 125");
    outcome.check(
        outcome
            .stderr
            .contains("herd: stopping what the last supervisor left: interrupted by SIGINT: the rest was killed"),
        "the reason",
    );
    outcome.check(
        !outcome.stdout.contains("polite started"),
        "nothing started",
    );
    wait_until(
        "the old processes to be killed",
        || old.iter().all(|&pid| !is_alive(pid)),
        || format!("left: {:?}", processes_of_group(&marker)),
    );
}

#[test]
fn a_damaged_scoreboard_is_reported_and_the_takeover_goes_on() {
    let dir = TempDir::new("orphans-damaged");
    let marker = Marker::new("damaged");
    left_by_a_killed_supervisor(&dir, &marker);
    fs::write(dir.join("state/scoreboard"), vec![0x5a; 1000]).expect("writing garbage");
    start(&dir, &marker, &[]);
    let story = log(&dir);
    stop(&dir);
    assert!(
        story.contains("its scoreboard: it is damaged: no scoreboard magic: what the last supervisor ran is not looked for"),
        "{story}"
    );
}

#[test]
fn a_killed_guard_is_said_once_and_herd_goes_on_without_a_sigpipe() {
    let marker = Marker::new("guard-killed");
    let mut command = herd();
    command.args([
        "run",
        "--color",
        "never",
        "--restart",
        "always",
        "-c",
        "brief=sleep 0.05",
        "-c",
        POLITE,
    ]);
    marker.apply(&mut command);
    let mut herd = Running::start(&mut command);
    herd.expect_line("polite started");
    let guard = children_of(herd.pid())
        .into_iter()
        .find(|&pid| is_guard(pid))
        .unwrap_or_else(|| panic!("no guard among herd's children\n{}", herd.story()));
    send_signal(guard, "KILL");
    herd.expect_line("the guard is gone (killed?)");
    // Restarts go on, and tell the guard nothing more.
    herd.expect_line("brief started");
    herd.expect_line("brief started");
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "herd exits 0 after SIGTERM");
    outcome.check(
        !outcome.stdout.contains("SIGPIPE"),
        "a SIGPIPE was forwarded",
    );
    outcome.check(
        outcome.stdout.matches("the guard is gone").count() == 1,
        "said once",
    );
}

#[test]
fn a_takeover_frees_the_port_the_old_processes_held_before_it_listens() {
    let dir = TempDir::new("orphans-port");
    let marker = Marker::new("port");
    let port = free_port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let args = |extra: &[&str]| -> Outcome {
        let mut command = herd();
        command
            .args(["start", "--grace", "1", "--state-dir"])
            .arg(dir.join("state"))
            .args(extra)
            .args(["--listen", &listen, "-c", "web=exec sleep 1000"]);
        marker.apply(&mut command);
        run_to_end(&mut command)
    };
    let first = args(&["--no-death-signal"]);
    first.check(first.code() == 0, "the first herd start failed");
    kill_supervisor(&dir);
    // The old web still holds the listening socket it got as fd 3.
    let second = args(&[]);
    let story = log(&dir);
    stop(&dir);
    second.check(
        second.code() == 0,
        &format!("the second herd start failed\n{story}"),
    );
    assert!(story.contains("stopping web (group"), "{story}");
}
