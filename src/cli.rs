//! Command-line parsing with lexopt into plain structs, and the usage text,
//! derived from one table of flags.

use crate::error::Failure;
use crate::formation::Formation;
use crate::output::ColorChoice;
use crate::spec::{self, Defaults, ProcessSpec};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// One flag as the user sees it: the single source for `--help` and for the
/// test that checks `man/herd.1` documents it.
pub struct Flag {
    pub short: Option<char>,
    pub long: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn flag(
    short: Option<char>,
    long: &'static str,
    value: Option<&'static str>,
    help: &'static str,
) -> Flag {
    Flag {
        short,
        long,
        value,
        help,
    }
}

const HELP: Flag = flag(Some('h'), "help", None, "print this help and exit");

pub const GLOBAL_FLAGS: &[Flag] = &[
    HELP,
    flag(Some('V'), "version", None, "print herd's version and exit"),
];

pub const RUN_FLAGS: &[Flag] = &[
    flag(
        Some('c'),
        "command",
        Some("NAME=SHELLCMD"),
        "add a process to the group, run with /bin/sh -c",
    ),
    flag(
        Some('f'),
        "procfile",
        Some("FILE"),
        "add the processes of a Procfile to the group",
    ),
    flag(
        None,
        "env-file",
        Some("FILE"),
        "set KEY=VALUE lines of FILE in every process's environment",
    ),
    flag(
        Some('m'),
        "formation",
        Some("NAME=N[,NAME=N...]"),
        "run N instances of NAME (all=N: of every process; 0: none), named NAME.1...",
    ),
    flag(
        None,
        "port-base",
        Some("N"),
        "give instance j (from 1) of process i (from 0) PORT=N+100*i+j-1",
    ),
    flag(
        None,
        "restart",
        Some("[NAME=]POLICY"),
        "never (default), on-failure or always",
    ),
    flag(
        None,
        "stop-signal",
        Some("[NAME=]SIG"),
        "signal that asks a process to stop (default TERM)",
    ),
    flag(
        None,
        "grace",
        Some("[NAME=]SECS"),
        "time a stopping process gets before SIGKILL (default 10)",
    ),
    flag(
        None,
        "stop-deadline",
        Some("SECS"),
        "the whole stop takes at most SECS, then SIGKILL to all (env HERD_STOP_DEADLINE)",
    ),
    flag(
        None,
        "termination-log",
        Some("PATH"),
        "on exit, write why herd stopped to PATH (PID 1: /dev/termination-log)",
    ),
    flag(
        None,
        "ready",
        Some("NAME=CHECK"),
        "NAME is ready when CHECK passes: tcp:[HOST:]PORT, file:PATH, notify or fd:N",
    ),
    flag(
        None,
        "ready-timeout",
        Some("[NAME=]SECS"),
        "time a ready check may take (default 30)",
    ),
    flag(
        None,
        "live",
        Some("[NAME=]CHECK"),
        "restart NAME when CHECK fails: tcp:[HOST:]PORT, file:PATH, http:HOST:PORT/PATH, exec:CMD",
    ),
    flag(
        None,
        "live-interval",
        Some("[NAME=]SECS"),
        "time between liveness checks, and the most one may take (default 10)",
    ),
    flag(
        None,
        "live-failures",
        Some("[NAME=]N"),
        "liveness checks that must fail in a row (default 3)",
    ),
    flag(
        None,
        "live-grace",
        Some("[NAME=]SECS"),
        "failed liveness checks count only SECS after ready (default 0)",
    ),
    flag(
        None,
        "watchdog",
        Some("[NAME=]SECS"),
        "restart a process whose heartbeat stays still for SECS (0: none)",
    ),
    flag(
        None,
        "oneshot",
        Some("NAME"),
        "NAME may exit 0 without stopping the group",
    ),
    flag(
        None,
        "backoff-min",
        Some("SECS"),
        "first delay before a restart, doubling each time (default 0.1)",
    ),
    flag(
        None,
        "backoff-max",
        Some("SECS"),
        "longest delay before a restart (default 30)",
    ),
    flag(
        None,
        "start-limit",
        Some("N"),
        "give up after more than N restarts in the window (default 5)",
    ),
    flag(
        None,
        "start-window",
        Some("SECS"),
        "the window of --start-limit (default 60)",
    ),
    flag(
        None,
        "parallel-stop",
        None,
        "stop every process at once, not in reverse start order",
    ),
    flag(
        None,
        "watch",
        Some("PATH"),
        "reload when PATH (a file or directory) changes; repeatable",
    ),
    flag(
        None,
        "listen",
        Some("[NAME=]ADDR"),
        "bind ADDR (tcp:[HOST:]PORT, tcp:[IPV6]:PORT, unix:PATH) for the children",
    ),
    flag(
        None,
        "sockets",
        Some("NAME=SOCKETS"),
        "NAME gets only the --listen sockets named in SOCKETS (A,B; empty: none)",
    ),
    flag(
        None,
        "reload-batch",
        Some("N"),
        "a reload replaces N processes at a time (default 0: all at once)",
    ),
    flag(
        None,
        "health",
        Some("tcp:HOST:PORT"),
        "answer HTTP GET /ready and /live there (tcp:PORT: every address)",
    ),
    flag(
        None,
        "color",
        Some("WHEN"),
        "colour the name prefixes: auto (default), always, never",
    ),
    flag(
        None,
        "timestamps",
        None,
        "put the time before every output line",
    ),
    flag(
        None,
        "stdin",
        Some("NAME"),
        "give herd's stdin to NAME (others get /dev/null)",
    ),
    flag(
        None,
        "stdin-pipe",
        Some("NAME"),
        "give NAME a pipe as stdin, fed by 'herd send'",
    ),
    flag(
        None,
        "name",
        Some("NAME"),
        "state directory $XDG_RUNTIME_DIR/herd/NAME (/run/herd/NAME as root)",
    ),
    flag(
        None,
        "state-dir",
        Some("DIR"),
        "state directory DIR (pid file, control socket, log)",
    ),
    flag(
        None,
        "pidfile",
        Some("PATH"),
        "lock PATH and write herd's pid to it",
    ),
    flag(
        Some('g'),
        "group-signal",
        None,
        "one command: forward signals to its whole process group",
    ),
    flag(
        None,
        "no-subreaper",
        None,
        "do not adopt orphaned descendants to reap them",
    ),
    flag(
        None,
        "rewrite-signal",
        Some("FROM:TO"),
        "one command: forward signal FROM as TO (TO 0: drop it); repeatable",
    ),
    flag(
        None,
        "exit-ok",
        Some("CODE"),
        "one command: exit 0 when it exits CODE (0-255, 128+N: signal N); repeatable",
    ),
    flag(
        None,
        "setsid",
        None,
        "one command: a session of its own, signals to its group, TSTP/TTIN/TTOU as STOP",
    ),
    flag(
        None,
        "no-setsid",
        None,
        "one command: signals to it alone; herd stops itself after TSTP/TTIN/TTOU",
    ),
    flag(
        None,
        "parent-death-signal",
        Some("SIG"),
        "herd gets SIG when its parent dies (forwarded as any signal)",
    ),
    flag(
        None,
        "no-death-signal",
        None,
        "processes keep running when herd dies (default: each gets its stop signal)",
    ),
    flag(
        None,
        "warn-zombies",
        None,
        "say on stderr every orphaned descendant herd reaps",
    ),
    flag(
        Some('v'),
        "verbose",
        None,
        "log herd's decisions (spawns, signals, reaping)",
    ),
    HELP,
];

/// `herd start`'s own flags, besides every flag of `run`.
pub const START_FLAGS: &[Flag] = &[
    flag(
        None,
        "settle",
        Some("SECS"),
        "a process without a ready check is ready after SECS up (default 0.5)",
    ),
    flag(
        None,
        "log",
        Some("FILE"),
        "append output to FILE (default: the state directory's log)",
    ),
    flag(
        None,
        "umask",
        Some("MODE"),
        "file mode creation mask, octal (default 022)",
    ),
    flag(
        None,
        "chdir",
        Some("DIR"),
        "directory to run in (default: where herd start was called)",
    ),
];

/// The flags of the commands that talk to a running herd.
pub const CLIENT_FLAGS: &[Flag] = &[
    flag(
        None,
        "name",
        Some("NAME"),
        "the herd started with --name NAME",
    ),
    flag(
        None,
        "state-dir",
        Some("DIR"),
        "the herd started with --state-dir DIR",
    ),
    flag(
        None,
        "pidfile",
        Some("PATH"),
        "the herd started with --pidfile PATH",
    ),
    flag(None, "json", None, "status: print JSON"),
    flag(
        None,
        "ready",
        None,
        "status: print nothing, exit 0 if every process is ready, else 1",
    ),
    flag(
        None,
        "live",
        None,
        "status: print nothing, exit 0 if the supervisor answers, else 1",
    ),
    flag(
        None,
        "timeout",
        Some("SECS"),
        "stop: how long to wait for the supervisor to exit (default 60); status: ask the supervisor itself and wait this long for its answer (default: read the scoreboard)",
    ),
    HELP,
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Request {
    Run(Box<RunArgs>),
    Start(Box<RunArgs>),
    Client(ClientArgs),
    /// `herd notify`: one datagram to `$NOTIFY_SOCKET`.
    Notify(NotifyArgs),
    Help(String),
    Version,
}

/// What `herd notify` says; at least one of them.
#[derive(Debug, Default, PartialEq)]
pub struct NotifyArgs {
    pub ready: bool,
    pub status: Option<String>,
    pub stopping: bool,
    pub reloading: bool,
    /// Bump its heartbeat (its scoreboard slot, or `WATCHDOG=1`).
    pub heartbeat: bool,
}

/// Which running herd a command means.
#[derive(Debug, Default, PartialEq)]
pub struct Target {
    pub name: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
}

/// `herd start`'s settings for the detached supervisor.
#[derive(Debug, PartialEq)]
pub struct Detach {
    pub log: Option<PathBuf>,
    pub settle: Duration,
    pub umask: u32,
    pub chdir: Option<PathBuf>,
}

/// A command for a running herd.
#[derive(Debug, PartialEq)]
pub enum Action {
    Status {
        json: bool,
        /// Ask the supervisor, and wait this long; `None`: read the
        /// scoreboard, and ask the supervisor only when it cannot be read.
        timeout: Option<Duration>,
    },
    Stop {
        timeout: Duration,
        process: Option<String>,
    },
    Start {
        process: String,
    },
    Restart {
        process: String,
    },
    Signal {
        process: String,
        signal: i32,
    },
    /// `text: None` sends herd's own stdin.
    Send {
        process: String,
        text: Option<String>,
    },
    /// `timeout: None` waits until the reload ends.
    Reload {
        process: Option<String>,
        timeout: Option<Duration>,
    },
    /// `status --ready` or `--live`: an exit code and nothing else.
    Probe {
        check: Probe,
        timeout: Duration,
    },
}

/// What `status --ready` or `--live` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Every process is ready (which needs the supervisor to answer).
    Ready,
    /// The supervisor loop answers.
    Live,
}

#[derive(Debug, PartialEq)]
pub struct ClientArgs {
    pub target: Target,
    pub action: Action,
}

/// Where the processes of a group come from, in command-line order.
#[derive(Debug, PartialEq)]
pub enum Source {
    Command { name: String, command: String },
    Procfile(PathBuf),
}

/// A per-process setting given on the command line as `--KEY NAME=VALUE`.
#[derive(Debug, PartialEq)]
pub struct NamedSetting {
    pub name: String,
    pub key: &'static str,
    pub value: Option<String>,
}

/// `herd run`'s settings.
#[derive(Debug)]
pub struct RunArgs {
    /// What every process starts from: the flags given without a NAME.
    pub defaults: Defaults,
    /// One command (`herd run -- CMD`): the program and its arguments.
    pub command: Vec<OsString>,
    /// A group (`-c`, `-f`).
    pub sources: Vec<Source>,
    pub named: Vec<NamedSetting>,
    pub env_files: Vec<PathBuf>,
    pub formation: Formation,
    pub port_base: Option<u16>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub start_limit: usize,
    pub start_window: Duration,
    pub parallel_stop: bool,
    /// How many units a reload replaces at a time; 0: all.
    pub reload_batch: usize,
    /// `--watch`: paths whose changes reload every process.
    pub watch: Vec<PathBuf>,
    /// `--listen`, in order: the sockets herd holds for its children.
    pub listen: Vec<crate::listen::Listen>,
    /// `--health`: where the HTTP probe responder listens.
    pub health: Option<crate::listen::Listen>,
    pub color: ColorChoice,
    pub timestamps: bool,
    pub stdin_process: Option<String>,
    pub stdin_pipe: Option<String>,
    pub target: Target,
    /// Set for `herd start`.
    pub detach: Option<Detach>,
    pub group_signal: bool,
    pub subreaper: bool,
    pub verbose: bool,
    /// `--stop-deadline` (or `HERD_STOP_DEADLINE`): one budget for the
    /// whole stop.
    pub stop_deadline: Option<Duration>,
    /// `--termination-log`: where herd writes why it stopped.
    pub termination_log: Option<PathBuf>,
    /// `--rewrite-signal`, in order: (received, forwarded instead; 0 drops).
    pub rewrite: Vec<(i32, i32)>,
    /// `--exit-ok`: exit codes of the command that herd reports as 0.
    pub exit_ok: Vec<u8>,
    /// `--setsid` (`Some(true)`) or `--no-setsid` (`Some(false)`), as
    /// dumb-init means them; `None`: herd's own way.
    pub setsid: Option<bool>,
    pub parent_death_signal: Option<i32>,
    /// Each process gets its stop signal when herd dies (`PR_SET_PDEATHSIG`);
    /// `--no-death-signal` turns it off.
    pub death_signal: bool,
    pub warn_zombies: bool,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, Failure> {
    use lexopt::prelude::*;
    let args: Vec<OsString> = args.into_iter().collect();
    // `herd start -- CMD`, `-c` or `-f` starts a supervisor; `herd start
    // NAME` starts one process of a running group.
    let rest = args.get(1..).unwrap_or_default().to_vec();
    let explicit_command = rest.iter().any(|arg| arg == "--");
    let mut parser = lexopt::Parser::from_args(args);
    let bad = |e: lexopt::Error| usage_failure("", e);
    match parser.next().map_err(bad)? {
        Some(Short('h') | Long("help")) | None => Ok(Request::Help(main_help())),
        Some(Short('V') | Long("version")) => Ok(Request::Version),
        Some(Value(command)) if command == "run" => parse_run(&mut parser, false),
        Some(Value(command)) if command == "notify" => parse_notify(&mut parser),
        Some(Value(command)) if command == "start" => {
            let asks_help = rest.iter().any(|arg| arg == "-h" || arg == "--help");
            if explicit_command || asks_help || starts_a_group(&rest) {
                parse_run(&mut parser, true)
            } else {
                parse_client(&mut parser, "start")
            }
        }
        Some(Value(command))
            if ["status", "stop", "restart", "signal", "send", "reload"]
                .contains(&command.to_string_lossy().as_ref()) =>
        {
            parse_client(&mut parser, &command.to_string_lossy())
        }
        Some(Value(command)) => Err(Failure::new(
            "reading arguments",
            format!(
                "unknown command '{}'; see 'herd --help'",
                command.to_string_lossy()
            ),
        )),
        Some(other) => Err(bad(other.unexpected())),
    }
}

/// Whether `herd start`'s arguments define processes (`-c`, `-f`), also as
/// the last of a cluster of short flags (`-vc`, `-gfProcfile`).
fn starts_a_group(args: &[OsString]) -> bool {
    args.iter().any(|arg| {
        let arg = arg.to_string_lossy();
        if let Some(long) = arg.strip_prefix("--") {
            let name = long.split_once('=').map_or(long, |(name, _)| name);
            return name == "command" || name == "procfile";
        }
        arg.strip_prefix('-').is_some_and(|cluster| {
            let value_flag = cluster.trim_start_matches(SHORT_SWITCHES);
            value_flag.starts_with('c') || value_flag.starts_with('f')
        })
    })
}

/// The short flags of `run` and `start` that take no value.
const SHORT_SWITCHES: [char; 3] = ['g', 'v', 'h'];

fn parse_run(parser: &mut lexopt::Parser, start: bool) -> Result<Request, Failure> {
    use lexopt::prelude::*;
    let verb = if start { "start " } else { "run " };
    let bad = |e: lexopt::Error| usage_failure(verb, e);
    let mut run = RunArgs {
        defaults: Defaults::default(),
        command: Vec::new(),
        sources: Vec::new(),
        named: Vec::new(),
        env_files: Vec::new(),
        formation: Formation::default(),
        port_base: None,
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(30),
        start_limit: 5,
        start_window: Duration::from_secs(60),
        parallel_stop: false,
        reload_batch: 0,
        watch: Vec::new(),
        listen: Vec::new(),
        health: None,
        color: ColorChoice::Auto,
        timestamps: false,
        stdin_process: None,
        stdin_pipe: None,
        target: Target::default(),
        detach: start.then_some(Detach {
            log: None,
            settle: Duration::from_millis(500),
            umask: 0o022,
            chdir: None,
        }),
        group_signal: false,
        subreaper: true,
        verbose: false,
        stop_deadline: None,
        termination_log: None,
        rewrite: Vec::new(),
        exit_ok: Vec::new(),
        setsid: None,
        parent_death_signal: None,
        death_signal: true,
        warn_zombies: false,
    };
    while let Some(arg) = parser.next().map_err(bad)? {
        let flag = match &arg {
            Long(long) => long.to_string(),
            Short(short) => short.to_string(),
            Value(_) => String::new(),
        };
        match arg {
            Short('c') | Long("command") => {
                let given = text_value(parser, &flag)?;
                let (name, command) = given.split_once('=').ok_or_else(|| {
                    value_failure("command", format!("'{given}' is not NAME=SHELLCMD"))
                })?;
                spec::check_name(name).map_err(|why| value_failure("command", why))?;
                run.sources.push(Source::Command {
                    name: name.to_string(),
                    command: command.to_string(),
                });
            }
            Short('f') | Long("procfile") => run
                .sources
                .push(Source::Procfile(text_value(parser, &flag)?.into())),
            Long("env-file") => run.env_files.push(text_value(parser, &flag)?.into()),
            Short('m') | Long("formation") => run
                .formation
                .add(&text_value(parser, &flag)?)
                .map_err(|why| value_failure("formation", why))?,
            Long("port-base") => {
                let given = text_value(parser, &flag)?;
                run.port_base = Some(given.parse().map_err(|_| {
                    value_failure("port-base", format!("'{given}' is not a port number"))
                })?);
            }
            Long(
                "restart" | "stop-signal" | "grace" | "ready-timeout" | "live" | "live-interval"
                | "live-failures" | "live-grace" | "watchdog",
            ) => {
                let key = setting_key(&flag);
                let given = text_value(parser, &flag)?;
                match split_named(&given) {
                    Some((name, value)) => run.named.push(named(key, name, Some(value))),
                    None => apply_default(&mut run.defaults, key, &given)?,
                }
            }
            Long("ready") => {
                let given = text_value(parser, &flag)?;
                let (name, value) = split_named(&given).ok_or_else(|| {
                    value_failure("ready", format!("'{given}' is not NAME=CHECK"))
                })?;
                run.named.push(named("ready", name, Some(value)));
            }
            Long("oneshot") => {
                let name = text_value(parser, &flag)?;
                run.named.push(named("oneshot", &name, None));
            }
            Long("listen") => {
                let given = text_value(parser, &flag)?;
                let listen =
                    crate::listen::parse(&given).map_err(|why| value_failure("listen", why))?;
                run.listen.push(listen);
            }
            Long("health") => {
                let given = text_value(parser, &flag)?;
                if run.health.is_some() {
                    return Err(value_failure("health", "is given twice".to_string()));
                }
                let address =
                    crate::health::parse(&given).map_err(|why| value_failure("health", why))?;
                run.health = Some(address);
            }
            Long("sockets") => {
                let given = text_value(parser, &flag)?;
                let (name, value) = split_named(&given).ok_or_else(|| {
                    value_failure("sockets", format!("'{given}' is not NAME=SOCKET,..."))
                })?;
                run.named.push(named("sockets", name, Some(value)));
            }
            Long("backoff-min") => {
                run.backoff_min = seconds("backoff-min", &text_value(parser, &flag)?)?
            }
            Long("backoff-max") => {
                run.backoff_max = seconds("backoff-max", &text_value(parser, &flag)?)?
            }
            Long("start-limit") => {
                let given = text_value(parser, &flag)?;
                run.start_limit = given.parse().map_err(|_| {
                    value_failure("start-limit", format!("'{given}' is not a whole number"))
                })?;
            }
            Long("watch") => run.watch.push(text_value(parser, &flag)?.into()),
            Long("reload-batch") => {
                let given = text_value(parser, &flag)?;
                run.reload_batch = given.parse().map_err(|_| {
                    value_failure("reload-batch", format!("'{given}' is not a whole number"))
                })?;
            }
            Long("start-window") => {
                run.start_window = seconds("start-window", &text_value(parser, &flag)?)?
            }
            Long("parallel-stop") => run.parallel_stop = true,
            Long("stop-deadline") => {
                run.stop_deadline = Some(seconds("stop-deadline", &text_value(parser, &flag)?)?)
            }
            Long("termination-log") => {
                let path = text_value(parser, &flag)?;
                if path.is_empty() {
                    return Err(value_failure(
                        "termination-log",
                        "a path cannot be empty".into(),
                    ));
                }
                run.termination_log = Some(path.into());
            }
            Long("color") => {
                let given = text_value(parser, &flag)?;
                run.color = given.parse().map_err(|_| {
                    value_failure("color", format!("'{given}' is not auto, always or never"))
                })?;
            }
            Long("timestamps") => run.timestamps = true,
            Long("stdin") => run.stdin_process = Some(text_value(parser, &flag)?),
            Long("stdin-pipe") => run.stdin_pipe = Some(text_value(parser, &flag)?),
            Long("name" | "state-dir" | "pidfile") => {
                let value = text_value(parser, &flag)?;
                set_target(&mut run.target, &flag, value)?;
            }
            Long("log" | "umask" | "chdir" | "settle") if start => {
                let value = text_value(parser, &flag)?;
                let detach = run.detach.as_mut().expect("start has detach settings");
                match flag.as_str() {
                    "log" => detach.log = Some(value.into()),
                    "chdir" => detach.chdir = Some(value.into()),
                    "settle" => detach.settle = seconds("settle", &value)?,
                    _ => {
                        detach.umask = u32::from_str_radix(&value, 8)
                            .ok()
                            .filter(|mask| *mask <= 0o777)
                            .ok_or_else(|| {
                                value_failure("umask", format!("'{value}' is not an octal mode"))
                            })?
                    }
                }
            }
            Short('g') | Long("group-signal") => run.group_signal = true,
            Long("no-subreaper") => run.subreaper = false,
            Long("rewrite-signal") => run.rewrite.push(
                crate::signals::parse_rewrite(&text_value(parser, &flag)?)
                    .map_err(|why| value_failure("rewrite-signal", why))?,
            ),
            Long("exit-ok") => run.exit_ok.push(exit_code(&text_value(parser, &flag)?)?),
            Long("setsid") => run.setsid = Some(true),
            Long("no-setsid") => run.setsid = Some(false),
            Long("parent-death-signal") => {
                run.parent_death_signal = Some(
                    crate::signals::parse(&text_value(parser, &flag)?)
                        .map_err(|why| value_failure("parent-death-signal", why))?,
                )
            }
            Long("no-death-signal") => run.death_signal = false,
            Long("warn-zombies") => run.warn_zombies = true,
            Short('v') | Long("verbose") => run.verbose = true,
            Short('h') | Long("help") => return Ok(Request::Help(run_help(start))),
            Value(program) => {
                // Everything from the first positional on belongs to the child.
                run.command.push(program);
                run.command.extend(parser.raw_args().map_err(bad)?);
            }
            other => return Err(bad(other.unexpected())),
        }
    }
    check_mode(&run)?;
    if run.stop_deadline.is_none() {
        run.stop_deadline = stop_deadline_from_env(std::env::var_os(STOP_DEADLINE_VARIABLE))?;
    }
    if start {
        if run.target == Target::default() {
            return Err(Failure::new(
                "reading arguments",
                "start needs --name NAME, --state-dir DIR or --pidfile PATH to find it again",
            ));
        }
        return Ok(Request::Start(Box::new(run)));
    }
    Ok(Request::Run(Box::new(run)))
}

/// The environment's `--stop-deadline`, for images and units that set it
/// once; the flag, when given, wins.
pub const STOP_DEADLINE_VARIABLE: &str = "HERD_STOP_DEADLINE";

/// `HERD_STOP_DEADLINE`'s value: unset or empty is no deadline (as
/// `docker run -e HERD_STOP_DEADLINE=` means), anything else is SECS.
fn stop_deadline_from_env(value: Option<OsString>) -> Result<Option<Duration>, Failure> {
    let Some(value) = value.filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    spec::parse_seconds(&text).map(Some).map_err(|why| {
        Failure::new(
            "reading arguments",
            format!("{STOP_DEADLINE_VARIABLE}: {why}"),
        )
    })
}

fn set_target(target: &mut Target, flag: &str, value: String) -> Result<(), Failure> {
    match flag {
        "name" => {
            spec::check_name(&value).map_err(|why| value_failure("name", why))?;
            target.name = Some(value);
        }
        "state-dir" => target.state_dir = Some(value.into()),
        _ => target.pidfile = Some(value.into()),
    }
    Ok(())
}

/// `herd notify --ready | --status TEXT | --stopping | --reloading`.
fn parse_notify(parser: &mut lexopt::Parser) -> Result<Request, Failure> {
    use lexopt::prelude::*;
    let bad = |e: lexopt::Error| usage_failure("notify ", e);
    let mut args = NotifyArgs::default();
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Long("ready") => args.ready = true,
            Long("stopping") => args.stopping = true,
            Long("reloading") => args.reloading = true,
            Long("heartbeat") => args.heartbeat = true,
            Long("status") => args.status = Some(text_value(parser, "status")?),
            Short('h') | Long("help") => return Ok(Request::Help(notify_help())),
            other => return Err(bad(other.unexpected())),
        }
    }
    if args == NotifyArgs::default() {
        return Err(Failure::new(
            "reading arguments",
            "notify needs --ready, --status TEXT, --stopping, --reloading or --heartbeat; see 'herd notify --help'",
        ));
    }
    Ok(Request::Notify(args))
}

