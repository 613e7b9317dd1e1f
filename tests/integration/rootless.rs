//! herd without root: as an arbitrary uid with `no_new_privs`, on a
//! read-only root file system (a mount namespace where `/` and every other
//! mount its user could write to are read-only, but for one directory), as a
//! container that drops root sees the machine. Every test here needs root to
//! build that view, and skips with a message without it.

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid (and gid) herd runs as: nobody, which owns nothing on the machine.
const OWNER: u32 = 65534;
/// Another user, who must not be able to control the owner's herd.
const STRANGER: u32 = 65533;

/// Run as root inside `unshare --mount`: binds the writable directory onto
/// itself (a mount of its own, so it stays writable), makes `/` and every
/// other writable mount read-only (in this namespace only: `unshare` makes
/// its mounts private), then becomes the user with no supplementary groups
/// and `no_new_privs`, and runs the rest of its arguments there.
/// /proc, /sys, /dev and the cgroups stay as they are: the user cannot write
/// to them anyway (but for /dev/shm, a tmpfs of its own, made read-only).
const SANDBOX: &str = r#"
set -e
writable=$1; uid=$2; shift 2
mount --bind "$writable" "$writable"
mount -o remount,bind,ro /
awk '$4 ~ /^rw/ && $3 !~ /^(proc|sysfs|devtmpfs|devpts|cgroup|cgroup2)$/ { print $2 }' \
    /proc/self/mounts | while read -r target; do
    case $target in
    / | "$writable") ;;
    *) mount -o remount,bind,ro "$target" 2>/dev/null || true ;;
    esac
done
cd "$writable"
exec setpriv --reuid "$uid" --regid "$uid" --clear-groups --no-new-privs -- "$@"
"#;

/// One test's view: a root-owned temporary directory holding a copy of herd
/// (mode 0755, so that any uid may run it whatever the target directory's
/// modes) and `home`, the only directory its users may write to: the owner's,
/// mode 0755 so that the stranger may look in. Every process started through
/// it carries `marker`, and is SIGKILLed on drop, before the directory goes.
struct Sandbox {
    marker: Marker,
    tmp: TempDir,
    home: PathBuf,
    bin: PathBuf,
}

impl Sandbox {
    /// `None`, with a message saying why, where the view cannot be built.
    fn new(tag: &str) -> Option<Sandbox> {
        if !runs_as_root("a mount namespace and another user") {
            return None;
        }
        for tool in ["unshare", "setpriv", "awk"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|out| out.status.success());
            if !found {
                eprintln!("skipped: the rootless tests need {tool}");
                return None;
            }
        }
        let probe = Command::new("unshare")
            .args(["--mount", "true"])
            .output()
            .expect("unshare runs");
        if !probe.status.success() {
            eprintln!(
                "skipped: unshare --mount is not allowed here: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            return None;
        }
        let tmp = TempDir::new(&format!("rootless-{tag}"));
        fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o755)).unwrap();
        let bin = tmp.join("bin");
        fs::create_dir(&bin).unwrap();
        fs::copy(herd_path(), bin.join("herd")).unwrap();
        fs::set_permissions(bin.join("herd"), fs::Permissions::from_mode(0o755)).unwrap();
        let home = tmp.join("home");
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&home, Some(OWNER), Some(OWNER)).unwrap();
        Some(Sandbox {
            marker: Marker::new(&format!("rootless-{tag}")),
            tmp,
            home,
            bin,
        })
    }

    fn herd_copy(&self) -> PathBuf {
        self.bin.join("herd")
    }

    /// `PROGRAM` as `uid` in the read-only view, in `home`, with an
    /// environment of its own: `PATH` (herd's copy first), and `HOME`,
    /// `TMPDIR` and `XDG_RUNTIME_DIR` all in `home`, so that whatever herd
    /// might write lands where the test looks. `unshare_flags` go before
    /// `--mount` (`--pid --fork` for a PID 1).
    fn command_with(&self, unshare_flags: &[&str], uid: u32, program: &Path) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(unshare_flags)
            .args(["--mount", "sh", "-c", SANDBOX, "sh"])
            .arg(&self.home)
            .arg(uid.to_string())
            .arg(program)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("HOME", &self.home)
            .env("TMPDIR", &self.home)
            .env("XDG_RUNTIME_DIR", &self.home)
            .current_dir(&self.tmp.0);
        self.marker.apply(&mut command);
        command
    }

    /// herd as `uid` in the view; the caller adds herd's arguments.
    fn herd(&self, uid: u32) -> Command {
        self.command_with(&[], uid, &self.herd_copy())
    }

    /// `sh -c SCRIPT` as `uid` in the view.
    fn shell(&self, uid: u32, script: &str) -> Command {
        let mut command = self.command_with(&[], uid, Path::new("/bin/sh"));
        command.args(["-c", script]);
        command
    }

    /// What `home` holds, every level, as paths relative to it.
    fn written(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut queue = vec![self.home.clone()];
        while let Some(dir) = queue.pop() {
            for entry in fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                found.push(path.strip_prefix(&self.home).unwrap().display().to_string());
                if entry.file_type().unwrap().is_dir() {
                    queue.push(path);
                }
            }
        }
        found.sort();
        found
    }
}

