//! `--listen` sockets handed to children (LISTEN_FDS, LISTEN_FDNAMES,
//! LISTEN_PID), `--sockets`, adoption from a fake systemd, and
//! `ready=fd:N`.

use crate::util::*;
use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

/// A shell script that checks LISTEN_PID against its own pid, prints what
/// it got (`TAG pid=PID fds=N names=A:B listen_pid=ok|bad|unset`) and
/// becomes a `sleep` with the same pid and fds, for `open_fds` to look at.
fn report(tag: &str) -> String {
    format!(
        "if [ -z \"${{LISTEN_PID+x}}\" ]; then p=unset; \
         elif [ \"$LISTEN_PID\" = \"$$\" ]; then p=ok; else p=bad; fi; \
         echo \"{tag} pid=$$ fds=${{LISTEN_FDS-unset}} names=${{LISTEN_FDNAMES-unset}} listen_pid=$p\"; \
         exec sleep 30"
    )
}

/// Waits for `TAG pid=PID rest` and returns (PID, rest).
fn reported(herd: &mut Running, tag: &str) -> (u32, String) {
    let line = herd.expect_line(&format!("{tag} pid="));
    let after = line.split_once(&format!("{tag} pid=")).unwrap().1;
    let (pid, rest) = after.split_once(' ').unwrap();
    (pid.parse().unwrap(), rest.to_string())
}

/// Waits until `pid` has exactly the fds `expected` open: the loader of the
/// `sleep` it becomes opens and closes a library or two on the way.
fn settles_on_fds(herd: &Running, pid: u32, expected: &str) {
    wait_until(
        &format!("process {pid} to hold fds {expected}"),
        || open_fds(pid) == expected,
        || format!("it holds {}\n{}", open_fds(pid), herd.story()),
    );
}

/// The fds `pid` has open, in order, as "0 1 2 3".
fn open_fds(pid: u32) -> String {
    let mut fds: Vec<u32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    fds.sort_unstable();
    let fds: Vec<String> = fds.iter().map(u32::to_string).collect();
    fds.join(" ")
}

/// What fd `fd` of `pid` is, as /proc shows it ("socket:[123]").
fn fd_target(pid: u32, fd: u32) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .unwrap()
        .display()
        .to_string()
}

/// Reads a connection to its end.
fn read_all(mut stream: impl Read) -> String {
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_child_gets_its_sockets_at_fd_3_with_exact_listen_variables_and_no_other_fd() {
    let dir = TempDir::new("listen-fds");
    let path = dir.join("app.sock");
    let mut herd = Running::start(
        herd()
            .args(["run", "--listen", "http=tcp:127.0.0.1:0", "--listen"])
            .arg(format!("unix:{}", path.display()))
            // herd's own variables are for herd, never for its child.
            .env("LISTEN_FDS", "7")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDNAMES", "stale")
            .args(["--", "sh", "-c", &report("child")]),
    );
    let (pid, got) = reported(&mut herd, "child");
    assert_eq!(
        got,
        "fds=2 names=http:unknown listen_pid=ok",
        "{}",
        herd.story()
    );
    settles_on_fds(&herd, pid, "0 1 2 3 4");
    for fd in [3, 4] {
        let target = fd_target(pid, fd);
        assert!(target.starts_with("socket:["), "fd {fd}: {target}");
    }
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 128 + 15, "exit code");
}

#[test]
fn a_child_without_sockets_gets_no_listen_variables_even_when_herd_has_them() {
    let mut herd = Running::start(
        herd()
            .args(["run", "-c", &format!("a={}", report("a"))])
            .env("LISTEN_FDS", "2")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDNAMES", "x:y"),
    );
    let (_, got) = reported(&mut herd, "a");
    assert_eq!(
        got,
        "fds=unset names=unset listen_pid=unset",
        "{}",
        herd.story()
    );
    herd.signal("TERM");
    herd.finish();
}