fn notify_help() -> String {
    "Usage: herd notify [--ready] [--status TEXT] [--stopping] [--reloading] [--heartbeat]\n\n\
     Tells the supervisor named by $NOTIFY_SOCKET (herd, for a process it runs,\n\
     or systemd) about the calling process, as systemd-notify does; for shell\n\
     children of a process that is ready=notify.\n\n\
     Options:\n\
     \x20 --ready        it is ready (READY=1)\n\
     \x20 --status TEXT  what it is doing, shown by herd status (STATUS=TEXT)\n\
     \x20 --stopping     it is stopping (STOPPING=1)\n\
     \x20 --reloading    it is reloading (RELOADING=1 with MONOTONIC_USEC)\n\
     \x20 --heartbeat    it is alive, for --watchdog: adds 1 to its scoreboard slot\n\
     \x20                ($HERD_SCOREBOARD, $HERD_SLOT), else sends WATCHDOG=1\n\n\
     Exit status: 0 sent; 125 NOTIFY_SOCKET unset, invalid or unreachable, or no\n\
     scoreboard slot and no NOTIFY_SOCKET for --heartbeat.\n"
        .to_string()
}

/// `herd status|stop|start|restart|signal|send|reload [OPTIONS] [ARGS]`.
fn parse_client(parser: &mut lexopt::Parser, command: &str) -> Result<Request, Failure> {
    use lexopt::prelude::*;
    let verb = format!("{command} ");
    let bad = |e: lexopt::Error| usage_failure(&verb, e);
    let mut target = Target::default();
    let mut json = false;
    let mut probe = None;
    let mut timeout = None;
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = parser.next().map_err(bad)? {
        let flag = match &arg {
            Long(long) => long.to_string(),
            _ => String::new(),
        };
        match arg {
            Long("name" | "state-dir" | "pidfile") => {
                let value = text_value(parser, &flag)?;
                set_target(&mut target, &flag, value)?;
            }
            Long("json") if command == "status" => json = true,
            Long("ready") if command == "status" => probe = Some(Probe::Ready),
            // --ready asks the supervisor too: with it, --live adds nothing.
            Long("live") if command == "status" => {
                probe = probe.or(Some(Probe::Live));
            }
            Long("timeout") if matches!(command, "stop" | "status" | "reload") => {
                timeout = Some(
                    spec::parse_seconds(&text_value(parser, &flag)?)
                        .map_err(|why| value_failure("timeout", why))?,
                )
            }
            Short('h') | Long("help") => return Ok(Request::Help(client_help())),
            Value(word) => {
                words.push(word.into_string().map_err(|w| {
                    Failure::new("reading arguments", format!("{w:?} is not UTF-8"))
                })?)
            }
            other => return Err(bad(other.unexpected())),
        }
    }
    if target == Target::default() {
        return Err(Failure::new(
            "reading arguments",
            format!("{command} needs --name NAME, --state-dir DIR or --pidfile PATH"),
        ));
    }
    let wrong = || {
        Failure::new(
            "reading arguments",
            format!("wrong arguments for {command}; see 'herd {command} --help'"),
        )
    };
    let mut words = words.into_iter();
    let mut word = || words.next();
    if json && probe.is_some() {
        return Err(Failure::new(
            "reading arguments",
            "status --ready and --live print nothing: --json does not go with them",
        ));
    }
    let action = match command {
        "status" => match probe {
            Some(check) => Action::Probe {
                check,
                timeout: timeout.unwrap_or(Duration::from_secs(5)),
            },
            None => Action::Status { json, timeout },
        },
        "stop" => Action::Stop {
            timeout: timeout.unwrap_or(Duration::from_secs(60)),
            process: word(),
        },
        "start" => Action::Start {
            process: word().ok_or_else(wrong)?,
        },
        "restart" => Action::Restart {
            process: word().ok_or_else(wrong)?,
        },
        "signal" => {
            let process = word().ok_or_else(wrong)?;
            let signal = word().ok_or_else(wrong)?;
            let signal = crate::signals::parse(&signal)
                .map_err(|why| Failure::new("reading arguments", why))?;
            Action::Signal { process, signal }
        }
        "send" => {
            let process = word().ok_or_else(wrong)?;
            let text = word().ok_or_else(wrong)?;
            Action::Send {
                process,
                text: (text != "-").then_some(text),
            }
        }
        _ => Action::Reload {
            process: word(),
            timeout,
        },
    };
    if word().is_some() {
        return Err(wrong());
    }
    Ok(Request::Client(ClientArgs { target, action }))
}