#[test]
fn the_sandbox_leaves_its_user_only_its_own_directory_to_write() {
    let Some(sandbox) = Sandbox::new("view") else {
        return;
    };
    // Without this, every "writes nothing" below would prove nothing.
    let outside = sandbox.tmp.join("outside");
    let script = format!(
        "id -u; id -G; grep NoNewPrivs /proc/self/status; \
         touch {outside} 2>&1; touch /dev/shm/herd-rootless-$$ 2>&1; \
         touch /var/tmp/herd-rootless-$$ 2>&1; touch inside && echo inside written",
        outside = outside.display()
    );
    let outcome = run_to_end(&mut sandbox.shell(OWNER, &script));
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    outcome.check(
        lines.first() == Some(&"65534") && lines.get(1) == Some(&"65534"),
        "the user is nobody with no other group",
    );
    outcome.check(
        outcome.stdout.contains("NoNewPrivs:\t1"),
        "no_new_privs is set",
    );
    outcome.check(
        outcome.stdout.matches("Read-only file system").count() == 3,
        "/ (and /tmp on it), /dev/shm and /var/tmp are read-only",
    );
    outcome.check(
        outcome.stdout.contains("inside written") && sandbox.home.join("inside").exists(),
        "the one writable directory is writable",
    );
    outcome.check(!outside.exists(), "nothing was written outside it");
}

#[test]
fn one_command_runs_as_nobody_on_a_read_only_root_and_writes_nothing() {
    let Some(sandbox) = Sandbox::new("one") else {
        return;
    };
    let outcome = run_to_end(sandbox.herd(OWNER).args([
        "run",
        "-v",
        "--",
        "sh",
        "-c",
        "(sleep 0.1 &); echo uid $(id -u); exit 3",
    ]));
    outcome.check(outcome.code() == 3, "CMD's exit code");
    outcome.check(outcome.stdout.contains("uid 65534"), "CMD ran as nobody");
    outcome.check(
        outcome.stderr.contains("reaped adopted pid"),
        "the orphan was adopted and reaped (a subreaper needs no privilege)",
    );
    assert_eq!(sandbox.written(), Vec::<String>::new(), "herd wrote files");
}