#[test]
fn a_child_accepts_connections_on_fd_3_across_restarts_on_one_port() {
    // Each run accepts one connection, answers with its pid and exits; herd
    // holds the socket meanwhile, so the next connection waits in its queue.
    let server = "import os, socket\n\
                  s = socket.socket(fileno=3)\n\
                  print('port', s.getsockname()[1], flush=True)\n\
                  c, _ = s.accept()\n\
                  c.sendall(b'pid %d' % os.getpid())\n\
                  c.close()\n";
    let mut herd = Running::start(herd().args([
        "run",
        "--listen",
        "tcp:127.0.0.1:0",
        "--restart",
        "always",
        "--backoff-min",
        "0",
        "-c",
        &format!("web=exec python3 -c \"{server}\""),
    ]));
    let line = herd.expect_line("port ");
    let port: u16 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let answer = read_all(TcpStream::connect(("127.0.0.1", port)).unwrap());
        assert!(answer.starts_with("pid "), "{answer}\n{}", herd.story());
        pids.push(answer);
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "one run per connection: {pids:?}");
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.stdout.matches("port ").count() >= 3, "runs");
    outcome.check(
        outcome
            .stdout
            .lines()
            .filter(|l| l.contains("port "))
            .all(|l| l.ends_with(&format!("port {port}"))),
        "every run had the same port",
    );
}

#[test]
fn sockets_restricts_which_process_gets_which_by_name() {
    let dir = TempDir::new("listen-restrict");
    let procfile = dir.join("Procfile");
    fs::write(
        &procfile,
        format!(
            "a: {}\nb: {}\nc: {} # herd: sockets=\nd: {} # herd: sockets=admin,http\n",
            report("a"),
            report("b"),
            report("c"),
            report("d")
        ),
    )
    .unwrap();
    let mut herd = Running::start(
        herd()
            .args(["run", "--listen", "http=tcp:127.0.0.1:0", "--listen"])
            .arg(format!("admin=unix:{}", dir.join("admin.sock").display()))
            .arg("-f")
            .arg(&procfile)
            .args(["--sockets", "b=admin"]),
    );
    let mut inodes = Vec::new();
    for (tag, expected, fds) in [
        ("a", "fds=2 names=http:admin listen_pid=ok", "0 1 2 3 4"),
        ("b", "fds=1 names=admin listen_pid=ok", "0 1 2 3"),
        // Started with posix_spawn, which passes on what herd inherited
        // (as the test harness may leak some): no socket, though.
        ("c", "fds=unset names=unset listen_pid=unset", ""),
        // In --listen order, whatever the order of the note.
        ("d", "fds=2 names=http:admin listen_pid=ok", "0 1 2 3 4"),
    ] {
        let (pid, got) = reported(&mut herd, tag);
        assert_eq!(got, expected, "{tag}\n{}", herd.story());
        if fds.is_empty() {
            let sockets = open_fds(pid)
                .split(' ')
                .filter(|fd| fd_target(pid, fd.parse().unwrap()).starts_with("socket:"))
                .count();
            assert_eq!(sockets, 0, "{tag}\n{}", herd.story());
        } else {
            settles_on_fds(&herd, pid, fds);
        }
        inodes.push((tag, pid));
    }
    // b's one socket is a's second: the unix one.
    let (a, b, d) = (inodes[0].1, inodes[1].1, inodes[3].1);
    assert_eq!(fd_target(b, 3), fd_target(a, 4));
    assert_eq!(fd_target(d, 3), fd_target(a, 3));
    assert_ne!(fd_target(a, 3), fd_target(a, 4));
    herd.signal("TERM");
    herd.finish();
}

#[test]
fn a_socket_name_nobody_listens_under_is_an_error() {
    let outcome = run_to_end(herd().args([
        "run",
        "--listen",
        "http=tcp:127.0.0.1:0",
        "-c",
        "b=true",
        "--sockets",
        "b=http,admin",
    ]));
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr
            == "herd: reading arguments: --sockets b: no --listen socket is named 'admin'\n",
        "message",
    );
    let outcome = run_to_end(herd().args(["run", "--sockets", "b=x", "--", "true"]));
    outcome.check(outcome.code() == 125, "--sockets with one command");
}