fn text_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, Failure> {
    let value = parser.value().map_err(|e| usage_failure("run ", e))?;
    value
        .into_string()
        .map_err(|v| value_failure(flag, format!("{v:?} is not UTF-8")))
}

/// Whether flags that only mean something for a group were given.
fn uses_group_flags(run: &RunArgs) -> bool {
    !run.env_files.is_empty()
        || run.formation != Formation::default()
        || run.port_base.is_some()
        || run.stdin_process.is_some()
        || run.stdin_pipe.is_some()
        || run.parallel_stop
        || run.timestamps
}

/// `--exit-ok CODE`: a whole number from 0 to 255.
pub fn exit_code(text: &str) -> Result<u8, Failure> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    text.parse().ok().filter(|_| digits).ok_or_else(|| {
        value_failure(
            "exit-ok",
            format!("'{text}' is not an exit code (0 to 255)"),
        )
    })
}

/// Whether flags that only mean something for one command were given.
fn uses_single_command_flags(run: &RunArgs) -> bool {
    !run.rewrite.is_empty() || !run.exit_ok.is_empty() || run.setsid.is_some()
}

/// One command or a group, never both, never neither.
fn check_mode(run: &RunArgs) -> Result<(), Failure> {
    let problem = match (run.command.is_empty(), run.sources.is_empty()) {
        (true, true) => "run needs a command, or processes with -c or -f",
        (false, false) => "give either a command or processes with -c/-f, not both",
        (false, true) if !run.named.is_empty() => {
            "per-process settings (NAME=...) need a group (-c or -f)"
        }
        (false, true) if uses_group_flags(run) => {
            "--env-file, --formation, --port-base, --stdin, --stdin-pipe, --parallel-stop and --timestamps need a group (-c or -f)"
        }
        (true, false) if uses_single_command_flags(run) => {
            "--rewrite-signal, --exit-ok, --setsid and --no-setsid need one command (herd run -- CMD)"
        }
        _ => return Ok(()),
    };
    Err(Failure::new(
        "reading arguments",
        format!("{problem}; see 'herd run --help'"),
    ))
}