#[test]
fn a_group_runs_as_nobody_on_a_read_only_root_and_writes_nothing() {
    let Some(sandbox) = Sandbox::new("group") else {
        return;
    };
    let port = free_port();
    // Every part of a group that could want a file: herd's notify socket
    // (`herd notify`, `ready=notify`), a socket it holds for a process and
    // hands over through its `__exec` trampoline, a tcp ready check (which
    // reads /proc), and a stop in reverse order.
    let server = "exec python3 -c 'import socket; s = socket.socket(fileno=3); s.accept()'";
    let mut running = Running::start(sandbox.herd(OWNER).args([
        "run",
        "--color",
        "never",
        "-c",
        "first=herd notify --ready && sleep 100",
        "-c",
        &format!("web={server}"),
        "-c",
        "last=echo last $(id -u); sleep 100",
        "--ready",
        "first=notify",
        "--ready",
        &format!("web=tcp:{port}"),
        "--listen",
        &format!("tcp:127.0.0.1:{port}"),
    ]));
    running.expect_line("first is ready");
    running.expect_line("web is ready");
    running.expect_line("last 65534");
    running.signal("TERM");
    running.expect_line("stopping first");
    let outcome = running.finish();
    outcome.check(outcome.code() == 0, "a clean stop on SIGTERM");
    let stopped: Vec<&str> = outcome
        .stdout
        .lines()
        .filter_map(|line| line.split_once(" | "))
        .filter(|(name, _)| name.trim_end() == "herd")
        .filter_map(|(_, event)| event.strip_prefix("stopping "))
        .collect();
    outcome.check(
        stopped.len() == 3
            && stopped[0].starts_with("last")
            && stopped[1].starts_with("web")
            && stopped[2].starts_with("first"),
        "stopped in reverse order",
    );
    assert_eq!(sandbox.written(), Vec::<String>::new(), "herd wrote files");
}

#[test]
fn a_restart_as_nobody_on_a_read_only_root_writes_nothing() {
    let Some(sandbox) = Sandbox::new("restart") else {
        return;
    };
    let outcome = run_to_end(sandbox.herd(OWNER).args([
        "run",
        "--color",
        "never",
        "--restart",
        "on-failure",
        "--backoff-min",
        "0.01",
        "--start-limit",
        "2",
        "-c",
        "flaky=echo run; exit 1",
    ]));
    outcome.check(outcome.code() == 1, "the last run's status after giving up");
    outcome.check(
        outcome.stdout.matches("flaky | run").count() == 3,
        "started, restarted twice",
    );
    outcome.check(
        outcome.stderr.contains("gave up after 2 restarts"),
        "herd says it gave up",
    );
    assert_eq!(sandbox.written(), Vec::<String>::new(), "herd wrote files");
}

#[test]
fn as_pid_1_herd_as_nobody_stops_what_is_left_and_writes_nothing() {
    let Some(sandbox) = Sandbox::new("pid1") else {
        return;
    };
    // A container's init as a user: CMD leaves a process in a session of its
    // own, which only the namespace-wide stop reaches.
    let mut command = sandbox.command_with(
        &["--pid", "--fork", "--kill-child", "--mount-proc"],
        OWNER,
        &sandbox.herd_copy(),
    );
    command.args([
        "run",
        "-v",
        "--grace",
        "5",
        "--",
        "sh",
        "-c",
        "setsid sleep 100 & echo pid $$; exit 7",
    ]);
    let outcome = run_to_end(&mut command);
    outcome.check(outcome.code() == 7, "CMD's exit code");
    outcome.check(
        outcome
            .stderr
            .contains("sending SIGTERM to every process left in the namespace"),
        "herd, as PID 1, stopped the rest of the namespace",
    );
    outcome.check(
        outcome.stderr.contains("(killed by SIGTERM)"),
        "the leftover died of SIGTERM, not of the namespace's end",
    );
    assert_eq!(sandbox.written(), Vec::<String>::new(), "herd wrote files");
}

#[test]
fn in_the_foreground_with_a_name_herd_writes_only_its_state_directory() {
    let Some(sandbox) = Sandbox::new("fg-name") else {
        return;
    };
    let outcome = run_to_end(sandbox.herd(OWNER).args([
        "run",
        "--name",
        "fg",
        "--color",
        "never",
        "-c",
        "list=ls herd/fg",
    ]));
    outcome.check(outcome.code() == 0, "the group ended well");
    outcome.check(
        outcome.stdout.contains("list | control.sock") && outcome.stdout.contains("list | pid"),
        "herd kept its pid file and socket in the state directory while it ran",
    );
    assert_eq!(sandbox.written(), ["herd"], "only the base directory stays");
}

