//! Bad input through the real binary: what herd refuses before it starts
//! anything or touches a file, and odd input it must take.

use crate::util::*;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn group(args: &[&str]) -> Command {
    let mut command = herd();
    command.arg("run").args(["--color", "never"]).args(args);
    command
}

/// Asserts a refusal: exit 125 and exactly `message` on stderr, nothing on stdout.
fn assert_refused(outcome: &Outcome, message: &str) {
    outcome.check(outcome.code() == 125, "exit status 125");
    outcome.check(
        outcome.stderr == format!("herd: {message}\n"),
        &format!("stderr is {message:?}"),
    );
    outcome.check(outcome.stdout.is_empty(), "nothing on stdout");
}

/// The state files that `dir` would hold, which of them exist.
fn state_files_in(dir: &Path) -> Vec<PathBuf> {
    ["pid", "control.sock", "log"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

#[test]
fn name_dot_dot_is_refused_before_it_touches_the_parent_directory() {
    let runtime = TempDir::new("name-dotdot");
    let ran = runtime.join("ran");
    // Root's base is /run/herd, other users' $XDG_RUNTIME_DIR/herd: `..`
    // would be /run or the runtime directory itself.
    let parents = [PathBuf::from("/run"), runtime.0.clone()];
    let before: Vec<Vec<PathBuf>> = parents.iter().map(|dir| state_files_in(dir)).collect();
    let outcome = run_to_end(
        herd()
            .env("XDG_RUNTIME_DIR", &runtime.0)
            .args(["run", "--name", "..", "--", "touch"])
            .arg(&ran),
    );
    assert_refused(
        &outcome,
        "reading arguments: --name: '..' is not a valid name \
         (letters, digits, '_', '.', '-'; not '.' or '..')",
    );
    outcome.check(!ran.exists(), "the command ran");
    let after: Vec<Vec<PathBuf>> = parents.iter().map(|dir| state_files_in(dir)).collect();
    outcome.check(after == before, "state files appeared in the parent");
    outcome.check(
        !runtime.join("herd").exists(),
        "the base directory was created",
    );
}

#[test]
fn name_dot_is_refused_before_it_touches_the_base_directory() {
    let runtime = TempDir::new("name-dot");
    let ran = runtime.join("ran");
    let bases = [PathBuf::from("/run/herd"), runtime.join("herd")];
    let before: Vec<Vec<PathBuf>> = bases.iter().map(|dir| state_files_in(dir)).collect();
    let outcome = run_to_end(
        herd()
            .env("XDG_RUNTIME_DIR", &runtime.0)
            .args(["start", "--name", ".", "-c"])
            .arg(format!("a=touch {}", ran.display())),
    );
    assert_refused(
        &outcome,
        "reading arguments: --name: '.' is not a valid name \
         (letters, digits, '_', '.', '-'; not '.' or '..')",
    );
    outcome.check(!ran.exists(), "the command ran");
    let after: Vec<Vec<PathBuf>> = bases.iter().map(|dir| state_files_in(dir)).collect();
    outcome.check(
        after == before,
        "state files appeared in the base directory",
    );
    outcome.check(
        !runtime.join("herd").exists(),
        "the base directory was created",
    );
}

#[test]
fn a_grace_past_a_year_is_refused_before_the_command_runs() {
    let dir = TempDir::new("grace-year");
    let ran = dir.join("ran");
    let outcome = run_to_end(
        herd()
            .args(["run", "--grace", "1e19", "--", "touch"])
            .arg(&ran),
    );
    assert_refused(
        &outcome,
        "reading arguments: --grace: '1e19' is more than a year (31536000 seconds)",
    );
    outcome.check(!ran.exists(), "the command ran");
}

#[test]
fn a_procfile_duration_past_a_year_names_its_line_and_nothing_starts() {
    let dir = TempDir::new("procfile-year");
    let ran = dir.join("ran");
    let procfile = dir.join("Procfile");
    let text = format!(
        "first: touch {}\nsecond: sleep 1  # herd: ready-timeout=1e19\n",
        ran.display()
    );
    fs::write(&procfile, text).unwrap();
    let procfile = procfile.to_str().unwrap();
    let outcome = run_to_end(&mut group(&["-f", procfile]));
    assert_refused(
        &outcome,
        &format!("{procfile}:2: '1e19' is more than a year (31536000 seconds)"),
    );
    outcome.check(!ran.exists(), "a process ran");
}

#[test]
fn a_nul_byte_in_an_env_file_names_its_line_before_anything_starts() {
    let dir = TempDir::new("env-nul");
    let ran = dir.join("ran");
    let env = dir.join(".env");
    fs::write(&env, "A=1\nB=x\0y\n").unwrap();
    let env = env.to_str().unwrap();
    let command = format!("a=touch {}", ran.display());
    let outcome = run_to_end(&mut group(&["--env-file", env, "-c", &command]));
    assert_refused(
        &outcome,
        &format!("{env}:2: a NUL byte (column 4) cannot be in a command or a variable"),
    );
    outcome.check(!ran.exists(), "a process ran");
}

#[test]
fn a_nul_byte_in_a_procfile_names_its_line_before_anything_starts() {
    let dir = TempDir::new("procfile-nul");
    let ran = dir.join("ran");
    let procfile = dir.join("Procfile");
    fs::write(
        &procfile,
        format!("first: touch {}\nsecond: echo a\0b\n", ran.display()),
    )
    .unwrap();
    let procfile = procfile.to_str().unwrap();
    let outcome = run_to_end(&mut group(&["-f", procfile]));
    assert_refused(
        &outcome,
        &format!("{procfile}:2: a NUL byte (column 15) cannot be in a command or a variable"),
    );
    outcome.check(!ran.exists(), "a process ran");
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_procfile_is_skipped() {
    let dir = TempDir::new("procfile-bom");
    let procfile = dir.join("Procfile");
    fs::write(&procfile, "\u{feff}first: echo from-first\r\n").unwrap();
    let outcome = run_to_end(&mut group(&["-f", procfile.to_str().unwrap()]));
    outcome.check(outcome.code() == 0, "exit status 0");
    outcome.check(
        outcome.stdout.contains("first | from-first\n"),
        "the process ran",
    );
}

#[test]
fn a_byte_order_mark_at_the_start_of_an_env_file_is_skipped() {
    let dir = TempDir::new("env-bom");
    let env = dir.join(".env");
    fs::write(&env, "\u{feff}GREETING=hello\r\n").unwrap();
    let outcome = run_to_end(&mut group(&[
        "--env-file",
        env.to_str().unwrap(),
        "-c",
        "a=echo \"[$GREETING]\"",
    ]));
    outcome.check(outcome.code() == 0, "exit status 0");
    outcome.check(
        outcome.stdout.contains("a    | [hello]\n"),
        "GREETING is set",
    );
}

#[test]
fn a_tcp_ready_check_is_not_passed_by_another_programs_listener() {
    // The test holds the port: a check that any listener passes would
    // call `a` ready at once and start `b`.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ready = format!("a=tcp:{port}");
    let outcome = run_to_end(&mut group(&[
        "-c",
        "a=exec sleep 100",
        "--ready",
        &ready,
        "--ready-timeout",
        "0.5",
        "-c",
        "b=echo b ran",
    ]));
    outcome.check(outcome.code() == 124, "exit status 124");
    outcome.check(
        outcome.stderr.contains("a: not ready after 0.5s"),
        "the ready check timed out",
    );
    outcome.check(!outcome.stdout.contains("b started"), "b was started");
    drop(listener);
}

#[test]
fn a_tcp_ready_check_at_an_address_and_port_from_the_environment_passes() {
    let port = free_port().to_string();
    let server = "web=exec python3 -c 'import os,socket,time; s=socket.socket(); \
                  s.bind((\"127.0.0.1\", int(os.environ[\"PORT\"]))); s.listen(); \
                  print(\"listening\", flush=True); time.sleep(100)'";
    let outcome = run_to_end(&mut group(&[
        "--port-base",
        &port,
        "-c",
        server,
        "--ready",
        "web=tcp:127.0.0.1:$PORT",
        "-c",
        "after=echo after web",
    ]));
    outcome.check(outcome.code() == 0, "exit status 0 (after exited 0)");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let at = |needle: &str| lines.iter().position(|line| line.contains(needle));
    let (listening, ready, after) = (
        at("web   | listening"),
        at("web is ready"),
        at("after started"),
    );
    outcome.check(
        listening.is_some() && ready > listening && after > ready,
        "web listens, then is ready, then after starts",
    );
}