/// `web=./serve --port 80` -> (`web`, `./serve --port 80`), when the part
/// before `=` is a process name.
fn split_named(text: &str) -> Option<(&str, &str)> {
    text.split_once('=')
        .filter(|(name, _)| spec::valid_name(name))
}

fn setting_key(flag: &str) -> &'static str {
    match flag {
        "restart" => "restart",
        "stop-signal" => "stop-signal",
        "grace" => "grace",
        "live" => "live",
        "live-interval" => "live-interval",
        "live-failures" => "live-failures",
        "live-grace" => "live-grace",
        "watchdog" => "watchdog",
        _ => "ready-timeout",
    }
}

fn named(key: &'static str, name: &str, value: Option<&str>) -> NamedSetting {
    NamedSetting {
        name: name.to_string(),
        key,
        value: value.map(str::to_string),
    }
}

/// A setting given without NAME changes what every process starts from.
fn apply_default(defaults: &mut Defaults, key: &str, value: &str) -> Result<(), Failure> {
    let mut probe = ProcessSpec::new(String::new(), String::new(), defaults);
    probe
        .apply(key, Some(value))
        .map_err(|why| value_failure(key, why))?;
    defaults.restart = probe.restart;
    defaults.stop_signal = probe.stop_signal;
    defaults.grace = probe.grace;
    defaults.ready_timeout = probe.ready_timeout;
    defaults.live = probe.live;
    defaults.watchdog = probe.watchdog;
    Ok(())
}