#[test]
fn the_default_state_directory_on_a_read_only_root_fails_with_a_way_out() {
    let Some(sandbox) = Sandbox::new("default-dir") else {
        return;
    };
    // Unset, and relative (which the XDG specification says to ignore):
    // the fallback under /tmp, which is read-only here.
    for runtime in [None, Some("home")] {
        let mut command = sandbox.herd(OWNER);
        match runtime {
            None => command.env_remove("XDG_RUNTIME_DIR"),
            Some(dir) => command.env("XDG_RUNTIME_DIR", dir),
        };
        command.args(["start", "--name", "web", "-c", "a=sleep 100"]);
        let outcome = run_to_end(&mut command);
        outcome.check(outcome.code() == 125, "herd's own failure");
        outcome.check(
            outcome.stderr.trim_end()
                == "herd: creating /tmp/herd-65534/web: read-only file system \
                    (give --state-dir or set XDG_RUNTIME_DIR to a writable directory)",
            "one line naming the directory, the cause and what to do",
        );
    }
    assert!(
        sandbox.marker.processes().is_empty(),
        "nothing was left running"
    );
}

/// The `herd status` row of `process`, split into columns.
fn status_row(sandbox: &Sandbox, process: &str) -> Vec<String> {
    let outcome = run_to_end(sandbox.herd(OWNER).args(["status", "--name", "web"]));
    outcome.check(outcome.code() == 0, "status as the owner");
    outcome
        .stdout
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|columns| columns.first().map(String::as_str) == Some(process))
        .unwrap_or_else(|| panic!("no row for {process} in\n{}", outcome.stdout))
}

/// `herd start --name web` as the owner, with `a` (which says which signals
/// it gets) and `b` (which ticks), returning once it is ready.
fn start_web(sandbox: &Sandbox) {
    let outcome = run_to_end(sandbox.herd(OWNER).args([
        "start",
        "--name",
        "web",
        "-c",
        "a=trap 'echo a got USR2' USR2; echo a up; while :; do sleep 0.05; done",
        "-c",
        "b=while :; do echo tick; sleep 0.05; done",
    ]));
    outcome.check(outcome.code() == 0, "herd start as nobody");
}

#[test]
fn herd_start_and_the_control_commands_work_as_nobody_on_a_read_only_root() {
    let Some(sandbox) = Sandbox::new("start") else {
        return;
    };
    start_web(&sandbox);
    let state = sandbox.home.join("herd/web");
    for (name, mode) in [("", 0o700), ("pid", 0o600), ("control.sock", 0o600)] {
        let meta = fs::metadata(state.join(name)).unwrap();
        assert_eq!(meta.uid(), OWNER, "{name} belongs to nobody");
        assert_eq!(meta.mode() & 0o777, mode, "the mode of {name:?}");
    }
    let log = state.join("log");
    wait_until(
        "a's first line in the log",
        || text_or_why(&log).contains("a    | a up"),
        || text_or_why(&log),
    );

    assert_eq!(status_row(&sandbox, "a")[1], "running");
    let restart = run_to_end(sandbox.herd(OWNER).args(["restart", "a", "--name", "web"]));
    restart.check(restart.code() == 0, "restart as the owner");
    wait_until(
        "a to run again",
        || {
            let row = status_row(&sandbox, "a");
            row[1] == "running" && row[4] == "1"
        },
        || text_or_why(&log),
    );
    let signal = run_to_end(
        sandbox
            .herd(OWNER)
            .args(["signal", "a", "USR2", "--name", "web"]),
    );
    signal.check(signal.code() == 0, "signal as the owner");
    wait_until(
        "a to get USR2",
        || text_or_why(&log).contains("a got USR2"),
        || text_or_why(&log),
    );
    let reload = run_to_end(sandbox.herd(OWNER).args(["reload", "--name", "web"]));
    reload.check(reload.code() == 0, "reload as the owner");

    // The log is the owner's to read, and to rotate: SIGUSR1 makes herd
    // open a new one in the state directory.
    let rotate = run_to_end(&mut sandbox.shell(
        OWNER,
        "cd herd/web && tail -n 1 log >/dev/null && mv log log.1 && kill -USR1 $(cat pid) && echo rotated",
    ));
    rotate.check(
        rotate.stdout.contains("rotated"),
        "the owner rotated the log",
    );
    wait_until(
        "ticks in the new log",
        || text_or_why(&log).contains("b    | tick"),
        || text_or_why(&log),
    );
    assert_eq!(fs::metadata(&log).unwrap().uid(), OWNER);

    let stop = run_to_end(sandbox.herd(OWNER).args(["stop", "--name", "web"]));
    stop.check(stop.code() == 0, "stop as the owner");
    assert_eq!(
        sandbox.written(),
        ["herd", "herd/web", "herd/web/log.1"],
        "the pid file, the socket and herd's new log are gone; the rotated \
         log stays, and so does the directory"
    );
    assert!(sandbox.marker.processes().is_empty(), "everything stopped");
}