#[test]
fn a_unix_socket_herd_made_is_removed_on_exit_and_a_stale_one_is_replaced() {
    let dir = TempDir::new("listen-unix");
    let path = dir.join("s");
    // A socket left by a program that died: nobody accepts on it.
    drop(UnixListener::bind(&path).unwrap());
    let script = format!("test -S {} && echo present", path.display());
    let outcome = run_to_end(
        herd()
            .arg("run")
            .arg("--listen")
            .arg(format!("unix:{}", path.display()))
            .args(["--", "sh", "-c", &script]),
    );
    outcome.check(outcome.code() == 0, "exit code");
    outcome.check(outcome.stdout == "present\n", "the socket was there");
    outcome.check(!path.exists(), "the socket file is gone");

    // A child that puts a file of its own at the path keeps it.
    let script = format!("rm {0} && echo mine > {0}", path.display());
    let outcome = run_to_end(
        herd()
            .arg("run")
            .arg("--listen")
            .arg(format!("unix:{}", path.display()))
            .args(["--", "sh", "-c", &script]),
    );
    outcome.check(outcome.code() == 0, "exit code");
    outcome.check(
        fs::read_to_string(&path).unwrap() == "mine\n",
        "another file at the path stays",
    );
}

#[test]
fn a_live_socket_or_another_file_at_the_path_is_refused_and_left_alone() {
    let dir = TempDir::new("listen-taken");
    let live = dir.join("live");
    let _listener = UnixListener::bind(&live).unwrap();
    let outcome = run_to_end(
        herd()
            .arg("run")
            .arg("--listen")
            .arg(format!("unix:{}", live.display()))
            .args(["--", "true"]),
    );
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr
            == format!(
                "herd: binding --listen unix:{}: another program listens on it\n",
                live.display()
            ),
        "message for a live socket",
    );
    outcome.check(live.exists(), "the live socket stays");
    let file = dir.join("file");
    fs::write(&file, "data").unwrap();
    let outcome = run_to_end(
        herd()
            .arg("run")
            .arg("--listen")
            .arg(format!("unix:{}", file.display()))
            .args(["--", "true"]),
    );
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr.contains("it exists and is not a socket"),
        "message for a file",
    );
    outcome.check(fs::read_to_string(&file).unwrap() == "data", "file kept");
}

#[test]
fn adopts_the_sockets_a_fake_systemd_passed_by_name() {
    // The exec helper binds two sockets, puts them at fds 3 and 4 and execs
    // herd with LISTEN_PID set to its own pid, which exec keeps.
    let child = "import os, socket\n\
                 s = socket.socket(fileno=3)\n\
                 print('child', os.environ['LISTEN_FDS'], os.environ['LISTEN_FDNAMES'], \
                 int(os.environ['LISTEN_PID']) == os.getpid(), s.getsockname()[1], flush=True)\n\
                 c, _ = s.accept()\n\
                 c.sendall(b'served')\n\
                 c.close()\n";
    let helper = "import os, socket, sys\n\
                  a = socket.socket(); a.bind(('127.0.0.1', 0)); a.listen(8)\n\
                  b = socket.socket(); b.bind(('127.0.0.1', 0)); b.listen(8)\n\
                  os.dup2(a.fileno(), 3); os.dup2(b.fileno(), 4)\n\
                  os.set_inheritable(3, True); os.set_inheritable(4, True)\n\
                  port = a.getsockname()[1]\n\
                  print('systemd', port, flush=True)\n\
                  env = dict(os.environ, LISTEN_FDS='2', LISTEN_PID=str(os.getpid()), \
                  LISTEN_FDNAMES='web:extra')\n\
                  herd, child = sys.argv[1], sys.argv[2]\n\
                  # Binding the same port again would fail: only adoption works.\n\
                  os.execve(herd, [herd, 'run', '--listen', 'web=tcp:127.0.0.1:%d' % port, \
                  '--', 'python3', '-c', child], env)\n";
    let mut herd = Running::start(std::process::Command::new("python3").args([
        "-c",
        helper,
        herd_path(),
        child,
    ]));
    let line = herd.expect_line("systemd ");
    let port: u16 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let line = herd.expect_line("child ");
    assert_eq!(
        line,
        format!("child 2 web:extra True {port}"),
        "{}",
        herd.story()
    );
    let answer = read_all(TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert_eq!(answer, "served", "{}", herd.story());
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "exit code");
}

#[test]
fn listen_fds_meant_for_herd_that_counts_a_closed_fd_is_an_error() {
    let helper = "import os, sys\n\
                  env = dict(os.environ, LISTEN_FDS='3', LISTEN_PID=str(os.getpid()))\n\
                  os.execve(sys.argv[1], [sys.argv[1], 'run', '--', 'true'], env)\n";
    let outcome =
        run_to_end(std::process::Command::new("python3").args(["-c", helper, herd_path()]));
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr
            == "herd: adopting the sockets systemd passed (LISTEN_FDS): LISTEN_FDS=3, but fd 3: bad file descriptor\n",
        "message",
    );
}