fn seconds(flag: &str, text: &str) -> Result<Duration, Failure> {
    spec::parse_seconds(text).map_err(|why| value_failure(flag, why))
}

fn usage_failure(command: &str, error: lexopt::Error) -> Failure {
    Failure::new(
        "reading arguments",
        format!("{error}; see 'herd {command}--help'"),
    )
}

fn value_failure(flag: &str, why: String) -> Failure {
    Failure::new("reading arguments", format!("--{flag}: {why}"))
}

fn main_help() -> String {
    format!(
        "herd {} - start, watch and stop processes\n\n\
         Usage: herd run [OPTIONS] [--] CMD [ARG...]\n\
         \x20      herd run [OPTIONS] -c NAME=SHELLCMD... | -f PROCFILE\n\
         \x20      herd start --name NAME [OPTIONS] (-- CMD | -c ... | -f ...)\n\
         \x20      herd status|stop|reload --name NAME\n\
         \x20      herd status --ready|--live --name NAME\n\
         \x20      herd start|stop|restart NAME --name GROUP\n\
         \x20      herd signal PROCESS SIG | send PROCESS TEXT|- --name GROUP\n\
         \x20      herd notify [--ready] [--status TEXT] [--stopping] [--reloading] [--heartbeat]\n\
         \x20      herd --help | --version\n\n\
         Commands:\n\
         \x20 run      run CMD with herd as its init, or a group of processes\n\
         \x20          with prefixed output, restarts and an ordered stop\n\
         \x20 start    the same, detached; returns once the group is ready\n\
         \x20 status   show a running herd's processes (--json)\n\
         \x20 stop     stop a running herd (or one PROCESS of it) and wait\n\
         \x20 restart, signal, send, reload: act on one process\n\
         \x20 notify   from a child: tell herd it is ready, its status (systemd-notify)\n\n\
         Options:\n{}\n\
         'herd COMMAND --help' describes a command; 'man herd' describes everything.\n",
        env!("CARGO_PKG_VERSION"),
        options_text(GLOBAL_FLAGS)
    )
}

