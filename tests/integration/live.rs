//! Liveness checks (`--live`) through the real binary: a check that fails
//! N times in a row restarts its process, N-1 times does not; an `exec:`
//! check is never reaped by herd's reaper; bad settings are refused.

use crate::util::*;
use std::fs;
use std::time::{Duration, Instant};

/// An `exec:` check that fails its first `failing` runs, then passes;
/// every run adds one to the count in `count`.
fn failing_first(count: &std::path::Path, failing: u32) -> String {
    let count = count.display();
    format!(
        "web=exec:n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; [ $n -gt {failing} ]"
    )
}

fn runs(count: &std::path::Path) -> u32 {
    fs::read_to_string(count)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

fn group(dir: &TempDir, marker: &Marker, live: &str) -> Running {
    let mut command = herd();
    marker
        .apply(&mut command)
        .args(["run", "-v", "--color", "never", "-c", "web=exec sleep 60"])
        .args(["--restart", "always", "--live", live])
        .args(["--live-interval", "0.05", "--live-failures", "3"]);
    command.current_dir(&dir.0);
    Running::start(&mut command)
}

#[test]
fn a_check_that_fails_n_times_in_a_row_restarts_the_process() {
    let dir = TempDir::new("live-restart");
    let marker = Marker::new("live-restart");
    let count = dir.join("count");
    let mut herd = group(&dir, &marker, &failing_first(&count, 3));
    herd.expect_line("web started");
    herd.expect_line("web: liveness check exec:");
    herd.expect_line("failed (2 of 3): exit 1");
    let not_live = herd.expect_line("web: not live: exec:");
    assert!(
        not_live.ends_with("failed 3 times in a row: exit 1"),
        "{not_live}"
    );
    herd.expect_line("stopping web (SIGTERM)");
    herd.expect_line("web was killed by SIGTERM");
    herd.expect_line("web restarting in");
    herd.expect_line("web started");
    // The new run's checks pass (the count is past 3): it stays.
    let passed = runs(&count) + 5;
    wait_until(
        "five more checks",
        || runs(&count) >= passed,
        || herd.story(),
    );
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(
        outcome.stdout.matches("web started").count() == 2,
        "web was restarted once",
    );
    outcome.check(
        !outcome.stderr.contains("reaped adopted"),
        "herd's reaper took a check's exit",
    );
}

#[test]
fn a_check_that_fails_n_minus_one_times_does_not() {
    let dir = TempDir::new("live-keep");
    let marker = Marker::new("live-keep");
    let count = dir.join("count");
    let mut herd = group(&dir, &marker, &failing_first(&count, 2));
    herd.expect_line("failed (1 of 3)");
    herd.expect_line("failed (2 of 3)");
    herd.expect_line("web: live again");
    let passed = runs(&count) + 10;
    wait_until(
        "ten more checks",
        || runs(&count) >= passed,
        || herd.story(),
    );
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(
        !outcome.stdout.contains("not live"),
        "web was found not live",
    );
    outcome.check(
        outcome.stdout.matches("web started").count() == 1,
        "web was restarted",
    );
    outcome.check(
        !outcome.stderr.contains("reaped adopted"),
        "herd's reaper took a check's exit",
    );
}

#[test]
fn a_tcp_check_restarts_a_process_that_stops_listening() {
    let dir = TempDir::new("live-tcp");
    let marker = Marker::new("live-tcp");
    let port = free_port();
    let mut command = herd();
    marker
        .apply(&mut command)
        .args(["run", "--color", "never", "--restart", "always"])
        .args(["-c", &format!("web=exec python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {port})); s.listen(); print(\"listening\", flush=True); time.sleep(0.5); s.close(); time.sleep(60)'")])
        .args(["--ready", &format!("web=tcp:{port}")])
        .args(["--live", &format!("web=tcp:{port}"), "--live-interval", "0.1"])
        .args(["--live-failures", "2"]);
    command.current_dir(&dir.0);
    let mut herd = Running::start(&mut command);
    herd.expect_line("web is ready");
    let started = Instant::now();
    let line = herd.expect_line("web: not live: tcp:");
    assert!(line.contains("refused"), "{line}");
    // Closed after 0.5 s, then two failed checks 0.1 s apart.
    assert!(started.elapsed() < Duration::from_secs(10));
    herd.expect_line("web restarting in");
    herd.expect_line("web is ready");
    herd.signal("TERM");
    herd.finish();
}

#[test]
fn bad_liveness_settings_are_refused() {
    for args in [
        &["--live", "web=exec:"][..],
        &["--live", "nonsense"],
        &["--live", "web=http:example.com:80/"],
        &["--live", "web=tcp:0"],
        &["--live-failures", "0"],
        &["--live-failures", "web=-1"],
        &["--live-failures", "99999999999"],
        &["--live-interval", "0"],
        &["--live-interval", "web=nan"],
        &["--live-grace", "-1"],
        &["--live", "nosuch=tcp:80"],
    ] {
        let outcome = run_to_end(herd().args(["run", "-c", "web=true"]).args(args));
        outcome.check(outcome.code() == 125, &format!("{args:?} was taken"));
        outcome.check(
            outcome.stderr.starts_with("herd: ") && outcome.stderr.lines().count() == 1,
            &format!("{args:?}: not one error line"),
        );
    }
}

#[test]
fn a_single_command_that_is_not_live_is_stopped() {
    let dir = TempDir::new("live-single");
    let missing = dir.join("missing");
    let mut command = herd();
    command
        .args(["run", "--live", &format!("file:{}", missing.display())])
        .args([
            "--live-interval",
            "0.05",
            "--live-failures",
            "2",
            "--",
            "sleep",
            "60",
        ]);
    let outcome = run_to_end(&mut command);
    outcome.check(
        outcome.code() == 143,
        "herd did not exit as its SIGTERMed command",
    );
    outcome.check(outcome.stderr.contains("not live"), "no word of why");
}
