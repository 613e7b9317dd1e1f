//! The notify protocol through the real binary: python3's socket module,
//! `herd notify` and systemd-notify as senders to herd's socket, strangers
//! and garbage, and herd's own datagrams to a fake manager's socket.

use crate::util::*;
use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::Command;
use std::time::{Duration, Instant};

/// A sender of datagrams to `$NOTIFY_SOCKET`: each argument is one datagram
/// (`\n` written as `\\n`), or an action: `wait:PATH`, `sleep:SECS`,
/// `fds:N` (a datagram carrying N fds), `oversized`, `nul`, `binary`,
/// `mainpid-fork` (a child in a session of its own is declared with
/// MAINPID= and then sends READY=1 itself).
const SENDER: &str = r#"
import array, os, socket, sys, time
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def send(data):
    s.sendto(data, address)
for arg in sys.argv[1:]:
    if arg.startswith("wait:"):
        while not os.path.exists(arg[5:]):
            time.sleep(0.01)
    elif arg.startswith("sleep:"):
        time.sleep(float(arg[6:]))
    elif arg.startswith("fds:"):
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(int(arg[4:]))]
        rights = array.array("i", fds)
        s.sendmsg([b"X_WITH_FDS=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)], 0, address)
        for fd in fds:
            os.close(fd)
    elif arg == "oversized":
        send(b"READY=1\n" + b"x" * 10000)
    elif arg == "nul":
        send(b"READY=1\0")
    elif arg == "binary":
        send(b"\xff\xfeREADY=1")
    elif arg == "mainpid-fork":
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.setsid()
            os.read(r, 1)
            send(b"READY=1\nSTATUS=from the declared main pid")
            time.sleep(0.5)
            os._exit(0)
        send(("MAINPID=%d" % pid).encode())
        os.write(w, b"x")
    else:
        send(arg.replace("\\n", "\n").encode())
sys.stdout.flush()
"#;

struct Notified {
    tmp: TempDir,
}

impl Notified {
    fn new(tag: &str) -> Notified {
        let tmp = TempDir::new(&format!("notify-{tag}"));
        fs::write(tmp.join("sender.py"), SENDER).unwrap();
        Notified { tmp }
    }

    /// A shell command that runs the sender with `args`.
    fn sender(&self, args: &[&str]) -> String {
        let quoted: Vec<String> = args.iter().map(|arg| format!("'{arg}'")).collect();
        format!(
            "python3 {} {}",
            self.tmp.join("sender.py").display(),
            quoted.join(" ")
        )
    }

    fn state_dir(&self) -> String {
        self.tmp.join("g").display().to_string()
    }

    fn file(&self, name: &str) -> String {
        self.tmp.join(name).display().to_string()
    }

    /// `herd run --state-dir DIR ARGS`, without a NOTIFY_SOCKET of its own.
    fn run(&self, args: &[&str]) -> Running {
        let mut command = herd();
        command
            .env_remove("NOTIFY_SOCKET")
            .args(["run", "--state-dir", &self.state_dir()])
            .args(args);
        Running::start(&mut command)
    }

    fn status(&self, json: bool) -> String {
        let mut command = herd();
        command.args(["status", "--state-dir", &self.state_dir()]);
        if json {
            command.arg("--json");
        }
        run_to_end(&mut command).stdout
    }

    /// Waits until `herd status` shows a line with all of `needles`.
    fn expect_status(&self, herd: &Running, needles: &[&str]) {
        wait_until(
            &format!("a status row with {needles:?}"),
            || {
                self.status(false)
                    .lines()
                    .any(|line| needles.iter().all(|n| line.contains(n)))
            },
            || format!("status:\n{}\n{}", self.status(false), herd.story()),
        );
    }
}

fn status_row(status: &str, name: &str) -> String {
    status
        .lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_notify_process_holds_back_the_next_until_ready_and_its_keys_reach_herd_status() {
    let t = Notified::new("keys");
    let (go, go2, go3, go4) = (t.file("go"), t.file("go2"), t.file("go3"), t.file("go4"));
    let db = t.sender(&[
        "STATUS=warming up",
        &format!("wait:{go}"),
        "READY=1\\nSTATUS=serving",
        &format!("wait:{go2}"),
        "RELOADING=1\\nMONOTONIC_USEC=1",
        &format!("wait:{go3}"),
        "READY=1\\nWATCHDOG=1\\nX_UNKNOWN=yes",
        &format!("wait:{go4}"),
        "STOPPING=1",
        "sleep:30",
    ]);
    let mut herd = t.run(&[
        "--ready",
        "db=notify",
        "-c",
        &format!("db={db}"),
        "-c",
        "web=echo web up; sleep 30",
    ]);
    herd.expect_line("db started");
    t.expect_status(&herd, &["db", "starting", "warming up"]);
    let status = t.status(false);
    assert!(
        status_row(&status, "web").contains("waiting"),
        "web waits for db's READY=1\n{status}"
    );
    fs::write(&go, "").unwrap();
    herd.expect_line("db is ready");
    herd.expect_line("| web up");
    t.expect_status(&herd, &["db", "running", "serving"]);
    fs::write(&go2, "").unwrap();
    t.expect_status(&herd, &["db", "reloading", "serving"]);
    fs::write(&go3, "").unwrap();
    t.expect_status(&herd, &["db", "running"]);
    wait_until(
        "a watchdog time in status --json",
        || t.status(true).contains("\"watchdog\":0."),
        || t.status(true),
    );
    fs::write(&go4, "").unwrap();
    t.expect_status(&herd, &["db", "stopping", "serving"]);
    let status = t.status(false);
    assert!(status_row(&status, "web").contains("running"), "{status}");
}

#[test]
fn a_pid_declared_with_mainpid_speaks_for_its_process() {
    let t = Notified::new("mainpid");
    let db = t.sender(&["mainpid-fork", "sleep:30"]);
    let mut herd = t.run(&[
        "--ready",
        "db=notify",
        "-c",
        &format!("db={db}"),
        "-c",
        "web=echo web up; sleep 30",
    ]);
    herd.expect_line("db is ready");
    herd.expect_line("| web up");
    t.expect_status(&herd, &["db", "from the declared main pid"]);
}

#[test]
fn herd_notify_and_systemd_notify_from_shell_children() {
    let t = Notified::new("shell");
    let me = herd_path();
    let mut args = vec![
        "--ready".to_string(),
        "a=notify".to_string(),
        "-c".to_string(),
        format!("a={me} notify --status 'from sh'; {me} notify --ready; sleep 30"),
    ];
    let systemd_notify = Command::new("systemd-notify")
        .arg("--help")
        .output()
        .is_ok_and(|out| out.status.success());
    if systemd_notify {
        args.extend([
            "--ready".to_string(),
            "b=notify".to_string(),
            "-c".to_string(),
            "b=systemd-notify --ready --status='from systemd-notify'; sleep 30".to_string(),
        ]);
    } else {
        eprintln!("systemd-notify is not installed: only herd notify is tried");
    }
    args.extend(["-c".to_string(), "c=echo c up; sleep 30".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut herd = t.run(&args);
    herd.expect_line("a is ready");
    if systemd_notify {
        herd.expect_line("b is ready");
    }
    herd.expect_line("| c up");
    t.expect_status(&herd, &["a", "running", "from sh"]);
    if systemd_notify {
        t.expect_status(&herd, &["b", "running", "from systemd-notify"]);
    }
}

#[test]
fn herd_notify_sends_one_datagram_to_a_path_or_an_abstract_address() {
    let t = Notified::new("client");
    let path = t.tmp.join("manager.sock");
    let by_path = UnixDatagram::bind(&path).unwrap();
    let name = format!("herd-test-notify-{}", std::process::id());
    let by_name = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    for (address, socket) in [
        (path.display().to_string(), &by_path),
        (format!("@{name}"), &by_name),
    ] {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let out = run_to_end(herd().env("NOTIFY_SOCKET", &address).args([
            "notify",
            "--stopping",
            "--status",
            "going",
            "--ready",
        ]));
        out.check(out.code() == 0, "herd notify succeeds");
        let mut buf = [0u8; 4096];
        let len = socket.recv(&mut buf).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&buf[..len]),
            "STOPPING=1\nSTATUS=going\nREADY=1",
            "{address}"
        );
        let len = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"BARRIER=1", "then the barrier, with its fd");
        let out = run_to_end(
            herd()
                .env("NOTIFY_SOCKET", &address)
                .args(["notify", "--reloading"]),
        );
        let len = socket.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        out.check(
            text.starts_with("RELOADING=1\nMONOTONIC_USEC=")
                && text.rsplit('=').next().unwrap().parse::<u64>().unwrap() > 0,
            &format!("RELOADING=1 with the time: {text:?}"),
        );
        let _ = socket.recv(&mut buf);
    }
}

#[test]
fn herd_notify_fails_with_125_without_a_socket_to_send_to() {
    let t = Notified::new("nosocket");
    let gone = t.file("nobody.sock");
    for (value, why) in [
        (None, "NOTIFY_SOCKET is not set"),
        (Some(""), "NOTIFY_SOCKET is not set"),
        (Some("relative"), "is not a path or @name"),
        (Some(gone.as_str()), "no such file or directory"),
        (Some("@herd-test-nobody-listens-here"), "connection refused"),
    ] {
        let mut command = herd();
        command
            .env_remove("NOTIFY_SOCKET")
            .args(["notify", "--ready"]);
        if let Some(value) = value {
            command.env("NOTIFY_SOCKET", value);
        }
        let out = run_to_end(&mut command);
        out.check(
            out.code() == 125
                && out.stderr.starts_with("herd: notifying")
                && out.stderr.contains(why),
            &format!("{value:?}: exit 125 and {why:?}"),
        );
    }
    let out = run_to_end(herd().args(["notify"]));
    out.check(
        out.code() == 125 && out.stderr.contains("notify needs --ready"),
        "nothing to say is a usage error",
    );
}

#[test]
fn a_notify_process_that_never_says_ready_times_out() {
    let t = Notified::new("timeout");
    let herd = t.run(&[
        "--ready",
        "db=notify",
        "--ready-timeout",
        "db=0.5",
        "-c",
        "db=sleep 30",
        "-c",
        "web=echo web up",
    ]);
    let out = herd.finish();
    out.check(out.code() == 124, "exit 124");
    out.check(
        out.stderr.contains("db: not ready after 0.5s") && !out.stdout.contains("web up"),
        "db timed out and web never started",
    );
}

#[test]
fn extend_timeout_usec_pushes_the_ready_deadline_out() {
    let t = Notified::new("extend");
    let db = t.sender(&[
        "EXTEND_TIMEOUT_USEC=5000000",
        "sleep:1.5",
        "READY=1",
        "sleep:30",
    ]);
    let mut herd = t.run(&[
        "--ready",
        "db=notify",
        "--ready-timeout",
        "db=1",
        "-c",
        &format!("db={db}"),
    ]);
    herd.expect_line("db is ready");
    let story = herd.story();
    assert!(!story.contains("not ready"), "{story}");
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn strangers_garbage_and_fds_never_hurt_herd() {
    let t = Notified::new("hostile");
    let go = t.file("go");
    let mut garbage = vec![
        "nul",
        "binary",
        "oversized",
        "=",
        "READY",
        "MAINPID=-1",
        "EXTEND_TIMEOUT_USEC=99999999999999999999",
    ];
    garbage.extend(["fds:5"; 20]);
    let me = herd_path();
    let db = format!(
        "echo \"socket=$NOTIFY_SOCKET\"; {} && {me} notify --status own-garbage-sent && {}",
        t.sender(&garbage),
        t.sender(&[&format!("wait:{go}"), "READY=1", "sleep:30"])
    );
    let mut herd = t.run(&["--ready", "db=notify", "-c", &format!("db={db}")]);
    let line = herd.expect_line("socket=@");
    let address = line.split("socket=").nth(1).unwrap().to_string();
    t.expect_status(&herd, &["db", "starting", "own-garbage-sent"]);
    let pid = herd.pid();
    let before = fd_count(pid);
    // A stranger, run by the test and not by herd, says everything, and
    // waits with herd notify's barrier until herd has read it all.
    garbage.extend(["READY=1\\nSTATUS=from a stranger", "MAINPID=1"]);
    let stranger = format!(
        "{} && {me} notify --status stranger-done",
        t.sender(&garbage)
    );
    let out = run_to_end(
        Command::new("sh")
            .args(["-c", &stranger])
            .env("NOTIFY_SOCKET", &address),
    );
    out.check(out.code() == 0, "the stranger sent everything");
    wait_until(
        "herd's fds to be as many as before",
        || fd_count(pid) <= before,
        || format!("{} fds, {before} before\n{}", fd_count(pid), herd.story()),
    );
    let status = t.status(false);
    assert!(
        status_row(&status, "db").contains("starting") && !status.contains("stranger"),
        "nothing a stranger said counts\n{status}"
    );
    fs::write(&go, "").unwrap();
    herd.expect_line("db is ready");
    t.expect_status(&herd, &["db", "running"]);
}

/// A fake manager: a datagram socket herd is told of with NOTIFY_SOCKET.
struct Manager {
    socket: UnixDatagram,
    /// Every datagram so far, for failure messages.
    seen: Vec<String>,
}

impl Manager {
    fn new(socket: UnixDatagram) -> Manager {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Manager {
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram with `needle`; returns it.
    fn expect(&mut self, needle: &str, herd: &Running) -> String {
        let until = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(len) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                self.seen.push(text.clone());
                if text.contains(needle) {
                    return text;
                }
            }
        }
        panic!(
            "no datagram with {needle:?}; got {:?}\n{}",
            self.seen,
            herd.story()
        );
    }
}

#[test]
fn herd_tells_its_manager_ready_reloading_and_stopping() {
    let t = Notified::new("upward");
    let path = t.tmp.join("manager.sock");
    let mut manager = Manager::new(UnixDatagram::bind(&path).unwrap());
    let mut command = herd();
    command.env("NOTIFY_SOCKET", &path).args([
        "run",
        "--state-dir",
        &t.state_dir(),
        "-c",
        "a=sleep 30",
        "-c",
        "b=echo \"b sees [$NOTIFY_SOCKET]\"; sleep 30",
    ]);
    let mut herd = Running::start(&mut command);
    let ready = manager.expect("READY=1", &herd);
    assert_eq!(ready, "READY=1\nSTATUS=2 of 2 ready");
    let line = herd.expect_line("b sees [");
    assert!(
        line.contains("b sees [@") && !line.contains(&path.display().to_string()),
        "a child gets herd's socket, not herd's manager's: {line}"
    );
    let out = run_to_end(crate::util::herd().args(["reload", "--state-dir", &t.state_dir()]));
    out.check(out.code() == 0, "the reload succeeds");
    let reloading = manager.expect("RELOADING=1", &herd);
    let usec = reloading
        .lines()
        .find_map(|line| line.strip_prefix("MONOTONIC_USEC="))
        .and_then(|usec| usec.parse::<u64>().ok());
    assert!(usec.is_some_and(|usec| usec > 0), "{reloading:?}");
    let after = manager.expect("READY=1", &herd);
    assert!(after.contains("STATUS=reloaded"), "{after:?}");
    herd.signal("TERM");
    let stopping = manager.expect("STOPPING=1", &herd);
    assert!(stopping.contains("STATUS=stopping"));
    herd.wait();
    let readies = manager
        .seen
        .iter()
        .filter(|m| m.contains("READY=1"))
        .count();
    assert_eq!(
        readies, 2,
        "once at start, once after the reload: {:?}",
        manager.seen
    );
}

#[test]
fn a_single_command_s_herd_tells_an_abstract_manager_and_hides_its_socket() {
    let name = format!("herd-test-manager-{}", std::process::id());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    let mut manager = Manager::new(socket);
    let mut command = herd();
    command.env("NOTIFY_SOCKET", format!("@{name}")).args([
        "run",
        "--",
        "sh",
        "-c",
        "echo \"child sees [$NOTIFY_SOCKET]\"; sleep 0.3",
    ]);
    let mut herd = Running::start(&mut command);
    herd.expect_line("child sees []");
    assert_eq!(
        manager.expect("READY=1", &herd),
        "READY=1\nSTATUS=1 of 1 ready"
    );
    manager.expect("STOPPING=1", &herd);
    let out = herd.finish();
    out.check(out.code() == 0, "the command's status");
}

#[test]
fn herd_asks_its_manager_for_time_during_a_slow_start_and_a_slow_stop() {
    let t = Notified::new("slow");
    let path = t.tmp.join("manager.sock");
    let mut manager = Manager::new(UnixDatagram::bind(&path).unwrap());
    let slow = t.sender(&["sleep:2.5", "READY=1", "sleep:30"]);
    let mut command = herd();
    command.env("NOTIFY_SOCKET", &path).args([
        "run",
        "--ready",
        "slow=notify",
        "-c",
        &format!("slow={slow}"),
        "--grace",
        "stubborn=2.5",
        "-c",
        "stubborn=trap '' TERM; echo stubborn up; while :; do sleep 0.1; done",
    ]);
    let mut herd = Running::start(&mut command);
    let extend = manager.expect("EXTEND_TIMEOUT_USEC=", &herd);
    assert_eq!(extend, "EXTEND_TIMEOUT_USEC=10000000");
    assert!(
        !manager.seen.iter().any(|m| m.contains("READY=1")),
        "more time is asked before ready: {:?}",
        manager.seen
    );
    manager.expect("READY=1", &herd);
    herd.expect_line("stubborn up");
    herd.signal("TERM");
    manager.expect("STOPPING=1", &herd);
    manager.expect("EXTEND_TIMEOUT_USEC=", &herd);
    herd.expect_line("still running after");
    herd.wait();
}
