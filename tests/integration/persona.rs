//! herd as `tini`, `docker-init` and `dumb-init`, side by side with the real
//! tools: the same command line under each gives the same exit code, and
//! the child (and its group) record the same signals.

use crate::util::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// A child that records, one line each, the signals it gets; started as
/// `sh recorder.sh ROLE DIR`, it writes DIR/ROLE (the log) and, once its
/// traps are set, DIR/ROLE.pid. The child exits 5 on INT and 0 on TERM
/// (unless IGNORE_TERM is set); GRANDCHILD=1 starts a recorder in its
/// process group, ORPHAN=1 one whose parent exits at once (it records the
/// pid that adopts it and exits).
const RECORDER: &str = r#"
role=$1 dir=$2
log="$dir/$role"
: > "$log"
for sig in HUP INT QUIT USR1 USR2 ALRM TERM CONT WINCH PWR; do
    trap "echo $sig >> '$log'" $sig
done
ppid() { set -- $(cat /proc/$1/stat); echo $4; }
case $role in
child)
    trap "echo INT >> '$log'; exit 5" INT
    if [ -n "$IGNORE_TERM" ]; then trap '' TERM; else trap "echo TERM >> '$log'; exit 0" TERM; fi
    set -- $(cat /proc/$$/stat)
    if [ "$6" = $$ ]; then echo leader; else echo member; fi > "$dir/session"
    if [ -n "$GRANDCHILD" ]; then
        sh "$0" grandchild "$dir" &
        while [ ! -s "$dir/grandchild.pid" ]; do sleep 0.01; done
    fi
    if [ -n "$ORPHAN" ]; then
        # The middle shell exits at once; the orphan knows it by its pid.
        sh -c 'sh "$0" orphan "$1" $$ &' "$0" "$dir"
    fi
    ;;
orphan)
    parent=$3
    while [ "$(ppid $$)" = "$parent" ]; do sleep 0.01; done
    ppid $$ > "$dir/orphan.tmp" && mv "$dir/orphan.tmp" "$dir/orphan.ppid"
    exit 0
    ;;
esac
echo $$ > "$dir/$role.tmp" && mv "$dir/$role.tmp" "$dir/$role.pid"
while :; do sleep 0.05; done
"#;

/// The real tool's path; the test set-up (.ci/run) installs them.
fn real(tool: &str) -> PathBuf {
    let path = PathBuf::from(format!("/usr/bin/{tool}"));
    assert!(
        path.exists(),
        "{} is missing: install the Debian packages tini and dumb-init (.ci/run does)",
        path.display()
    );
    path
}

/// A directory with herd linked as each tool, and the recorder script.
struct Tools {
    dir: TempDir,
}

impl Tools {
    fn new() -> Tools {
        let dir = TempDir::new("persona");
        for tool in ["tini", "docker-init", "dumb-init"] {
            symlink(herd_path(), dir.join(tool)).unwrap();
        }
        fs::write(dir.join("recorder.sh"), RECORDER).unwrap();
        Tools { dir }
    }

    fn herd_as(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }

    fn recorder(&self) -> PathBuf {
        self.dir.join("recorder.sh")
    }
}

/// One command line, run the same way under each tool.
#[derive(Clone, Default)]
struct Case {
    args: Vec<&'static str>,
    env: Vec<(&'static str, &'static str)>,
    /// The recorder's own settings (IGNORE_TERM, GRANDCHILD, ORPHAN).
    recorder_env: Vec<(&'static str, &'static str)>,
    /// Signals sent to the init one at a time, each followed by SIGPWR,
    /// which every case forwards: once the child has recorded it, it has
    /// recorded whatever came before it (a lower number, sent first).
    signals: Vec<&'static str>,
    /// Whether the grandchild gets what is sent to the child's group,
    /// so that the PWR to wait for is the grandchild's too.
    group: bool,
    /// The signal that ends the case; `None`: the child is SIGKILLed.
    last: Option<&'static str>,
}