fn run_help(start: bool) -> String {
    let start_options = if start {
        format!(
            "\nOptions of start:\n{}\n\
             'herd start PROCESS TARGET' (no -c, -f or --) starts one stopped process\n\
             of a running group; see 'herd status --help'.\n",
            options_text(START_FLAGS)
        )
    } else {
        String::new()
    };
    format!(
        "Usage: herd run [OPTIONS] [--] CMD [ARG...]\n\
         \x20      herd run [OPTIONS] -c NAME=SHELLCMD... | -f PROCFILE\n\
         \x20      herd start (--name NAME | --state-dir DIR | --pidfile PATH) [OPTIONS] ...\n\n\
         One command: runs CMD (no shell) as herd's child, forwards every signal,\n\
         reaps orphans, and exits with CMD's status (128+N if it died of signal N).\n\
         A group: starts the processes in order, prefixes their output with their\n\
         names, restarts them by policy, and stops them in reverse order.\n\n\
         Options:\n{}{start_options}\n\
         Exit status: CMD's, or the status of the process that stopped the group;\n\
         124 a ready check timed out; 125 herd failed; 126 CMD not executable;\n\
         127 CMD not found.\n",
        options_text(RUN_FLAGS)
    )
}

fn client_help() -> String {
    format!(
        "Usage: herd status [--json | --ready | --live] [--timeout SECS] TARGET\n\
         \x20      herd stop [--timeout SECS] [PROCESS] TARGET\n\
         \x20      herd start PROCESS TARGET\n\
         \x20      herd restart PROCESS TARGET\n\
         \x20      herd signal PROCESS SIG TARGET\n\
         \x20      herd send PROCESS TEXT|- TARGET\n\
         \x20      herd reload [--timeout SECS] [PROCESS] TARGET\n\
         TARGET is --name NAME, --state-dir DIR or --pidfile PATH.\n\n\
         Options:\n{}\n\
         Exit status: 0 done; 125 failed or no herd running there;\n\
         status: 0 running, 3 not running, 4 unknown;\n\
         status --ready, --live: 0 ready (live), 1 not, or no herd running there.\n",
        options_text(CLIENT_FLAGS)
    )
}

