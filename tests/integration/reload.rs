//! `herd reload` and `--watch`: a new generation replaces the serving one
//! only once it is ready; one that fails leaves the old one serving.

use crate::util::*;
use std::fs;

/// `herd reload ARGS --state-dir DIR`.
fn reload(dir: &TempDir, args: &[&str]) -> Outcome {
    let state = dir.join("state");
    let mut command = herd();
    command
        .arg("reload")
        .args(args)
        .arg("--state-dir")
        .arg(state);
    run_to_end(&mut command)
}

/// The pid a line `NAME started (pid N)` gives.
fn started_pid(line: &str) -> u32 {
    line.rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

#[test]
fn a_reload_starts_a_new_generation_and_then_stops_the_old_one() {
    let dir = TempDir::new("reload-ok");
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args(["-c", "web=exec sleep 1000", "-c", "db=exec sleep 1000"]),
    );
    let old = started_pid(&herd.expect_line("web started (pid"));
    herd.expect_line("db started (pid");
    let outcome = reload(&dir, &["web"]);
    outcome.check(outcome.code() == 0, "herd reload web exits 0");
    herd.expect_line("reloading web: starting generation 2");
    let new = started_pid(&herd.expect_line("web started (pid"));
    herd.expect_line("web: generation 2 is serving; 1 older draining");
    herd.expect_line("web generation 1 was killed by SIGTERM");
    assert_ne!(old, new);
    assert!(
        is_alive(new),
        "the new generation is not running\n{}",
        herd.story()
    );
    wait_until(
        "the old generation to go",
        || !is_alive(old),
        || herd.story(),
    );
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "herd exits 0 after the reload");
}

#[test]
fn a_new_generation_that_fails_before_ready_leaves_the_old_one_serving() {
    let dir = TempDir::new("reload-fail");
    let port = free_port();
    let broken = dir.join("broken");
    let listener = format!(
        "[ -e {} ] && exit 3; exec python3 -c \"import socket,time; s=socket.socket(); \
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(1000)\"",
        broken.display()
    );
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args(["-c", &format!("web={listener}")])
            .args(["--ready", &format!("web=tcp:{port}")]),
    );
    let old = started_pid(&herd.expect_line("web started (pid"));
    herd.expect_line("web is ready");
    fs::write(&broken, "").unwrap();
    let outcome = reload(&dir, &[]);
    outcome.check(outcome.code() == 1, "a failed reload exits 1");
    outcome.check(
        outcome.stderr.contains("reload failed")
            && outcome
                .stderr
                .contains("generation 2 ended before it was ready (exit 3)"),
        "the reason is given",
    );
    herd.expect_line("web: reload failed: generation 2 ended before it was ready (exit 3)");
    assert!(
        is_alive(old),
        "the old generation was stopped\n{}",
        herd.story()
    );
    let mut status = herd_status(&dir);
    status.check(status.code() == 0, "status answers");
    status.check(
        status.stdout.contains("RELOAD") && status.stdout.contains("reload failed"),
        "status shows the failed reload",
    );
    // Both generations bind the port (SO_REUSEPORT) until herd's own
    // sockets (--listen) take that part.
    fs::remove_file(&broken).unwrap();
    status = reload(&dir, &["web"]);
    status.check(status.code() == 0, "the next reload works");
    herd.expect_line("web: generation 3 is serving; 1 older draining");
    wait_until(
        "the old generation to go",
        || !is_alive(old),
        || herd.story(),
    );
    herd.signal("TERM");
    herd.finish();
}

fn herd_status(dir: &TempDir) -> Outcome {
    let mut command = herd();
    command
        .arg("status")
        .arg("--state-dir")
        .arg(dir.join("state"));
    run_to_end(&mut command)
}

#[test]
fn a_change_to_a_watched_directory_reloads_once_per_burst() {
    let dir = TempDir::new("reload-watch");
    let watched = dir.join("conf");
    fs::create_dir(&watched).unwrap();
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--watch"])
            .arg(&watched)
            .args(["-c", "web=exec sleep 1000"]),
    );
    herd.expect_line("web started (pid");
    for i in 0..5 {
        fs::write(watched.join(format!("f{i}")), "x").unwrap();
    }
    herd.expect_line("reloading web: starting generation 2");
    herd.expect_line("web: generation 2 is serving");
    fs::write(watched.join("again"), "x").unwrap();
    herd.expect_line("reloading web: starting generation 3");
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(
        !outcome.stdout.contains("generation 4"),
        "one reload per burst of changes",
    );
}

#[test]
fn a_watch_path_that_does_not_exist_is_refused_before_anything_starts() {
    let mut command = herd();
    command.args([
        "run",
        "--watch",
        "/nonexistent/herd",
        "-c",
        "web=exec sleep 1000",
    ]);
    let outcome = run_to_end(&mut command);
    outcome.check(outcome.code() == 125, "125");
    outcome.check(
        outcome.stderr == "herd: watching /nonexistent/herd: no such file or directory\n",
        "the message names the path",
    );
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn fifty_reloads_leave_herd_with_the_fds_it_had() {
    let dir = TempDir::new("reload-fds");
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args(["-c", "web=echo serving; exec sleep 1000"]),
    );
    herd.expect_line("web started (pid");
    herd.expect_line("web  | serving");
    let before = fd_count(herd.pid());
    for n in 2..=51 {
        let outcome = reload(&dir, &["web"]);
        outcome.check(outcome.code() == 0, &format!("reload {n}"));
        herd.expect_line(&format!("web generation {} was killed by SIGTERM", n - 1));
    }
    // The last one's reader and the client's connection are gone too.
    wait_until(
        "herd's fds to settle",
        || fd_count(herd.pid()) == before,
        || {
            format!(
                "{} fds, {before} before\n{}",
                fd_count(herd.pid()),
                herd.story()
            )
        },
    );
    herd.signal("TERM");
    herd.finish();
}

#[test]
fn sigterm_during_a_reload_stops_every_generation_and_fails_the_reload() {
    let dir = TempDir::new("reload-term");
    let port = free_port();
    let waits = dir.join("waits");
    // The second generation never gets ready: nothing listens on its port.
    let web = format!(
        "if [ -e {w} ]; then exec sleep 1000; fi; touch {w}; exec python3 -c \"import socket,time; \
         s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(1000)\"",
        w = waits.display()
    );
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args([
                "-c",
                &format!("web={web}"),
                "--ready",
                &format!("web=tcp:{port}"),
            ]),
    );
    let old = started_pid(&herd.expect_line("web started (pid"));
    herd.expect_line("web is ready");
    let client = Running::start(&mut herd_command_reload(&dir));
    herd.expect_line("reloading web: starting generation 2");
    let new = started_pid(&herd.expect_line("web started (pid"));
    herd.signal("TERM");
    let outcome = client.finish();
    outcome.check(outcome.code() == 1, "the waiting reload fails");
    outcome.check(outcome.stderr.contains("herd is stopping"), "and says why");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "herd stops cleanly");
    assert!(!is_alive(old) && !is_alive(new), "a generation is left");
}

fn herd_command_reload(dir: &TempDir) -> std::process::Command {
    let mut command = herd();
    command
        .arg("reload")
        .arg("--state-dir")
        .arg(dir.join("state"));
    command
}