/// What a run under one tool showed.
#[derive(Debug, PartialEq)]
struct Seen {
    code: i32,
    child: Vec<String>,
    /// What the grandchild had recorded before the last signal (what
    /// happens to it once the child is gone is not the same).
    grandchild: Vec<String>,
    session: String,
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn pid_in(path: &Path) -> u32 {
    wait_until(
        &format!("{} to be written", path.display()),
        || path.exists(),
        String::new,
    );
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

/// SIGKILLs `pid`, which may have gone by now.
fn kill_quietly(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

fn count(path: &Path, signal: &str) -> usize {
    lines(path).iter().filter(|line| *line == signal).count()
}

fn observe(tools: &Tools, init: &Path, case: &Case) -> Seen {
    let dir = TempDir::new("persona-run");
    let marker = Marker::new("persona");
    let mut command = Command::new(init);
    command.args(&case.args);
    command
        .arg("sh")
        .arg(tools.recorder())
        .arg("child")
        .arg(&dir.0);
    command.envs(case.env.iter().copied());
    command.envs(case.recorder_env.iter().copied());
    marker.apply(&mut command);
    let mut running = Running::start(&mut command);
    let init_pid = running.pid();
    let child_pid = pid_in(&dir.join("child.pid"));
    let (child_log, grandchild_log) = (dir.join("child"), dir.join("grandchild"));
    for signal in &case.signals {
        let (child_before, grandchild_before) =
            (count(&child_log, "PWR"), count(&grandchild_log, "PWR"));
        send_signal(init_pid, signal);
        send_signal(init_pid, "PWR");
        let story = || format!("{init:?} after {signal}\n{}", running.story());
        wait_until(
            "the child to record SIGPWR",
            || count(&child_log, "PWR") > child_before,
            story,
        );
        if case.group {
            wait_until(
                "the grandchild to record SIGPWR",
                || count(&grandchild_log, "PWR") > grandchild_before,
                story,
            );
        }
    }
    let grandchild = lines(&grandchild_log);
    match case.last {
        Some(signal) => send_signal(init_pid, signal),
        None => send_signal(child_pid, "KILL"),
    }
    let status = running.wait();
    // What the child left (the grandchild, an orphan) holds the output
    // pipes open: tini leaves it running.
    for leftover in marker.processes() {
        kill_quietly(leftover);
    }
    let outcome = running.outcome(status);
    Seen {
        code: outcome.code(),
        child: lines(&child_log),
        grandchild,
        session: fs::read_to_string(dir.join("session")).unwrap_or_default(),
    }
}

/// Runs `case` under the real tool and under herd linked as `herd_as`;
/// both must see the same.
fn same_as_real(tools: &Tools, tool: &str, herd_as: &str, case: &Case) -> Seen {
    let real = observe(tools, &real(tool), case);
    let herd = observe(tools, &tools.herd_as(herd_as), case);
    assert_eq!(
        herd, real,
        "herd as {herd_as} (left) and {tool} (right) differ for {:?} {:?} {:?}",
        case.args, case.env, case.recorder_env
    );
    herd
}

const SIGNALS: [&str; 6] = ["HUP", "USR1", "USR2", "ALRM", "WINCH", "QUIT"];

fn with_grandchild() -> Vec<(&'static str, &'static str)> {
    vec![("GRANDCHILD", "1")]
}

#[test]
fn tini_forwards_every_signal_to_the_child_alone_and_with_g_to_its_group() {
    let tools = Tools::new();
    let alone = Case {
        args: vec!["--"],
        recorder_env: with_grandchild(),
        signals: SIGNALS.to_vec(),
        last: Some("TERM"),
        ..Case::default()
    };
    for tool in ["tini", "docker-init"] {
        let seen = same_as_real(&tools, "tini", tool, &alone);
        assert!(seen.grandchild.is_empty(), "{seen:?}");
        assert_eq!(seen.child.last().map(String::as_str), Some("TERM"));
        assert_eq!((seen.code, seen.session.trim()), (0, "member"));
    }
    let group = Case {
        args: vec!["-g", "--"],
        group: true,
        ..alone.clone()
    };
    let seen = same_as_real(&tools, "tini", "tini", &group);
    // A background job of sh ignores INT and QUIT: it cannot record them.
    let expected: Vec<&str> = ["HUP", "USR1", "USR2", "ALRM", "WINCH"]
        .into_iter()
        .flat_map(|signal| [signal, "PWR"])
        .chain(["PWR"])
        .collect();
    assert_eq!(seen.grandchild, expected, "{seen:?}");
    let by_variable = Case {
        args: vec!["--"],
        env: vec![("TINI_KILL_PROCESS_GROUP", "1")],
        group: true,
        ..alone
    };
    same_as_real(&tools, "tini", "tini", &by_variable);
}

#[test]
fn every_exit_code_and_death_by_signal_is_the_same_as_under_tini_and_dumb_init() {
    let tools = Tools::new();
    let code = |init: &Path, args: &[&str], script: &str| {
        let outcome = run_to_end(Command::new(init).args(args).args(["sh", "-c", script]));
        outcome.code()
    };
    let deaths = [
        "HUP", "INT", "QUIT", "ABRT", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
    ];
    for (tool, herd_as) in [
        ("tini", "tini"),
        ("tini", "docker-init"),
        ("dumb-init", "dumb-init"),
    ] {
        let (real, herd) = (real(tool), tools.herd_as(herd_as));
        for exit in 0..=255 {
            let script = format!("exit {exit}");
            let real_code = code(&real, &["--"], &script);
            assert_eq!(real_code, exit, "{tool}: {script}");
            assert_eq!(
                code(&herd, &["--"], &script),
                real_code,
                "herd as {herd_as}: {script}"
            );
        }
        for signal in deaths {
            let script = format!("ulimit -c 0; kill -{signal} $$");
            let real_code = code(&real, &["--"], &script);
            assert_eq!(
                code(&herd, &["--"], &script),
                real_code,
                "herd as {herd_as}: {script}"
            );
        }
    }
    let remapped = ["-e", "3", "-e", "143", "-e", "127", "--"];
    for script in [
        "exit 3",
        "exit 4",
        "exit 143",
        "kill -TERM $$",
        "kill -KILL $$",
        "herd-no-such-program",
    ] {
        let real_code = code(&real("tini"), &remapped, script);
        assert_eq!(
            code(&tools.herd_as("tini"), &remapped, script),
            real_code,
            "-e: {script}"
        );
        let herd_code = code(
            Path::new(herd_path()),
            &[
                "run",
                "--exit-ok",
                "3",
                "--exit-ok",
                "143",
                "--exit-ok",
                "127",
                "--",
            ],
            script,
        );
        assert_eq!(herd_code, real_code, "herd run --exit-ok: {script}");
    }
}

#[test]
fn a_child_that_ignores_term_keeps_running_under_both() {
    let tools = Tools::new();
    let case = Case {
        args: vec!["--"],
        recorder_env: vec![("IGNORE_TERM", "1")],
        signals: vec!["TERM", "USR1", "TERM"],
        last: Some("INT"),
        ..Case::default()
    };
    for (tool, herd_as) in [("tini", "tini"), ("dumb-init", "dumb-init")] {
        let seen = same_as_real(&tools, tool, herd_as, &case);
        assert_eq!(seen.child, ["PWR", "USR1", "PWR", "PWR", "INT"], "{tool}");
        assert_eq!(seen.code, 5, "{tool}");
    }
}

#[test]
fn dumb_init_signals_the_childs_session_and_with_c_the_child_alone() {
    let tools = Tools::new();
    let setsid = Case {
        recorder_env: with_grandchild(),
        signals: SIGNALS.to_vec(),
        group: true,
        last: Some("TERM"),
        ..Case::default()
    };
    let seen = same_as_real(&tools, "dumb-init", "dumb-init", &setsid);
    assert_eq!(seen.session.trim(), "leader");
    assert!(seen.grandchild.iter().any(|s| s == "USR1"), "{seen:?}");
    let single = Case {
        group: false,
        ..setsid.clone()
    };
    for case in [
        Case {
            args: vec!["-c"],
            ..single.clone()
        },
        Case {
            args: vec!["--single-child"],
            ..single.clone()
        },
        Case {
            env: vec![("DUMB_INIT_SETSID", "0")],
            ..single.clone()
        },
    ] {
        let seen = same_as_real(&tools, "dumb-init", "dumb-init", &case);
        assert_eq!(seen.session.trim(), "member", "{:?}", case.args);
        assert!(seen.grandchild.is_empty(), "{seen:?}");
    }
}

#[test]
fn dumb_init_rewrites_and_drops_signals_as_r_says() {
    let tools = Tools::new();
    // TERM as QUIT (nginx's graceful stop), USR1 dropped, USR2 as WINCH.
    let case = Case {
        args: vec!["-r", "15:3", "--rewrite", "10:0", "-r", "12:28"],
        signals: vec!["TERM", "USR1", "USR2", "HUP"],
        last: Some("INT"),
        ..Case::default()
    };
    let seen = same_as_real(&tools, "dumb-init", "dumb-init", &case);
    assert_eq!(
        seen.child,
        ["QUIT", "PWR", "PWR", "WINCH", "PWR", "HUP", "PWR", "INT"]
    );
    let single = Case {
        args: vec!["-c", "-r", "15:3", "-r", "10:0", "-r", "12:28"],
        ..case
    };
    same_as_real(&tools, "dumb-init", "dumb-init", &single);
}

#[test]
fn herds_own_flags_behave_as_the_tools_options_they_stand_for() {
    let tools = Tools::new();
    let herd = Path::new(herd_path());
    let pairs: [(&str, Vec<&'static str>, Vec<&'static str>, bool); 4] = [
        ("tini", vec!["-g", "--"], vec!["run", "-g", "--"], true),
        ("dumb-init", vec![], vec!["run", "--setsid", "--"], true),
        (
            "dumb-init",
            vec!["-c"],
            vec!["run", "--no-setsid", "--"],
            false,
        ),
        (
            "dumb-init",
            vec!["-r", "15:3", "-r", "10:0"],
            vec![
                "run",
                "--setsid",
                "--rewrite-signal",
                "TERM:QUIT",
                "--rewrite-signal",
                "USR1:0",
                "--",
            ],
            true,
        ),
    ];
    for (tool, tool_args, herd_args, group) in pairs {
        // TERM ends the recorder, unless it is rewritten to QUIT.
        let asks_to_stop = if tool_args.contains(&"-r") {
            "TERM"
        } else {
            "QUIT"
        };
        let case = Case {
            args: tool_args,
            recorder_env: with_grandchild(),
            signals: vec!["HUP", "USR1", asks_to_stop, "WINCH"],
            group,
            last: Some("INT"),
            ..Case::default()
        };
        let real = observe(&tools, &real(tool), &case);
        let ours = observe(
            &tools,
            herd,
            &Case {
                args: herd_args.clone(),
                ..case
            },
        );
        assert_eq!(ours, real, "herd {herd_args:?} (left) and {tool} (right)");
    }
}

/// How a TSTP sent to the init plays out: whether the child stops, whether
/// the init stops too, and what the child records once the init gets CONT.
#[derive(Debug, PartialEq)]
struct Stopped {
    child_stopped: bool,
    init_stopped: bool,
    after_cont: Vec<String>,
    code: i32,
}

/// How long an init that stops itself after forwarding TSTP may take.
const STOPS_WITHIN: Duration = Duration::from_secs(1);

/// Whether `pid` is stopped, or waits for a stopped child it vforked
/// (dash vforks its commands: a STOP to the group that comes between the
/// vfork and the exec leaves the shell in `D` behind its stopped child).
fn is_stopped(pid: u32) -> bool {
    match process_state(pid) {
        Some('T') => true,
        Some('D') => children_of(pid)
            .into_iter()
            .any(|child| process_state(child) == Some('T')),
        _ => false,
    }
}

fn tstp(tools: &Tools, init: &Path, args: &[&str]) -> Stopped {
    let dir = TempDir::new("persona-tstp");
    let marker = Marker::new("persona-tstp");
    let mut command = Command::new(init);
    command
        .args(args)
        .arg("sh")
        .arg(tools.recorder())
        .arg("child")
        .arg(&dir.0);
    // A process group of its own, whose parent (this test) is in another
    // group of the same session: the test's own group may be orphaned, and
    // the kernel discards TSTP sent to a member of an orphaned group, which
    // is where dumb-init -c leaves its child.
    command.process_group(0);
    marker.apply(&mut command);
    let mut running = Running::start(&mut command);
    let init_pid = running.pid();
    let child_pid = pid_in(&dir.join("child.pid"));
    send_signal(init_pid, "TSTP");
    wait_until(
        "the child to stop",
        || is_stopped(child_pid),
        || {
            format!(
                "child {child_pid} state {:?}, init {init_pid} state {:?}\n{}",
                process_state(child_pid),
                process_state(init_pid),
                running.story()
            )
        },
    );
    let until = Instant::now() + STOPS_WITHIN;
    let init_stopped = loop {
        if process_state(init_pid) == Some('T') {
            break true;
        }
        if Instant::now() > until {
            break false;
        }
        thread::sleep(Duration::from_millis(5));
    };
    send_signal(init_pid, "CONT");
    let log = dir.join("child");
    wait_until(
        "the child to record CONT",
        || count(&log, "CONT") > 0,
        || running.story(),
    );
    let after_cont = lines(&log);
    send_signal(init_pid, "TERM");
    let status = running.wait();
    for leftover in marker.processes() {
        kill_quietly(leftover);
    }
    Stopped {
        child_stopped: true,
        init_stopped,
        after_cont,
        code: running.outcome(status).code(),
    }
}

#[test]
fn a_child_that_stops_on_tstp_stops_and_continues_as_under_the_tools() {
    let tools = Tools::new();
    for (tool, herd_as, args, init_stops) in [
        ("tini", "tini", &["--"][..], false),
        ("dumb-init", "dumb-init", &[][..], true),
        ("dumb-init", "dumb-init", &["-c"][..], true),
    ] {
        let real = tstp(&tools, &real(tool), args);
        assert_eq!(real.init_stopped, init_stops, "{tool} {args:?}: {real:?}");
        let herd = tstp(&tools, &tools.herd_as(herd_as), args);
        assert_eq!(
            herd, real,
            "herd as {herd_as} (left) and {tool} (right), {args:?}"
        );
    }
}

/// What an orphan's adoption showed: whether the init adopted it, and
/// whether anything was said on stderr about reaping it.
fn adoption(tools: &Tools, init: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = TempDir::new("persona-orphan");
    let marker = Marker::new("persona-orphan");
    let mut command = Command::new(init);
    command
        .args(args)
        .arg("sh")
        .arg(tools.recorder())
        .arg("child")
        .arg(&dir.0);
    command.envs(env.iter().copied()).env("ORPHAN", "1");
    marker.apply(&mut command);
    let mut running = Running::start(&mut command);
    let init_pid = running.pid();
    let adopter = pid_in(&dir.join("orphan.ppid"));
    let adopted = adopter == init_pid;
    if adopted {
        // It has exited: wait until the init has reaped it.
        wait_until(
            "the orphan to be reaped",
            || zombie_children(init_pid) == 0 && children_of(init_pid).len() == 1,
            || running.story(),
        );
    }
    send_signal(init_pid, "TERM");
    let status = running.wait();
    for leftover in marker.processes() {
        kill_quietly(leftover);
    }
    let outcome = running.outcome(status);
    (adopted, outcome.stderr)
}

#[test]
fn tini_adopts_orphans_only_with_s_and_warns_about_reaping_them_only_with_w() {
    let tools = Tools::new();
    let herd = tools.herd_as("tini");
    let tini = real("tini");
    for (args, env, adopts) in [
        (&["--"][..], &[][..], false),
        (&["-s", "--"], &[], true),
        (&["--"], &[("TINI_SUBREAPER", "")], true),
    ] {
        let (real_adopted, _) = adoption(&tools, &tini, args, env);
        assert_eq!(real_adopted, adopts, "tini {args:?} {env:?}");
        let (herd_adopted, _) = adoption(&tools, &herd, args, env);
        assert_eq!(herd_adopted, adopts, "herd as tini {args:?} {env:?}");
    }
    for (args, env, warns) in [
        (&["-s", "-w", "--"][..], &[][..], true),
        (&["-s", "--"], &[], false),
        (&["-s", "-w", "--"], &[("TINI_VERBOSITY", "0")], false),
    ] {
        let (_, said) = adoption(&tools, &tini, args, env);
        assert_eq!(
            said.contains("Reaped zombie process"),
            warns,
            "tini {args:?}: {said}"
        );
        let (_, said) = adoption(&tools, &herd, args, env);
        assert_eq!(
            said.contains("reaped adopted pid"),
            warns,
            "herd as tini {args:?}: {said}"
        );
    }
    let (_, said) = adoption(
        &tools,
        Path::new(herd_path()),
        &["run", "--warn-zombies", "--"],
        &[],
    );
    assert!(
        said.contains("reaped adopted pid"),
        "herd run --warn-zombies: {said}"
    );
}

/// Starts the init from a shell that exits once the child is up: with a
/// parent death signal the init gets it, and forwards it.
fn orphaned_init(tools: &Tools, init: &Path, args: &[&str]) -> Vec<String> {
    let dir = TempDir::new("persona-pdeath");
    let marker = Marker::new("persona-pdeath");
    let mut command = Command::new("sh");
    command.arg("-c").arg(
        r#"init=$1 dir=$2 recorder=$3; shift 3
        "$init" "$@" sh "$recorder" child "$dir" > /dev/null 2>&1 &
        echo $! > "$dir/init.pid"
        while [ ! -s "$dir/child.pid" ]; do sleep 0.01; done"#,
    );
    command
        .arg("sh")
        .arg(init)
        .arg(&dir.0)
        .arg(tools.recorder())
        .args(args);
    marker.apply(&mut command);
    let outcome = run_to_end(&mut command);
    outcome.check(outcome.code() == 0, "the parent shell");
    let log = dir.join("child");
    let child_pid = pid_in(&dir.join("child.pid"));
    let init_pid = pid_in(&dir.join("init.pid"));
    if args.contains(&"SIGUSR1") {
        wait_until(
            "the child to record USR1",
            || count(&log, "USR1") > 0,
            || lines(&log).join("\n"),
        );
    } else {
        // Nothing to wait for: a sentinel says the init goes on as before.
        send_signal(init_pid, "PWR");
        wait_until(
            "the child to record PWR",
            || count(&log, "PWR") > 0,
            || lines(&log).join("\n"),
        );
    }
    let seen = lines(&log);
    kill_quietly(child_pid);
    wait_until(
        "the init to exit",
        || !is_alive(init_pid),
        || lines(&log).join("\n"),
    );
    drop(marker);
    seen
}

#[test]
fn tini_p_forwards_the_parent_death_signal_as_herds_flag_does() {
    let tools = Tools::new();
    let args = ["-p", "SIGUSR1", "--"];
    let real = orphaned_init(&tools, &real("tini"), &args);
    assert_eq!(real, ["USR1"]);
    assert_eq!(orphaned_init(&tools, &tools.herd_as("tini"), &args), real);
    let herd = orphaned_init(
        &tools,
        Path::new(herd_path()),
        &["run", "--parent-death-signal", "SIGUSR1", "--"],
    );
    assert_eq!(herd, real);
    assert_eq!(
        orphaned_init(&tools, &tools.herd_as("tini"), &["--"]),
        ["PWR"]
    );
}

#[test]
fn verbosity_options_and_variables_make_both_say_more_or_nothing() {
    let tools = Tools::new();
    let said = |init: &Path, args: &[&str], env: &[(&str, &str)]| {
        let outcome = run_to_end(
            Command::new(init)
                .args(args)
                .arg("true")
                .envs(env.iter().copied()),
        );
        outcome.check(outcome.code() == 0, "exit code");
        outcome.stdout.len() + outcome.stderr.len()
    };
    for (tool, quiet, verbose) in [
        (
            "tini",
            (&["-s", "--"][..], &[][..]),
            (&["-s", "-vv", "--"][..], &[][..]),
        ),
        (
            "tini",
            (&["--"], &[("TINI_VERBOSITY", "0")]),
            (&["--"], &[("TINI_VERBOSITY", "3")]),
        ),
        ("dumb-init", (&[], &[]), (&["-v"], &[])),
        (
            "dumb-init",
            (&[], &[("DUMB_INIT_DEBUG", "0")]),
            (&[], &[("DUMB_INIT_DEBUG", "1")]),
        ),
    ] {
        for init in [real(tool), tools.herd_as(tool)] {
            assert_eq!(said(&init, quiet.0, quiet.1), 0, "{init:?} {quiet:?}");
            assert!(
                said(&init, verbose.0, verbose.1) > 0,
                "{init:?} {verbose:?}"
            );
        }
    }
    // tini warns, at its default verbosity, that orphans will not be reaped.
    for init in [real("tini"), tools.herd_as("tini")] {
        assert!(said(&init, &["--"], &[]) > 0, "{init:?}");
    }
}

#[test]
fn version_help_and_license_exit_0_and_name_herd() {
    let tools = Tools::new();
    for (tool, args) in [
        ("tini", &["--version"][..]),
        ("tini", &["-h"]),
        ("tini", &["-l"]),
        ("dumb-init", &["-V"]),
        ("dumb-init", &["--version"]),
        ("dumb-init", &["-h"]),
        ("dumb-init", &["--help"]),
    ] {
        let real = run_to_end(Command::new(real(tool)).args(args));
        real.check(real.code() == 0, "the real tool");
        let herd = run_to_end(Command::new(tools.herd_as(tool)).args(args));
        herd.check(herd.code() == 0, "herd's exit code");
        herd.check(herd.stdout.starts_with("herd "), "names herd");
    }
}

#[test]
fn a_bad_command_line_is_125_where_the_tools_exit_1() {
    let tools = Tools::new();
    for (tool, args) in [
        ("tini", &["-x", "true"][..]),
        ("tini", &[]),
        ("tini", &["-e", "256", "true"]),
        ("tini", &["-e", "99999999999999999999", "true"]),
        ("tini", &["-p", "NOPE", "true"]),
        ("tini", &["-p", "", "true"]),
        ("dumb-init", &["-x", "true"]),
        ("dumb-init", &[]),
        ("dumb-init", &["-r", "99:1", "true"]),
        ("dumb-init", &["--rewrite=", "true"]),
    ] {
        let real = run_to_end(Command::new(real(tool)).args(args));
        real.check(real.code() == 1, "the real tool exits 1");
        let herd = run_to_end(Command::new(tools.herd_as(tool)).args(args));
        herd.check(herd.code() == 125, "herd exits 125");
        herd.check(herd.stderr.lines().count() == 1, "one line");
        herd.check(
            herd.stderr
                .starts_with(&format!("herd: reading {tool} arguments: ")),
            "says what it was reading",
        );
    }
}

#[test]
fn a_program_that_cannot_run_is_127_where_dumb_init_exits_2() {
    let tools = Tools::new();
    let tini = run_to_end(Command::new(real("tini")).args(["--", "herd-no-such-program"]));
    let herd = run_to_end(Command::new(tools.herd_as("tini")).args(["--", "herd-no-such-program"]));
    assert_eq!((tini.code(), herd.code()), (127, 127));
    let dumb_init = run_to_end(Command::new(real("dumb-init")).arg("herd-no-such-program"));
    let herd = run_to_end(Command::new(tools.herd_as("dumb-init")).arg("herd-no-such-program"));
    assert_eq!((dumb_init.code(), herd.code()), (2, 127));
    herd.check(
        herd.stderr == "herd: executing herd-no-such-program: command not found\n",
        "message",
    );
}

/// Under a terminal that the init leads (as PID 1 of `docker run -t`), in
/// dumb-init's setsid mode the child's session takes the terminal over, and
/// the SIGHUP and SIGCONT that handing it over sends the init never reach
/// the child.
#[test]
fn in_setsid_mode_the_child_takes_over_the_terminal_the_init_led() {
    let tools = Tools::new();
    let script = tools.dir.join("terminal.sh");
    fs::write(
        &script,
        r#"trap 'echo got-HUP' HUP
trap 'echo got-CONT' CONT
set -- $(cat /proc/$$/stat)
if [ "$6" = "$1" ] && [ "$7" != 0 ] && [ "$8" = "$5" ]; then echo owns-terminal; else echo no-terminal; fi
# A HUP forwarded by mistake would come at once; give it the time to.
sleep 0.3
echo done
"#,
    )
    .unwrap();
    let seen = |init: &Path| {
        let line = format!("{} sh {}", init.display(), script.display());
        let outcome = run_to_end(&mut under_terminal(&line));
        outcome.check(outcome.code() == 0, "exit code");
        outcome
            .stdout
            .lines()
            .map(|line| line.trim().to_string())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
    };
    let real = seen(&real("dumb-init"));
    assert_eq!(real, ["owns-terminal", "done"]);
    assert_eq!(seen(&tools.herd_as("dumb-init")), real);
}