#[test]
fn ready_fd_makes_a_process_ready_when_it_writes_a_newline() {
    let dir = TempDir::new("listen-ready");
    let flag = dir.join("flag");
    let mut herd = Running::start(herd().args([
        "run",
        "--listen",
        "tcp:127.0.0.1:0",
        "-c",
        &format!(
            "a=sleep 0.3; touch {}; echo >&5; {}",
            flag.display(),
            report("a")
        ),
        "--ready",
        "a=fd:5",
        // b finds the flag only if it waited for a's newline.
        "-c",
        &format!(
            "b=test -e {} && echo b-saw-the-flag; sleep 30",
            flag.display()
        ),
    ]));
    herd.expect_line("a is ready");
    herd.expect_line("b-saw-the-flag");
    let (pid, got) = reported(&mut herd, "a");
    assert_eq!(got, "fds=1 names=unknown listen_pid=ok", "{}", herd.story());
    // The ready pipe at 5, beside the socket at 3, and nothing else.
    settles_on_fds(&herd, pid, "0 1 2 3 5");
    assert!(fd_target(pid, 5).starts_with("pipe:["));
    herd.signal("TERM");
    herd.finish();
}

#[test]
fn ready_fd_closed_without_a_newline_is_not_ready() {
    let outcome = run_to_end(herd().args([
        "run",
        "-c",
        "a=printf partial >&5; exec 5>&-; sleep 30",
        "--ready",
        "a=fd:5",
        "--ready-timeout",
        "a=0.5",
        "-c",
        "b=echo b-ran",
    ]));
    outcome.check(outcome.code() == 124, "exit code");
    outcome.check(
        outcome
            .stdout
            .contains("a closed its ready fd without writing a newline: it is not ready"),
        "the line",
    );
    outcome.check(!outcome.stdout.contains("b-ran"), "b never started");
}

#[test]
fn a_ready_fd_among_the_socket_fds_or_out_of_range_is_refused() {
    let outcome = run_to_end(herd().args([
        "run",
        "--listen",
        "tcp:127.0.0.1:0",
        "--listen",
        "tcp:127.0.0.1:0",
        "-c",
        "a=true",
        "--ready",
        "a=fd:4",
    ]));
    outcome.check(outcome.code() == 125, "exit code");
    outcome.check(
        outcome.stderr
            == "herd: reading arguments: a: ready=fd:4 is one of its socket fds (3 to 4); use fd:5 or more\n",
        "message",
    );
    for fd in ["2", "1024", "x", "-5"] {
        let outcome =
            run_to_end(herd().args(["run", "-c", "a=true", "--ready", &format!("a=fd:{fd}")]));
        outcome.check(outcome.code() == 125, fd);
        outcome.check(
            outcome
                .stderr
                .contains("not an fd for ready=fd:N (3 to 1023)"),
            fd,
        );
    }
}

