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
    // Its answer, or, when herd exits before writing it, the closed
    // connection: both say herd is stopping.
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
// --- reload under load --------------------------------------------------

/// What an open-loop client saw.
struct Load {
    ok: usize,
    /// Each failed request: what went wrong.
    failed: Vec<String>,
    /// The pids that answered: one per generation that served.
    pids: std::collections::BTreeSet<u32>,
}

/// One request on a new connection: the pid that answered, or what failed.
fn request(port: u16) -> Result<u32, String> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let kind = |e: std::io::Error| format!("{:?}", e.kind());
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(kind)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(kind)?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(kind)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(kind)?;
    let body = answer
        .strip_prefix("HTTP/1.1 200 OK\r\n")
        .and_then(|rest| rest.split_once("\r\n\r\n"))
        .map(|(_, body)| body.trim().to_string())
        .ok_or_else(|| format!("bad answer {answer:?}"))?;
    body.parse().map_err(|_| format!("bad pid {body:?}"))
}

/// Requests at `per_second` on new connections for `seconds`, each on a
/// thread of its own (open loop: a slow answer does not slow the next
/// request), while `meanwhile` runs.
fn under_load(port: u16, per_second: u32, seconds: u32, meanwhile: impl FnOnce()) -> Load {
    use std::time::{Duration, Instant};
    let (results, received) = std::sync::mpsc::channel();
    let total = per_second * seconds;
    let every = Duration::from_secs(1) / per_second;
    let scheduler = std::thread::spawn(move || {
        let start = Instant::now();
        for n in 0..total {
            let at = start + every * n;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let results = results.clone();
            std::thread::spawn(move || {
                let _ = results.send(request(port));
            });
        }
    });
    meanwhile();
    scheduler.join().unwrap();
    let mut load = Load {
        ok: 0,
        failed: Vec::new(),
        pids: Default::default(),
    };
    for _ in 0..total {
        match received.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(pid)) => {
                load.ok += 1;
                load.pids.insert(pid);
            }
            Ok(Err(why)) => load.failed.push(why),
            Err(_) => load.failed.push("no answer within 20 s".to_string()),
        }
    }
    load
}

/// The test server's binary, which `cargo test` builds as an example.
fn reload_server() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join("reload_server")
}

/// A herd serving `reload_server` (`startup_ms` start-up, 50 ms requests)
/// on `port`: on a socket herd holds, or, `naive`, on one each generation
/// binds itself. `extra` goes on herd's command line.
fn serving_herd(dir: &TempDir, port: u16, naive: bool, startup_ms: u32, extra: &[&str]) -> Running {
    let mut command = herd();
    command
        .args(["run", "--color", "never", "--state-dir"])
        .arg(dir.join("state"))
        .args(["-c", &format!("web=exec {}", reload_server().display())])
        .args(["--ready", "web=notify", "--grace", "5"])
        .args(extra)
        .env("SERVER_STARTUP_MS", startup_ms.to_string())
        .env("SERVER_REQUEST_MS", "50")
        .env("SERVER_FAIL_IF", dir.join("fail"));
    if naive {
        // The recipe herd replaces: each generation binds the port itself,
        // and a restart stops the old one before the new one starts.
        command.env("SERVER_PORT", port.to_string());
    } else {
        command.args(["--listen", &format!("http=tcp:127.0.0.1:{port}")]);
    }
    let mut herd = Running::start(&mut command);
    herd.expect_line("web is ready");
    herd
}

/// Stops a herd after a load test.
fn stop_after_load(herd: Running) {
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "herd stops cleanly after the load");
}

/// Fails the test with the first failed requests, if any.
fn assert_no_failed_request(load: &Load) {
    assert!(
        load.failed.is_empty(),
        "{} of {} requests failed: {:?}",
        load.failed.len(),
        load.failed.len() + load.ok,
        &load.failed[..load.failed.len().min(10)]
    );
}

/// 20 reloads during 20 s of 200 new connections a second.
fn reload_under_load(naive: bool) -> Load {
    let dir = TempDir::new(if naive { "load-naive" } else { "load" });
    let port = free_port();
    let herd = serving_herd(&dir, port, naive, 150, &[]);
    let trigger = if naive { "restart" } else { "reload" };
    let load = under_load(port, 200, 20, || {
        for n in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(650));
            let mut command = crate::util::herd();
            command
                .args([trigger, "web", "--state-dir"])
                .arg(dir.join("state"));
            let outcome = run_to_end(&mut command);
            outcome.check(outcome.code() == 0, &format!("{trigger} {n}"));
        }
    });
    stop_after_load(herd);
    load
}

