//! `--watchdog` and heartbeats through the real binary: a process that stops
//! beating is restarted in time, ones that beat (`herd notify --heartbeat`,
//! a raw add to the scoreboard slot, `WATCHDOG=1`) never are, and the
//! variables a process gets.

use crate::util::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A raw heartbeat: one add to the 64-bit word at byte 128 + 512*I + 8 of
/// `$HERD_SCOREBOARD`, as herd(1) documents it (one writer: a plain
/// read-modify-write is the add). Beats `$1` times, every `$2` seconds.
const RAW_BEATER: &str = r#"
import mmap, os, struct, sys, time
f = open(os.environ["HERD_SCOREBOARD"], "r+b")
m = mmap.mmap(f.fileno(), 0)
at = 128 + 512 * int(os.environ["HERD_SLOT"]) + 8
for n in range(int(sys.argv[1])):
    (count,) = struct.unpack_from("<Q", m, at)
    struct.pack_into("<Q", m, at, count + 1)
    time.sleep(float(sys.argv[2]))
print("raw done", flush=True)
time.sleep(1000)
"#;

/// `WATCHDOG=1` datagrams on `$NOTIFY_SOCKET`, `$1` times every `$2` s.
const DATAGRAM_BEATER: &str = r#"
import os, socket, sys, time
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for n in range(int(sys.argv[1])):
    s.sendto(b"WATCHDOG=1", address)
    time.sleep(float(sys.argv[2]))
print("datagram done", flush=True)
time.sleep(1000)
"#;

/// `herd run --state-dir DIR ARGS`: a group with a scoreboard.
fn group(dir: &TempDir, args: &[&str]) -> Running {
    Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args(args),
    )
}

fn started_pid(line: &str) -> u32 {
    line.rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// Runs `line` (process `name`, which says `last` after its last
/// heartbeat) with a watchdog of 2 s and `--restart always`; checks that it
/// is stopped 2 s to 2.2 s after `last` and started again. Returns herd.
fn restarted_within_a_tenth(dir: &TempDir, name: &str, line: &str, last: &str) -> Running {
    let watchdog = format!("{name}=2");
    let mut herd = group(
        dir,
        &["--watchdog", &watchdog, "--restart", "always", "-c", line],
    );
    let first = started_pid(&herd.expect_line(&format!("{name} started")));
    herd.expect_line(last);
    let beat = Instant::now();
    herd.expect_line(&format!("{name}: no heartbeat for 2s"));
    let waited = beat.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited <= Duration::from_millis(2200),
        "stopped {waited:?} after its last heartbeat, not within 2s + 10%\n{}",
        herd.story()
    );
    let second = started_pid(&herd.expect_line(&format!("{name} started")));
    assert_ne!(first, second, "{}", herd.story());
    herd
}

#[test]
fn a_process_that_stops_beating_is_restarted_within_its_period_and_a_tenth() {
    let dir = TempDir::new("wd-stops");
    let beats = format!(
        "hang=for n in 1 2 3; do {herd} notify --heartbeat || exit 9; sleep 0.1; done; \
         {herd} notify --heartbeat && echo last beat; exec sleep 1000",
        herd = herd_path()
    );
    let mut herd = restarted_within_a_tenth(&dir, "hang", &beats, "last beat");
    herd.expect_line("last beat");
    let status = run_to_end(
        crate::util::herd()
            .args(["status", "--state-dir"])
            .arg(dir.join("state")),
    );
    status.check(
        status
            .stdout
            .contains("no heartbeat for 2s: killed by SIGTERM"),
        "status says why it was restarted",
    );
}

/// `WATCHDOG=1` datagrams as a systemd program sends them, 3 times every
/// 0.1 s, then a line, then silence.
const DATAGRAM_THEN_SILENCE: &str = r#"
import os, socket, time
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for n in range(3):
    s.sendto(b"WATCHDOG=1", address)
    time.sleep(0.1)
s.sendto(b"WATCHDOG=1", address)
print("last datagram", flush=True)
time.sleep(1000)
"#;

#[test]
fn a_process_that_stops_sending_watchdog_1_is_restarted_within_its_period_and_a_tenth() {
    let dir = TempDir::new("wd-datagram-stops");
    let script = dir.join("silence.py");
    std::fs::write(&script, DATAGRAM_THEN_SILENCE).unwrap();
    let line = format!("quiet=exec python3 {}", script.display());
    restarted_within_a_tenth(&dir, "quiet", &line, "last datagram");
}