#[test]
fn another_uid_cannot_control_nobodys_herd() {
    let Some(sandbox) = Sandbox::new("stranger") else {
        return;
    };
    start_web(&sandbox);
    let before = status_row(&sandbox, "a");
    let herd_pid = fs::read_to_string(sandbox.home.join("herd/web/pid")).unwrap();
    let herd_pid = herd_pid.trim();

    let status = run_to_end(sandbox.herd(STRANGER).args(["status", "--name", "web"]));
    status.check(
        status.code() == 4 && status.stderr.contains("permission denied"),
        "the stranger cannot even tell whether it runs",
    );
    for args in [
        &["stop", "--name", "web"][..],
        &["stop", "a", "--name", "web"],
        &["restart", "a", "--name", "web"],
        &["signal", "a", "KILL", "--name", "web"],
        &["send", "a", "x", "--name", "web"],
        &["reload", "--name", "web"],
        &["start", "--name", "web", "-c", "x=sleep 100"],
    ] {
        let outcome = run_to_end(sandbox.herd(STRANGER).args(args));
        outcome.check(
            outcome.code() == 125 && outcome.stderr.contains("permission denied"),
            &format!("the stranger's {args:?} is refused"),
        );
    }
    let kill = run_to_end(&mut sandbox.shell(
        STRANGER,
        &format!("kill -TERM {herd_pid} 2>&1 || echo refused"),
    ));
    kill.check(
        kill.stdout.contains("refused"),
        "the kernel refuses the stranger's signal",
    );
    let log = run_to_end(&mut sandbox.shell(STRANGER, "cat herd/web/log 2>&1 || echo refused"));
    log.check(
        log.stdout.contains("refused"),
        "the stranger cannot read the log",
    );

    assert_eq!(
        status_row(&sandbox, "a"),
        before,
        "a is untouched: same pid, no restart"
    );
    // Root may: the socket is served to herd's user and to root.
    let root = run_to_end(
        herd()
            .args(["status", "--state-dir"])
            .arg(sandbox.home.join("herd/web")),
    );
    root.check(root.code() == 0, "root's status");
    let stop = run_to_end(sandbox.herd(OWNER).args(["stop", "--name", "web"]));
    stop.check(stop.code() == 0, "the owner stops it");
}

/// A directory in `home` that both users may write to, as /tmp is.
fn shared_directory(sandbox: &Sandbox) -> PathBuf {
    let shared = sandbox.home.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    shared
}