/// A new generation that crashes before it is ready, then one that never
/// gets ready (stopped at its ready timeout): the old one serves every
/// request meanwhile, and the next reload works.
#[test]
fn generations_that_crash_or_never_get_ready_fail_and_no_request_fails() {
    let dir = TempDir::new("load-fail");
    let port = free_port();
    let extra = ["--ready-timeout", "web=1"];
    let mut herd = serving_herd(&dir, port, false, 150, &extra);
    let load = under_load(port, 200, 8, || {
        for (failure, reason) in [
            ("crash", "generation 2 ended before it was ready (exit 3)"),
            ("hang", "generation 3 was not ready after 1s"),
        ] {
            fs::write(dir.join("fail"), failure).unwrap();
            let outcome = reload(&dir, &["web"]);
            outcome.check(
                outcome.code() == 1,
                &format!("a reload that meets {failure} fails"),
            );
            outcome.check(outcome.stderr.contains(reason), "and says why");
            herd.expect_line(&format!("web: reload failed: {reason}"));
        }
        fs::remove_file(dir.join("fail")).unwrap();
        let outcome = reload(&dir, &["web"]);
        outcome.check(outcome.code() == 0, "the next reload works");
    });
    assert_no_failed_request(&load);
    assert_eq!(
        load.pids.len(),
        2,
        "generations 1 and 4 serve: {:?}",
        load.pids
    );
    stop_after_load(herd);
}

/// Five `herd reload` within 100 ms: each replaces the generation still on
/// trial, every client hears the one outcome, and one new generation is
/// left serving; no request fails meanwhile.
#[test]
fn five_reloads_within_100_ms_leave_one_new_generation_and_lose_no_request() {
    let dir = TempDir::new("load-five");
    let port = free_port();
    // A start-up long enough that all five arrive while one is on trial.
    let mut herd = serving_herd(&dir, port, false, 1000, &[]);
    let load = under_load(port, 200, 5, || {
        let clients: Vec<Running> = (0..5)
            .map(|_| Running::start(&mut herd_command_reload(&dir)))
            .collect();
        for (n, client) in clients.into_iter().enumerate() {
            let outcome = client.finish();
            outcome.check(outcome.code() == 0, &format!("reload client {n}"));
        }
        herd.expect_line("web: generation 6 is serving; 1 older draining");
    });
    assert_no_failed_request(&load);
    let story = herd.story();
    let replaced = story.matches("is replaced by a newer reload").count();
    assert_eq!(
        replaced, 4,
        "four generations on trial were replaced\n{story}"
    );
    let web_rows = || {
        let status = herd_status(&dir);
        status
            .stdout
            .lines()
            .filter(|l| l.starts_with("web"))
            .count()
    };
    wait_until(
        "one web row in herd status",
        || web_rows() == 1,
        || herd.story(),
    );
    stop_after_load(herd);
}

/// An old generation that ignores SIGTERM gets SIGKILL once its grace is
/// over, and the reload still ends well.
#[test]
fn an_old_generation_that_ignores_sigterm_is_killed_after_its_grace() {
    let dir = TempDir::new("reload-stubborn");
    let mut herd = Running::start(
        herd()
            .args(["run", "--color", "never", "--state-dir"])
            .arg(dir.join("state"))
            .args(["-c", "web=trap '' TERM; echo trapped; exec sleep 1000"])
            .args(["--grace", "web=1"]),
    );
    let old = started_pid(&herd.expect_line("web started (pid"));
    herd.expect_line("web  | trapped");
    let since = std::time::Instant::now();
    let outcome = reload(&dir, &["web"]);
    outcome.check(outcome.code() == 0, "the reload ends well");
    herd.expect_line("web: generation 2 is serving; 1 older draining");
    herd.expect_line("still running after 1s grace: sending SIGKILL");
    herd.expect_line("web generation 1 was killed by SIGKILL");
    let took = since.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900),
        "SIGKILL before the grace was over ({took:?})\n{}",
        herd.story()
    );
    assert!(!is_alive(old), "the old generation is alive");
    herd.signal("TERM");
    herd.expect_line("web was killed by SIGKILL");
    herd.finish();
}

#[test]
fn twenty_reloads_under_load_lose_no_request() {
    let load = reload_under_load(false);
    assert_no_failed_request(&load);
    assert!(
        load.pids.len() >= 21,
        "only {} generations served: {:?}",
        load.pids.len(),
        load.pids
    );
}

/// The same harness sees failures when generations bind the port
/// themselves and are restarted, so its zero above means something.
#[test]
fn the_load_harness_sees_the_failures_of_stop_then_start() {
    let load = reload_under_load(true);
    assert!(
        !load.failed.is_empty(),
        "no failed request in {} with a stop and a start each time",
        load.ok
    );
}