#[test]
fn exec_failures_through_the_fork_path_give_127_and_126_naming_the_program() {
    let listen = ["run", "--listen", "tcp:127.0.0.1:0"];
    let outcome = run_to_end(herd().args(listen).arg("herd-no-such-command"));
    outcome.check(outcome.code() == 127, "exit code");
    outcome.check(
        outcome.stderr == "herd: executing herd-no-such-command: command not found\n",
        "message",
    );
    let outcome = run_to_end(herd().args(listen).arg("/nonexistent/tool"));
    outcome.check(outcome.code() == 127, "exit code for a path");
    outcome.check(
        outcome.stderr == "herd: executing /nonexistent/tool: no such file or directory\n",
        "message for a path",
    );
    let dir = TempDir::new("listen-noexec");
    let script = dir.join("not-executable");
    fs::write(&script, "#!/bin/sh\necho never\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let outcome = run_to_end(herd().args(listen).arg(&script));
    outcome.check(outcome.code() == 126, "exit code");
    outcome.check(
        outcome.stderr == format!("herd: executing {}: permission denied\n", script.display()),
        "message",
    );
    // Found through PATH, only as a file that may not be executed.
    let outcome = run_to_end(
        herd()
            .args(listen)
            .arg("not-executable")
            .env("PATH", &dir.0),
    );
    outcome.check(outcome.code() == 126, "exit code through PATH");
}

#[test]
fn bad_listen_addresses_are_refused_naming_the_flag() {
    let long = format!("unix:/tmp/{}", "x".repeat(200));
    for (address, why) in [
        (
            "tcp:70000",
            "--listen: '70000' is not a TCP port (0 to 65535)",
        ),
        ("tcp:host.example:80", "herd looks up no host names"),
        ("a:b=tcp:80", "may not contain ':'"),
        ("udp:53", "is not an address"),
        (long.as_str(), "a unix socket's path has at most 107"),
    ] {
        let outcome = run_to_end(herd().args(["run", "--listen", address, "--", "true"]));
        outcome.check(outcome.code() == 125, address);
        outcome.check(
            outcome
                .stderr
                .starts_with("herd: reading arguments: --listen: "),
            address,
        );
        outcome.check(outcome.stderr.contains(why), address);
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let outcome = run_to_end(herd().args([
        "run",
        "--listen",
        &format!("tcp:127.0.0.1:{port}"),
        "--",
        "true",
    ]));
    outcome.check(outcome.code() == 125, "a taken port");
    outcome.check(
        outcome.stderr
            == format!("herd: binding --listen tcp:127.0.0.1:{port}: address already in use\n"),
        "message for a taken port",
    );
}

fn many_listens(count: usize) -> Vec<String> {
    (0..count)
        .flat_map(|_| ["--listen".to_string(), "tcp:127.0.0.1:0".to_string()])
        .collect()
}

#[test]
fn two_thousand_sockets_reach_the_child_when_the_fd_limit_allows() {
    let outcome = run_to_end(
        std::process::Command::new("sh")
            .args([
                "-c",
                "ulimit -n 4096 && exec \"$@\"",
                "sh",
                herd_path(),
                "run",
            ])
            .args(many_listens(2000))
            .args(["--", "sh", "-c", "echo $LISTEN_FDS; ls /proc/$$/fd | wc -l"]),
    );
    outcome.check(outcome.code() == 0, "exit code");
    outcome.check(outcome.stdout == "2000\n2003\n", "the child's sockets");
}

#[test]
fn a_full_fd_table_is_a_clear_error() {
    // Binding runs out of fds.
    let outcome = run_to_end(
        std::process::Command::new("sh")
            .args([
                "-c",
                "ulimit -n 64 && exec \"$@\"",
                "sh",
                herd_path(),
                "run",
            ])
            .args(many_listens(2000))
            .args(["--", "true"]),
    );
    outcome.check(outcome.code() == 125, "exit code when binding");
    outcome.check(
        outcome
            .stderr
            .starts_with("herd: binding --listen tcp:127.0.0.1:0: ")
            && outcome.stderr.ends_with("too many open files\n"),
        "message when binding",
    );
    // Binding fits, handing the sockets over does not.
    let outcome = run_to_end(
        std::process::Command::new("sh")
            .args([
                "-c",
                "ulimit -n 100 && exec \"$@\"",
                "sh",
                herd_path(),
                "run",
            ])
            .args(many_listens(60))
            .args(["--", "true"]),
    );
    outcome.check(outcome.code() == 125, "exit code when spawning");
    outcome.check(
        outcome.stderr == "herd: executing true: too many open files\n",
        "message when spawning",
    );
}

#[test]
fn sighup_reloads_a_single_command_that_holds_sockets() {
    let mut herd = Running::start(herd().args([
        "run",
        "--listen",
        "tcp:127.0.0.1:0",
        "--",
        "sh",
        "-c",
        // Says so only once its trap is set, so that the TERM below finds it.
        "trap 'exit 0' TERM; echo child is up as $$; sleep 30 & wait",
    ]));
    let first = herd.expect_line("child is up as ");
    herd.signal("HUP");
    // Not herd's own "starting generation 2": the new child's line.
    let second = herd.expect_line("child is up as ");
    assert_ne!(first, second, "{}", herd.story());
    herd.signal("TERM");
    let outcome = herd.finish();
    outcome.check(outcome.code() == 0, "exit code");
}