fn options_text(flags: &[Flag]) -> String {
    let left = |flag: &Flag| {
        let short = flag.short.map_or("    ".to_string(), |c| format!("-{c}, "));
        let value = flag.value.map_or(String::new(), |v| format!(" {v}"));
        format!("{short}--{}{value}", flag.long)
    };
    let width = flags.iter().map(|f| left(f).len()).max().unwrap_or(0);
    flags
        .iter()
        .map(|flag| format!("  {:width$}  {}\n", left(flag), flag.help))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Restart;

    fn parse_words(words: &[&str]) -> Result<Request, Failure> {
        parse(words.iter().map(OsString::from))
    }

    fn run_args(words: &[&str]) -> RunArgs {
        match parse_words(words) {
            Ok(Request::Run(run)) => *run,
            other => panic!("{words:?} gave {other:?}"),
        }
    }

    #[test]
    fn the_childs_flags_are_never_ours() {
        let run = run_args(&["run", "ls", "-l", "--grace", "x", "-v"]);
        assert_eq!(run.command, ["ls", "-l", "--grace", "x", "-v"]);
        assert!(!run.verbose);
        let run = run_args(&["run", "-v", "--", "-weird-name", "--help"]);
        assert_eq!(run.command, ["-weird-name", "--help"]);
        assert!(run.verbose);
    }

    #[test]
    fn start_with_processes_starts_a_supervisor_and_without_acts_on_one() {
        let supervisor_starts = [
            &["start", "--name", "g", "-c", "a=x"][..],
            &["start", "--name", "g", "-vc", "a=x"],
            &["start", "--name", "g", "-gvfProcfile"],
            &["start", "--name", "g", "--procfile=Procfile"],
            &["start", "--name", "g", "--command", "a=x"],
            &["start", "--name", "g", "--", "true"],
        ];
        for words in supervisor_starts {
            let request = parse_words(words);
            assert!(
                matches!(request, Ok(Request::Start(_))),
                "{words:?}: {request:?}"
            );
        }
        let request = parse_words(&["start", "web", "--name", "g"]);
        assert!(matches!(request, Ok(Request::Client(_))), "{request:?}");
    }

    #[test]
    fn reads_every_single_command_setting() {
        let run = run_args(&[
            "run",
            "-g",
            "--grace",
            "0.25",
            "--stop-signal",
            "SIGUSR1",
            "--no-subreaper",
            "true",
        ]);
        assert!(run.group_signal && !run.subreaper);
        assert_eq!(run.defaults.grace, Duration::from_millis(250));
        assert_eq!(run.defaults.stop_signal, libc::SIGUSR1);
    }

    #[test]
    fn reads_a_group_with_defaults_and_named_settings() {
        let run = run_args(&[
            "run",
            "--restart",
            "always",
            "-c",
            "web=serve --port=80",
            "-f",
            "Procfile",
            "--restart",
            "web=never",
            "--ready",
            "web=tcp:80",
            "--oneshot",
            "migrate",
            "--port-base",
            "5000",
            "--color",
            "never",
        ]);
        let web = Source::Command {
            name: "web".into(),
            command: "serve --port=80".into(),
        };
        assert_eq!(run.sources[0], web);
        assert_eq!(run.defaults.restart, Restart::Always);
        assert_eq!(run.sources[1], Source::Procfile("Procfile".into()));
        assert_eq!(run.named[0], named("restart", "web", Some("never")));
        assert_eq!(run.named[1], named("ready", "web", Some("tcp:80")));
        assert_eq!(run.named[2], named("oneshot", "migrate", None));
        assert_eq!(run.port_base, Some(5000));
        assert_eq!(run.color, ColorChoice::Never);
    }

    #[test]
    fn bad_input_names_the_flag() {
        let message = |words: &[&str]| parse_words(words).unwrap_err().to_string();
        assert!(message(&["run", "--nope", "true"]).contains("--nope"));
        assert!(message(&["run", "--grace", "soon", "true"]).contains("--grace"));
        assert!(message(&["run", "--grace", "-1", "true"]).contains("--grace"));
        assert!(message(&["run", "--stop-signal", "NOPE", "true"]).contains("--stop-signal"));
        assert!(message(&["run", "--restart", "sometimes", "true"]).contains("--restart"));
        assert!(message(&["run", "-c", "no equals"]).contains("--command"));
        assert!(message(&["run", "-c", "bad name=x"]).contains("--command"));
        assert!(message(&["run", "-c", "..=x"]).contains("--command"));
        assert!(message(&["run", "--ready", "tcp:80", "-c", "a=b"]).contains("--ready"));
        assert!(message(&["run", "--color", "pink", "-c", "a=b"]).contains("--color"));
        assert!(message(&["run"]).contains("needs a command"));
        assert!(message(&["run", "-c", "a=b", "true"]).contains("not both"));
        assert!(message(&["run", "--restart", "a=always", "true"]).contains("need a group"));
        assert!(message(&["run", "--env-file", "x", "true"]).contains("need a group"));
        assert!(message(&["frobnicate"]).contains("unknown command 'frobnicate'"));
        assert_eq!(parse_words(&["run", "--grace"]).unwrap_err().exit_code, 125);
    }

    #[test]
    fn reads_a_formation_given_several_times_and_refuses_a_bad_one_naming_the_flag() {
        let run = run_args(&[
            "run",
            "-m",
            "web=2,worker=3",
            "--formation",
            "all=0",
            "-f",
            "P",
        ]);
        assert_eq!(run.formation.all, Some(0));
        assert_eq!(
            run.formation.counts,
            [("web".to_string(), 2), ("worker".to_string(), 3)]
        );
        for (value, why) in [
            ("web=-1", "'-1' is not a number of instances (0 to 100)"),
            ("web=101", "'101' is more than 100 instances"),
            ("web=", "'web=' needs a count: web=N"),
            ("=2", "'' is not a valid name"),
            ("web=2,web=3", "'web' is given twice"),
        ] {
            let failure = parse_words(&["run", "-m", value, "-c", "web=x"]).unwrap_err();
            assert_eq!(failure.exit_code, 125, "{value}");
            assert!(
                failure.cause.starts_with("--formation: ") && failure.cause.contains(why),
                "{value}: {failure}"
            );
        }
        let failure = parse_words(&["run", "-m", "web=1", "-m", "web=2", "-c", "web=x"]);
        assert!(failure.unwrap_err().cause.contains("'web' is given twice"));
        let failure = parse_words(&["run", "-m", "web=2", "--", "web"]).unwrap_err();
        assert!(failure.cause.contains("need a group"), "{failure}");
    }

    #[test]
    fn every_duration_is_at_most_a_year_naming_the_flag() {
        let commands: [(&str, &[&str]); 8] = [
            ("grace", &["run", "--grace", "SECS", "--", "true"]),
            (
                "ready-timeout",
                &["run", "--ready-timeout", "SECS", "-c", "a=true"],
            ),
            (
                "backoff-min",
                &["run", "--backoff-min", "SECS", "-c", "a=true"],
            ),
            (
                "backoff-max",
                &["run", "--backoff-max", "SECS", "-c", "a=true"],
            ),
            (
                "start-window",
                &["run", "--start-window", "SECS", "-c", "a=true"],
            ),
            (
                "settle",
                &["start", "--name", "g", "--settle", "SECS", "-c", "a=true"],
            ),
            ("timeout", &["stop", "--timeout", "SECS", "--name", "g"]),
            (
                "grace",
                &["start", "--name", "g", "--grace", "SECS", "--", "true"],
            ),
        ];
        for (flag, words) in commands {
            let with = |secs: &'static str| -> Vec<&str> {
                let words = words.iter();
                words
                    .map(|&word| if word == "SECS" { secs } else { word })
                    .collect()
            };
            let year = with("31536000");
            assert!(parse_words(&year).is_ok(), "{year:?}");
            let too_long = with("1e19");
            let failure = parse_words(&too_long).unwrap_err();
            assert_eq!(failure.exit_code, 125, "{too_long:?}");
            assert_eq!(
                failure.to_string(),
                format!(
                    "reading arguments: --{flag}: '1e19' is more than a year (31536000 seconds)"
                ),
                "{too_long:?}"
            );
        }
        let run = run_args(&[
            "run",
            "--grace",
            "31536000",
            "--start-window",
            "1e-9",
            "true",
        ]);
        assert_eq!(run.defaults.grace, Duration::from_secs(spec::MAX_SECONDS));
        assert_eq!(run.start_window, Duration::from_nanos(1));
    }

    #[test]
    fn the_stop_deadline_flag_wins_over_herd_stop_deadline() {
        let env = |text: &str| stop_deadline_from_env(Some(OsString::from(text)));
        assert_eq!(env("9").unwrap(), Some(Duration::from_secs(9)));
        assert_eq!(env("0.5").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(env("").unwrap(), None, "empty is unset");
        assert_eq!(stop_deadline_from_env(None).unwrap(), None);
        for bad in ["-1", "nine", "inf", "NaN", "1e19", " 9"] {
            let failure = env(bad).unwrap_err();
            assert_eq!(failure.exit_code, 125, "{bad:?}");
            assert!(
                failure
                    .to_string()
                    .starts_with("reading arguments: HERD_STOP_DEADLINE: "),
                "{bad:?}: {failure}"
            );
        }
        let run = run_args(&["run", "--stop-deadline", "9", "-c", "a=true"]);
        assert_eq!(run.stop_deadline, Some(Duration::from_secs(9)));
        let run = run_args(&["run", "--stop-deadline", "0", "--", "true"]);
        assert_eq!(
            run.stop_deadline,
            Some(Duration::ZERO),
            "0: SIGKILL at once"
        );
        for bad in ["-3", "soon", "1e19", ""] {
            let failure = parse_words(&["run", "--stop-deadline", bad, "--", "true"]).unwrap_err();
            assert!(
                failure.to_string().contains("--stop-deadline: "),
                "{bad:?}: {failure}"
            );
        }
    }

    #[test]
    fn the_termination_log_is_a_path_and_never_an_empty_one() {
        let run = run_args(&["run", "--termination-log", "/tmp/why", "--", "true"]);
        assert_eq!(run.termination_log, Some(PathBuf::from("/tmp/why")));
        assert_eq!(run_args(&["run", "--", "true"]).termination_log, None);
        let failure = parse_words(&["run", "--termination-log", "", "--", "true"]).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "reading arguments: --termination-log: a path cannot be empty"
        );
    }

    #[test]
    fn a_huge_start_limit_is_taken_and_a_bigger_one_refused() {
        let most = usize::MAX.to_string();
        let run = run_args(&["run", "--start-limit", &most, "-c", "a=true"]);
        assert_eq!(run.start_limit, usize::MAX);
        let beyond = format!("{most}0");
        let failure = parse_words(&["run", "--start-limit", &beyond, "-c", "a=true"]).unwrap_err();
        assert!(failure.to_string().contains("--start-limit: "), "{failure}");
    }

    #[test]
    fn name_refuses_what_is_not_a_plain_name() {
        let commands: [&[&str]; 3] = [
            &["run", "--name", "NAME", "--", "true"],
            &["start", "--name", "NAME", "-c", "a=true"],
            &["status", "--name", "NAME"],
        ];
        for words in commands {
            for bad in ["", ".", "..", "a/b", "../x", "/"] {
                let words: Vec<&str> = words
                    .iter()
                    .map(|&word| if word == "NAME" { bad } else { word })
                    .collect();
                let failure = parse_words(&words).unwrap_err();
                assert_eq!(failure.exit_code, 125, "{words:?}");
                assert!(
                    failure
                        .to_string()
                        .contains(&format!("--name: '{bad}' is not a valid name")),
                    "{words:?}: {failure}"
                );
            }
        }
    }

    #[test]
    fn every_flag_in_the_table_is_parsed() {
        for flag in RUN_FLAGS {
            let mut spellings = vec![format!("--{}", flag.long)];
            spellings.extend(flag.short.map(|c| format!("-{c}")));
            for spelling in spellings {
                let mut words = vec!["run".to_string(), spelling.clone()];
                words.extend(flag.value.map(|value| sample_value(value).to_string()));
                if SINGLE_COMMAND_FLAGS.contains(&flag.long) {
                    words.extend(["--".to_string(), "true".to_string()]);
                } else if flag.long != "command" {
                    words.extend(["-c".to_string(), "p=true".to_string()]);
                }
                let result = parse(words.iter().map(OsString::from));
                assert!(result.is_ok(), "{spelling}: {:?}", result.unwrap_err());
            }
        }
    }

    const SINGLE_COMMAND_FLAGS: [&str; 4] = ["rewrite-signal", "exit-ok", "setsid", "no-setsid"];

    fn sample_value(value_name: &str) -> &'static str {
        match value_name {
            "FROM:TO" => "TERM:QUIT",
            "CODE" => "143",
            "SIG" => "KILL",
            "SECS" | "[NAME=]SECS" => "1.5",
            "[NAME=]SIG" => "TERM",
            "[NAME=]POLICY" => "always",
            "NAME=SHELLCMD" => "p=true",
            "NAME=CHECK" => "p=tcp:80",
            "[NAME=]CHECK" => "p=exec:true",
            "[NAME=]N" => "p=2",
            "[NAME=]ADDR" => "http=tcp:127.0.0.1:0",
            "NAME=SOCKETS" => "p=",
            "tcp:HOST:PORT" => "tcp:127.0.0.1:8086",
            "NAME" => "p",
            "N" => "5",
            "NAME=N[,NAME=N...]" => "p=2",
            "FILE" => "Procfile",
            "WHEN" => "never",
            "DIR" => "/tmp/dir",
            "PATH" => "/tmp/pid",
            other => panic!("no sample value for {other}: add one"),
        }
    }

    #[test]
    fn reads_the_container_init_settings_and_refuses_bad_ones_naming_the_flag() {
        let run = run_args(&[
            "run",
            "--rewrite-signal",
            "TERM:QUIT",
            "--rewrite-signal",
            "10:0",
            "--exit-ok",
            "143",
            "--exit-ok",
            "0",
            "--setsid",
            "--parent-death-signal",
            "SIGKILL",
            "--warn-zombies",
            "nginx",
        ]);
        assert_eq!(
            run.rewrite,
            [(libc::SIGTERM, libc::SIGQUIT), (libc::SIGUSR1, 0)]
        );
        assert_eq!(run.exit_ok, [143, 0]);
        assert_eq!(run.setsid, Some(true));
        assert_eq!(run.parent_death_signal, Some(libc::SIGKILL));
        assert!(run.warn_zombies);
        assert_eq!(
            run_args(&["run", "--setsid", "--no-setsid", "x"]).setsid,
            Some(false)
        );
        let message = |words: &[&str]| parse_words(words).unwrap_err().to_string();
        for (words, flag) in [
            (
                &["run", "--rewrite-signal", "TERM", "x"][..],
                "--rewrite-signal",
            ),
            (&["run", "--rewrite-signal", "0:1", "x"], "--rewrite-signal"),
            (
                &["run", "--rewrite-signal", "TERM:99", "x"],
                "--rewrite-signal",
            ),
            (&["run", "--exit-ok", "256", "x"], "--exit-ok"),
            (&["run", "--exit-ok", "-1", "x"], "--exit-ok"),
            (&["run", "--exit-ok", "+3", "x"], "--exit-ok"),
            (&["run", "--exit-ok", "", "x"], "--exit-ok"),
            (
                &["run", "--parent-death-signal", "0", "x"],
                "--parent-death-signal",
            ),
        ] {
            assert!(
                message(words).contains(flag),
                "{words:?}: {}",
                message(words)
            );
        }
        for flag in ["--setsid", "--no-setsid"] {
            assert!(message(&["run", flag, "-c", "a=b"]).contains("need one command"));
        }
        assert!(message(&["run", "--exit-ok", "1", "-c", "a=b"]).contains("need one command"));
        let run = run_args(&[
            "run",
            "--warn-zombies",
            "--parent-death-signal",
            "TERM",
            "-c",
            "a=b",
        ]);
        assert!(run.warn_zombies);
    }

    #[test]
    fn the_man_page_documents_every_flag() {
        let man = include_str!("../man/herd.1");
        let tables = [GLOBAL_FLAGS, RUN_FLAGS, START_FLAGS, CLIENT_FLAGS];
        for flag in tables.iter().flat_map(|table| table.iter()) {
            let long = format!("\\-\\-{}", flag.long.replace('-', "\\-"));
            assert!(man.contains(&long), "man/herd.1 lacks {long}");
            if let Some(c) = flag.short {
                let short = format!("\\-{c}");
                assert!(man.contains(&short), "man/herd.1 lacks {short}");
            }
        }
    }

    #[test]
    fn status_ready_and_live_are_probes_that_print_nothing() {
        let action = |words: &[&str]| match parse_words(words) {
            Ok(Request::Client(args)) => args.action,
            other => panic!("{words:?} gave {other:?}"),
        };
        let five = Duration::from_secs(5);
        for (words, check) in [
            (&["status", "--ready", "--name", "g"][..], Probe::Ready),
            (&["status", "--live", "--name", "g"], Probe::Live),
            (
                &["status", "--live", "--ready", "--name", "g"],
                Probe::Ready,
            ),
            (
                &["status", "--ready", "--live", "--name", "g"],
                Probe::Ready,
            ),
        ] {
            let timeout = five;
            assert_eq!(action(words), Action::Probe { check, timeout }, "{words:?}");
        }
        let quick = action(&["status", "--ready", "--timeout", "0.5", "--name", "g"]);
        let timeout = Duration::from_millis(500);
        assert_eq!(
            quick,
            Action::Probe {
                check: Probe::Ready,
                timeout
            }
        );
        let failure = parse_words(&["status", "--ready", "--json", "--name", "g"]).unwrap_err();
        assert!(failure.cause.contains("--json does not go"), "{failure}");
        for not_status in ["stop", "reload"] {
            let failure = parse_words(&[not_status, "--ready", "--name", "g"]).unwrap_err();
            assert_eq!(failure.exit_code, 125, "{not_status}");
        }
    }

    #[test]
    fn health_takes_one_tcp_address_naming_the_flag() {
        let run = run_args(&["run", "--health", "tcp:127.0.0.1:8086", "--", "true"]);
        assert_eq!(
            run.health.map(|h| h.text).as_deref(),
            Some("tcp:127.0.0.1:8086")
        );
        let message = |words: &[&str]| parse_words(words).unwrap_err().to_string();
        let twice = [
            "run", "--health", "tcp:1", "--health", "tcp:2", "--", "true",
        ];
        assert!(message(&twice).contains("--health: is given twice"));
        let unix = message(&["run", "--health", "unix:/x", "--", "true"]);
        assert!(unix.starts_with("reading arguments: --health: "), "{unix}");
    }

    #[test]
    fn help_lists_every_flag() {
        let help = run_help(true);
        for flag in RUN_FLAGS.iter().chain(START_FLAGS) {
            assert!(help.contains(&format!("--{}", flag.long)), "{}", flag.long);
        }
    }
}