#[test]
fn a_pid_file_in_a_shared_directory_is_nobody_elses_to_lock() {
    let Some(sandbox) = Sandbox::new("pidfile") else {
        return;
    };
    let shared = shared_directory(&sandbox);

    let start = run_to_end(sandbox.herd(OWNER).args([
        "start",
        "--pidfile",
        "shared/app.pid",
        "-c",
        "a=sleep 100",
    ]));
    start.check(start.code() == 0, "herd start --pidfile as nobody");
    let meta = fs::metadata(shared.join("app.pid")).unwrap();
    assert_eq!(
        meta.mode() & 0o777,
        0o600,
        "only its user may open the pid file"
    );
    // Whoever can open a pid file can flock it, and so keep herd from
    // starting again once this one is gone.
    let open = run_to_end(&mut sandbox.shell(
        STRANGER,
        "cat shared/app.pid >/dev/null 2>&1 || echo refused",
    ));
    open.check(
        open.stdout.contains("refused"),
        "the stranger cannot open it",
    );
    let stop = run_to_end(
        sandbox
            .herd(OWNER)
            .args(["stop", "--pidfile", "shared/app.pid"]),
    );
    stop.check(stop.code() == 0, "stop as the owner");
}

#[test]
fn a_pid_file_another_user_planted_is_refused() {
    let Some(sandbox) = Sandbox::new("planted") else {
        return;
    };
    shared_directory(&sandbox);
    // A pid file the stranger made first, and a link to the owner's file.
    let plant = run_to_end(&mut sandbox.shell(
        STRANGER,
        "umask 0 && echo 1 >shared/taken.pid && ln -s ../precious shared/link.pid && echo planted",
    ));
    plant.check(
        plant.stdout.contains("planted"),
        "the stranger planted the files",
    );
    let precious = run_to_end(&mut sandbox.shell(OWNER, "echo keep >precious"));
    precious.check(precious.code() == 0, "the owner's file");
    for (pid_file, cause) in [
        ("shared/taken.pid", "it belongs to another user"),
        ("shared/link.pid", "it is a symbolic link"),
    ] {
        let outcome =
            run_to_end(
                sandbox
                    .herd(OWNER)
                    .args(["run", "--pidfile", pid_file, "--", "true"]),
            );
        outcome.check(
            outcome.code() == 125
                && outcome.stderr.trim_end() == format!("herd: locking {pid_file}: {cause}"),
            &format!("{pid_file} is refused"),
        );
    }
    assert_eq!(
        fs::read_to_string(sandbox.home.join("precious")).unwrap(),
        "keep\n",
        "the linked file is untouched"
    );
}

#[test]
fn a_path_directory_its_user_may_not_enter_hides_nothing_from_not_found() {
    let Some(sandbox) = Sandbox::new("path") else {
        return;
    };
    // As in an image whose PATH starts with /root/.local/bin, run as
    // another user: a directory of root's, mode 0700, holding a program.
    let locked = sandbox.tmp.join("locked");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("herd-test-hidden"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(
        locked.join("herd-test-hidden"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    // And a file found that may not be executed.
    fs::write(sandbox.bin.join("herd-test-plain"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(
        sandbox.bin.join("herd-test-plain"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        locked.display(),
        sandbox.bin.display()
    );
    let port = free_port().to_string();
    let listen = format!("tcp:127.0.0.1:{port}");
    // Without sockets herd spawns with posix_spawnp, with them it forks and
    // searches PATH itself: both say the same.
    for sockets in [&[][..], &["--listen", &listen]] {
        for (program, code, cause) in [
            ("herd-no-such-command", 127, "command not found"),
            ("herd-test-hidden", 127, "command not found"),
            ("herd-test-plain", 126, "permission denied"),
        ] {
            let mut command = sandbox.herd(OWNER);
            command
                .env("PATH", &path)
                .arg("run")
                .args(sockets)
                .arg(program);
            let outcome = run_to_end(&mut command);
            outcome.check(
                outcome.code() == code
                    && outcome.stderr == format!("herd: executing {program}: {cause}\n"),
                &format!("{program} with {sockets:?}: {code}, {cause}"),
            );
        }
    }
}