#[test]
fn processes_that_keep_beating_in_any_of_the_three_ways_are_never_restarted() {
    let dir = TempDir::new("wd-beating");
    let raw = dir.join("raw.py");
    let datagram = dir.join("datagram.py");
    std::fs::write(&raw, RAW_BEATER).unwrap();
    std::fs::write(&datagram, DATAGRAM_BEATER).unwrap();
    let command = format!(
        "command=for n in $(seq 12); do {} notify --heartbeat; sleep 0.1; done; \
         echo command done; exec sleep 1000",
        herd_path()
    );
    let raw = format!("raw=exec python3 {} 12 0.1", raw.display());
    let datagram = format!("datagram=exec python3 {} 12 0.1", datagram.display());
    let mut herd = group(
        &dir,
        &[
            "--watchdog",
            "0.5",
            "--restart",
            "always",
            "-c",
            &command,
            "-c",
            &raw,
            "-c",
            &datagram,
        ],
    );
    for name in ["command", "raw", "datagram"] {
        herd.expect_line(&format!("{name} done"));
    }
    let story = herd.story();
    assert!(
        !story.contains("no heartbeat") && story.matches("started (pid").count() == 3,
        "a beating process was stopped\n{story}"
    );
    // And once they stop, each is found.
    for name in ["command", "raw", "datagram"] {
        herd.expect_line(&format!("{name}: no heartbeat for 0.5s"));
    }
}

#[test]
fn a_watched_process_gets_watchdog_usec_and_its_own_pid_and_others_get_neither() {
    let dir = TempDir::new("wd-env");
    let show = "echo \"$WATCHDOG_USEC/$WATCHDOG_PID/$$/$HERD_SLOT\"; exec sleep 1000";
    let watched = format!("watched={show}");
    let plain = format!("plain={show}");
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args(["--watchdog", "watched=2.5", "-c", &watched, "-c", &plain])
            // herd's own, from a manager: not its children's.
            .env("WATCHDOG_USEC", "1")
            .env("WATCHDOG_PID", "1")
            .env("HERD_SLOT", "77"),
    );
    let pid = started_pid(&herd.expect_line("watched started"));
    herd.expect_line(&format!("| 2500000/{pid}/{pid}/0"));
    let pid = started_pid(&herd.expect_line("plain started"));
    herd.expect_line(&format!("| //{pid}/1"));
}

#[test]
fn a_heartbeat_with_nowhere_to_go_or_a_bad_slot_is_a_clear_error() {
    let dir = TempDir::new("wd-nowhere");
    let outcome = run_to_end(
        herd()
            .args(["notify", "--heartbeat"])
            .env_remove("NOTIFY_SOCKET")
            .env_remove("HERD_SCOREBOARD")
            .env_remove("HERD_SLOT"),
    );
    outcome.check(
        outcome.code() == 125
            && outcome.stderr
                == "herd: sending a heartbeat: neither HERD_SCOREBOARD and HERD_SLOT nor NOTIFY_SOCKET is set\n",
        "no slot and no socket",
    );
    let not_a_board = dir.join("not-a-board");
    std::fs::write(&not_a_board, vec![0u8; 4096]).unwrap();
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    for (file, slot, why) in [
        (&not_a_board, "-1", "HERD_SLOT=-1 is not a slot number"),
        (
            &not_a_board,
            "99999999999999999999999",
            "is not a slot number",
        ),
        (&not_a_board, "0", "it is damaged: no scoreboard magic"),
        (&not_a_board, "1000", "hold no slot 1000"),
        (&dir.join("none"), "0", "it does not exist"),
        (&dir.0, "0", "is a directory"),
        (&fifo, "0", "0 bytes hold no slot 0"),
    ] {
        let outcome = run_to_end(
            herd()
                .args(["notify", "--heartbeat"])
                .env("HERD_SCOREBOARD", file)
                .env("HERD_SLOT", slot),
        );
        outcome.check(
            outcome.code() == 125
                && outcome
                    .stderr
                    .starts_with("herd: sending a heartbeat to slot ")
                && outcome.stderr.contains(why)
                && outcome.stderr.lines().count() == 1,
            &format!("slot {slot} of {}", file.display()),
        );
    }
}

#[test]
fn a_watchdog_for_a_single_command_without_a_scoreboard_is_refused() {
    let outcome = run_to_end(herd().args(["run", "--watchdog", "5", "--", "true"]));
    outcome.check(
        outcome.code() == 125 && outcome.stderr.contains("--watchdog: a single command"),
        "nothing could send it a heartbeat",
    );
    let outcome = run_to_end(herd().args(["run", "--watchdog", "0.01", "-c", "a=true"]));
    outcome.check(
        outcome.code() == 125
            && outcome
                .stderr
                .contains("shorter than the shortest watchdog"),
        "a tiny period",
    );
}
