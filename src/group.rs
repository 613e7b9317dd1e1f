//! The supervisor loop of a group: ordered start with ready checks, restarts
//! with backoff, reverse-order stop, and the exit code that tells why it
//! ended.

use crate::child::{Backoff, StartLimit};
use crate::cli::{RunArgs, Source};
use crate::control::{self, Command, ProcessStatus, Reply};
use crate::daemon::Service;
use crate::error::Failure;
use crate::log::Verbose;
use crate::output::{self, Output, ReaderId, Style};
use crate::procfile;
use crate::signals;
use crate::spec::{Defaults, ProcessSpec, Ready, Restart};
use crate::supervisor::{self, describe, exit_code, next_event, Event, GROUP_POLL};
use crate::sys::fd;
use crate::sys::process::{self, ChildSetup, WaitStatus};
use crate::sys::signal::{self, SignalSet};
use crate::sys::Pid;
use std::ffi::OsString;
use std::fs::File;
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Exit code when a ready check timed out (as timeout(1) exits).
const EXIT_NOT_READY: u8 = 124;

/// How often ready checks are tried.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// How long the line that a main process exited waits for its last output,
/// so that its exit is logged after what it printed.
const EXIT_OUTPUT_DRAIN: Duration = Duration::from_millis(100);

/// Runs the group described by `args` until every process is gone.
pub fn run(args: RunArgs, service: &mut Service) -> Result<u8, Failure> {
    let caller_mask = signal::block_all().map_err(|e| Failure::io("blocking signals", &e))?;
    let specs = load_specs(&args)?;
    let env_files = load_env_files(&args)?;
    for (flag, name) in [
        ("stdin", &args.stdin_process),
        ("stdin-pipe", &args.stdin_pipe),
    ] {
        if let Some(name) = name
            .as_ref()
            .filter(|n| !specs.iter().any(|s| &s.name == *n))
        {
            return Err(Failure::new(
                "reading arguments",
                format!("--{flag}: no process named '{name}'"),
            ));
        }
    }
    let is_init = supervisor::adopt_orphans(args.subreaper)?;
    if let Some(base) = args.port_base {
        let last = u32::from(base) + 100 * (specs.len() as u32 - 1);
        if last > u32::from(u16::MAX) {
            return Err(Failure::new(
                "reading arguments",
                format!("--port-base {base}: the last process would get PORT={last}"),
            ));
        }
    }
    let name_width = specs
        .iter()
        .map(|s| s.name.len())
        .chain([output::HERD.len()])
        .max()
        .unwrap_or_default();
    let color = output::use_color(
        args.color,
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let sink = Output::new(Style {
        color,
        timestamps: args.timestamps,
        name_width,
    });
    let null = File::open("/dev/null").map_err(|e| Failure::io("opening /dev/null", &e))?;
    let procs = specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let mut env = env_files.clone();
            if let Some(base) = args.port_base {
                let port = u32::from(base) + 100 * index as u32;
                env.push(("PORT".to_string(), port.to_string()));
            }
            Proc {
                state: State::Waiting,
                pid: None,
                pgid: None,
                started_at: Instant::now(),
                last_status: None,
                backoff: Backoff::new(args.backoff_min, args.backoff_max),
                limit: StartLimit::new(args.start_limit, args.start_window),
                takes_stdin: args.stdin_process.as_ref() == Some(&spec.name),
                has_terminal: false,
                has_stdin_pipe: args.stdin_pipe.as_ref() == Some(&spec.name),
                stdin_pipe: None,
                restarts: 0,
                manual_stop: false,
                restart_after_stop: false,
                reader: None,
                spec,
                env,
            }
        })
        .collect();
    let events = supervisor::start_event_sources(service)?;
    let mut group = Group {
        procs,
        next_to_start: 0,
        stopping: false,
        kill_everything: false,
        cause: None,
        parallel_stop: args.parallel_stop,
        sink,
        caller_mask,
        null,
        defaults: args.defaults.clone(),
        is_init,
        verbose: Verbose(args.verbose),
        service,
    };
    group.run(&events)
}

/// The processes from `-c` and `-f`, in order, with their settings applied:
/// defaults, then Procfile notes, then `--KEY NAME=VALUE` flags.
fn load_specs(args: &RunArgs) -> Result<Vec<ProcessSpec>, Failure> {
    let mut specs: Vec<ProcessSpec> = Vec::new();
    for source in &args.sources {
        let loaded = match source {
            Source::Command { name, command } => {
                vec![ProcessSpec::new(
                    name.clone(),
                    command.clone(),
                    &args.defaults,
                )]
            }
            Source::Procfile(path) => {
                let text = read(path)?;
                procfile::parse_procfile(&text, &path.display().to_string(), &args.defaults)?
            }
        };
        for spec in loaded {
            if specs.iter().any(|known| known.name == spec.name) {
                return Err(Failure::new(
                    "reading arguments",
                    format!("duplicate process name '{}'", spec.name),
                ));
            }
            specs.push(spec);
        }
    }
    for setting in &args.named {
        let spec = specs
            .iter_mut()
            .find(|spec| spec.name == setting.name)
            .ok_or_else(|| {
                Failure::new(
                    "reading arguments",
                    format!("--{}: no process named '{}'", setting.key, setting.name),
                )
            })?;
        spec.apply(setting.key, setting.value.as_deref())
            .map_err(|why| {
                Failure::new(
                    "reading arguments",
                    format!("--{} {}: {why}", setting.key, setting.name),
                )
            })?;
    }
    Ok(specs)
}

fn load_env_files(args: &RunArgs) -> Result<Vec<(String, String)>, Failure> {
    let mut env: Vec<(String, String)> = Vec::new();
    for path in &args.env_files {
        let text = read(path)?;
        for (key, value) in procfile::parse_env_file(&text, &path.display().to_string())? {
            env.retain(|(known, _)| *known != key);
            env.push((key, value));
        }
    }
    Ok(env)
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::io(format!("reading {}", path.display()), &e))
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Not started yet: an earlier process is not ready.
    Waiting,
    /// Started; its ready check has not passed yet.
    Starting { deadline: Instant },
    /// Started and ready.
    Running,
    /// Its process group was sent the stop signal; it is gone once its main
    /// process is reaped and the group is empty. `requested`: herd stopped
    /// it (rather than clearing up after a main process that exited).
    Stopping {
        kill_at: Option<Instant>,
        requested: bool,
    },
    /// Waiting to be started again.
    Backoff { until: Instant },
    /// Stopped by `herd stop NAME`: not running, but the group goes on and
    /// `herd start NAME` may start it again.
    Stopped,
    /// Will not run again.
    Done,
}

struct Proc {
    spec: ProcessSpec,
    env: Vec<(String, String)>,
    state: State,
    /// The main process, until it is reaped.
    pid: Option<Pid>,
    /// The process group of the latest run, while it may have members.
    pgid: Option<Pid>,
    started_at: Instant,
    last_status: Option<WaitStatus>,
    backoff: Backoff,
    limit: StartLimit,
    takes_stdin: bool,
    /// Its process group is the terminal's foreground group (`--stdin` on a
    /// terminal herd owned).
    has_terminal: bool,
    /// `--stdin-pipe`: its stdin is a pipe that `herd send` writes to.
    has_stdin_pipe: bool,
    stdin_pipe: Option<File>,
    restarts: u32,
    /// Stopped by `herd stop NAME`: becomes `Stopped`, not `Done`.
    manual_stop: bool,
    /// Stopped by `herd restart NAME`: starts again once gone.
    restart_after_stop: bool,
    /// The output reader of its latest run.
    reader: Option<ReaderId>,
}

impl Proc {
    fn is_active(&self) -> bool {
        !matches!(self.state, State::Done)
    }

    /// Why herd stopped restarting it, for its event line and stderr.
    fn gave_up(&self) -> String {
        format!(
            "{}: gave up after {} restarts in {}",
            self.spec.name,
            self.limit.limit,
            seconds(self.limit.window)
        )
    }

    /// Why its start failed, for its event line and stderr.
    fn not_ready(&self) -> String {
        format!(
            "{}: not ready after {}",
            self.spec.name,
            seconds(self.spec.ready_timeout)
        )
    }

    /// Ended the way a stop ends: exit 0, or the stop signal herd sent.
    fn ended_cleanly(&self) -> bool {
        match self.last_status {
            None | Some(WaitStatus::Exited(0)) => true,
            Some(WaitStatus::Signaled(signal)) => signal == self.spec.stop_signal,
            Some(_) => false,
        }
    }
}

/// Why the group is stopping.
#[derive(Clone, Copy, Debug)]
enum Cause {
    Request,
    Exited(usize),
    GaveUp(usize),
    NotReady(usize),
}

struct Group<'a> {
    service: &'a mut Service,
    procs: Vec<Proc>,
    /// Processes before this index have been started.
    next_to_start: usize,
    stopping: bool,
    /// A second stop request: SIGKILL for everything left.
    kill_everything: bool,
    cause: Option<Cause>,
    parallel_stop: bool,
    sink: Output,
    caller_mask: SignalSet,
    null: File,
    /// For the namespace sweep as PID 1: the stop signal and grace of `run`.
    defaults: Defaults,
    is_init: bool,
    verbose: Verbose,
}

impl Group<'_> {
    fn run(&mut self, events: &Receiver<Event>) -> Result<u8, Failure> {
        loop {
            self.tick(Instant::now());
            if !self.procs.iter().any(Proc::is_active) {
                break;
            }
            match next_event(events, self.next_wakeup(Instant::now()))? {
                Some(Event::Signal(libc::SIGCHLD)) => self.reap_all()?,
                Some(Event::Signal(libc::SIGUSR1)) if self.service.reopen_log() => {}
                Some(Event::Signal(signal)) => self.on_signal(signal),
                Some(Event::Control(command, reply_to)) => {
                    let reply = self.control(command);
                    let _ = reply_to.send(reply);
                }
                None => {}
            }
        }
        if self.is_init {
            let defaults = &self.defaults;
            supervisor::sweep_namespace(
                events,
                defaults.stop_signal,
                defaults.grace,
                self.verbose,
            )?;
        }
        self.drain_output();
        Ok(self.exit_code())
    }

    /// Everything time or state changes have made due, until nothing more
    /// changes (a process that settles may let the next one stop or start).
    fn tick(&mut self, now: Instant) {
        loop {
            let before: Vec<State> = self.procs.iter().map(|p| p.state).collect();
            self.tick_once(now);
            if self.procs.iter().map(|p| p.state).eq(before) {
                return;
            }
        }
    }

    fn tick_once(&mut self, now: Instant) {
        for index in 0..self.procs.len() {
            match self.procs[index].state {
                State::Starting { deadline } => self.check_ready(index, now, deadline),
                State::Stopping { kill_at, requested } => {
                    let proc = &self.procs[index];
                    let group_alive = proc.pgid.is_some_and(process::group_exists);
                    if proc.pid.is_none() && !group_alive {
                        self.procs[index].pgid = None;
                        self.settle(index, requested, now);
                    } else if kill_at.is_some_and(|at| at <= now) {
                        self.kill(index);
                    }
                }
                State::Backoff { until } if until <= now && !self.stopping => self.start(index),
                _ => {}
            }
        }
        if self.stopping {
            self.advance_stop();
        } else {
            self.advance_start();
        }
    }

    fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        let mut wakeup: Option<Instant> = None;
        let mut earliest = |at: Instant| wakeup = Some(wakeup.map_or(at, |w| w.min(at)));
        for proc in &self.procs {
            match proc.state {
                State::Starting { deadline } => earliest(deadline.min(now + PROBE_INTERVAL)),
                State::Stopping { kill_at, .. } => {
                    // Members that are not herd's children send no SIGCHLD.
                    earliest(now + GROUP_POLL);
                    if let Some(at) = kill_at {
                        earliest(at);
                    }
                }
                State::Backoff { until } => earliest(until),
                _ => {}
            }
        }
        if let Some(at) = self.settled_at() {
            earliest(at);
        }
        wakeup.map(|at| at.saturating_duration_since(now))
    }

    /// Starts the next processes in order; one whose ready check has not
    /// passed yet holds back the ones after it.
    fn advance_start(&mut self) {
        while let Some(proc) = self.procs.get(self.next_to_start) {
            match proc.state {
                State::Waiting => self.start(self.next_to_start),
                State::Running | State::Done | State::Stopped => self.next_to_start += 1,
                _ => return,
            }
        }
        if self.settled_at().is_some_and(|at| at <= Instant::now()) {
            self.service.ready();
        }
    }

    /// When a waiting `herd start` may be told the group is ready: every
    /// process ready, and those without a ready check up for the settle time
    /// (so that a command that fails at once fails the start). `None`: not
    /// while some process is not running.
    fn settled_at(&self) -> Option<Instant> {
        if !self.service.awaits_report() || self.next_to_start < self.procs.len() {
            return None;
        }
        let mut settled = Instant::now();
        for proc in &self.procs {
            match proc.state {
                State::Running if proc.spec.ready == Ready::Started => {
                    settled = settled.max(proc.started_at + self.service.settle)
                }
                State::Running | State::Done | State::Stopped => {}
                _ => return None,
            }
        }
        Some(settled)
    }

    /// Starts (or restarts) a process. One that cannot be started counts as
    /// a process that failed: herd keeps supervising the others.
    fn start(&mut self, index: usize) {
        if let Err(failure) = self.try_start(index) {
            let proc = &mut self.procs[index];
            self.sink.herd_line(&failure.to_string());
            proc.last_status = Some(WaitStatus::Exited(i32::from(failure.exit_code)));
            proc.state = State::Done;
            self.stop_group(Cause::Exited(index));
        }
    }

    fn try_start(&mut self, index: usize) -> Result<(), Failure> {
        let proc = &mut self.procs[index];
        let doing = format!("starting {}", proc.spec.name);
        // One pipe for stdout and stderr: they are shown alike, one pipe
        // keeps their order, and one reader thread per process halves what
        // an idle process costs.
        let (output_read, output_write) = fd::pipe().map_err(|e| Failure::io(&doing, &e))?;
        let stdin_pipe = if proc.has_stdin_pipe {
            Some(fd::pipe().map_err(|e| Failure::io(&doing, &e))?)
        } else {
            None
        };
        let stdin = match &stdin_pipe {
            Some((read_end, _)) => Some(read_end.as_fd()),
            None if proc.takes_stdin => None,
            None => Some(self.null.as_fd()),
        };
        let argv: Vec<OsString> = ["/bin/sh", "-c", &proc.spec.command]
            .iter()
            .map(OsString::from)
            .collect();
        proc.has_terminal = proc.takes_stdin && process::owns_terminal();
        let setup = ChildSetup {
            mask: self.caller_mask,
            take_terminal: proc.has_terminal,
            stdio: [
                stdin,
                Some(output_write.as_fd()),
                Some(output_write.as_fd()),
            ],
            env: &proc.env,
        };
        let pid =
            process::spawn(&argv, &setup).map_err(|e| supervisor::spawn_failure("/bin/sh", &e))?;
        // herd must not hold the write end, or the reader never sees EOF.
        drop(output_write);
        proc.stdin_pipe = stdin_pipe.map(|(_, write_end)| File::from(write_end));
        let reader = self
            .sink
            .spawn_reader(&proc.spec.name, output_read)
            .map_err(|e| Failure::io(&doing, &e))?;
        proc.reader = Some(reader);
        proc.pid = Some(pid);
        proc.pgid = Some(pid);
        proc.started_at = Instant::now();
        proc.state = match proc.spec.ready {
            Ready::Started => State::Running,
            _ => State::Starting {
                deadline: proc.started_at + proc.spec.ready_timeout,
            },
        };
        let name = proc.spec.name.clone();
        self.sink.herd_line(&format!("{name} started (pid {pid})"));
        Ok(())
    }

    fn check_ready(&mut self, index: usize, now: Instant, deadline: Instant) {
        let proc = &mut self.procs[index];
        let ready = match &proc.spec.ready {
            Ready::Started => true,
            Ready::Tcp(port) => {
                let address = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                TcpStream::connect_timeout(&address, PROBE_INTERVAL).is_ok()
            }
            Ready::File(path) => Path::new(path).exists(),
        };
        if ready {
            proc.state = State::Running;
            let line = format!("{} is ready", proc.spec.name);
            self.sink.herd_line(&line);
        } else if now >= deadline {
            self.sink.herd_line(&proc.not_ready());
            self.begin_stop(index, true);
            self.stop_group(Cause::NotReady(index));
        }
    }

    fn reap_all(&mut self) -> Result<(), Failure> {
        supervisor::reap_children(self.verbose, |pid, status| {
            if let WaitStatus::Stopped(_) = status {
                return false;
            }
            match self.procs.iter().position(|p| p.pid == Some(pid)) {
                Some(index) => self.main_exited(index, status),
                None => return false,
            }
            true
        })
        .map(drop)
    }

    fn main_exited(&mut self, index: usize, status: WaitStatus) {
        let proc = &mut self.procs[index];
        if std::mem::take(&mut proc.has_terminal) {
            // Back to herd, so that Ctrl-C reaches herd again and a restart
            // can hand it over once more.
            let _ = process::give_terminal_to(process::own_process_group());
        }
        proc.pid = None;
        proc.last_status = Some(status);
        let line = match status {
            WaitStatus::Exited(code) => format!("{} exited with code {code}", proc.spec.name),
            WaitStatus::Signaled(signal) | WaitStatus::Stopped(signal) => {
                format!("{} was killed by {}", proc.spec.name, signals::name(signal))
            }
        };
        match proc.reader {
            Some(reader) => self.sink.herd_line_after(&line, reader, EXIT_OUTPUT_DRAIN),
            None => self.sink.herd_line(&line),
        }
        if !matches!(self.procs[index].state, State::Stopping { .. }) {
            // What the main process left in its group goes with it, so that
            // an orphan cannot keep a port or a pipe.
            self.begin_stop(index, false);
        }
    }

    /// Sends the stop signal to the process's whole group and starts its
    /// grace period. `requested`: herd asks it to stop (a group stop).
    fn begin_stop(&mut self, index: usize, requested: bool) {
        let kill_everything = self.kill_everything;
        let proc = &mut self.procs[index];
        let kill_at = Some(Instant::now() + proc.spec.grace);
        proc.state = State::Stopping { kill_at, requested };
        let Some(pgid) = proc.pgid.filter(|&pgid| process::group_exists(pgid)) else {
            return;
        };
        if kill_everything {
            self.kill(index);
            return;
        }
        let signal = proc.spec.stop_signal;
        if requested {
            let line = format!("stopping {} ({})", proc.spec.name, signals::name(signal));
            self.sink.herd_line(&line);
        }
        let _ = process::send_group_signal(pgid, signal);
    }

    fn kill(&mut self, index: usize) {
        let proc = &mut self.procs[index];
        if let State::Stopping { kill_at, .. } = &mut proc.state {
            *kill_at = None;
        }
        let Some(pgid) = proc.pgid else { return };
        if !self.kill_everything {
            let line = format!(
                "{} still running after {} grace: sending SIGKILL",
                proc.spec.name,
                seconds(proc.spec.grace)
            );
            self.sink.herd_line(&line);
        }
        let _ = process::send_group_signal(pgid, libc::SIGKILL);
    }

    /// The process and its group are gone: decide what comes next.
    fn settle(&mut self, index: usize, requested: bool, now: Instant) {
        let stopping = self.stopping;
        let proc = &mut self.procs[index];
        proc.state = State::Done;
        proc.stdin_pipe = None;
        if stopping {
            return;
        }
        if std::mem::take(&mut proc.restart_after_stop) {
            proc.restarts += 1;
            self.start(index);
            return;
        }
        if std::mem::take(&mut proc.manual_stop) {
            proc.state = State::Stopped;
            return;
        }
        if requested {
            return;
        }
        let failed = proc.last_status != Some(WaitStatus::Exited(0));
        let restart = match proc.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => failed,
            Restart::Never => false,
        };
        if restart {
            if !proc.limit.allow(now) {
                self.sink.herd_line(&proc.gave_up());
                self.stop_group(Cause::GaveUp(index));
                return;
            }
            proc.restarts += 1;
            let delay = proc.backoff.next_delay(now - proc.started_at);
            proc.state = State::Backoff { until: now + delay };
            let line = format!("{} restarting in {}", proc.spec.name, seconds(delay));
            self.sink.herd_line(&line);
        } else if failed || !proc.spec.oneshot {
            self.stop_group(Cause::Exited(index));
        }
    }

    fn on_signal(&mut self, signal: i32) {
        if signals::is_stop_request(signal) {
            if !self.stopping {
                self.sink
                    .herd_line(&format!("got {}: stopping", signals::name(signal)));
                self.stop_group(Cause::Request);
            } else if signal != libc::SIGQUIT && !self.kill_everything {
                self.sink.herd_line(&format!(
                    "got {} while stopping: killing everything",
                    signals::name(signal)
                ));
                self.kill_everything = true;
                for index in 0..self.procs.len() {
                    if matches!(self.procs[index].state, State::Stopping { .. }) {
                        self.kill(index);
                    }
                }
            }
            return;
        }
        for proc in &self.procs {
            if let (Some(_), Some(pgid)) = (proc.pid, proc.pgid) {
                self.verbose.note(format_args!(
                    "forwarding {} to process group {pgid} ({})",
                    signals::name(signal),
                    proc.spec.name
                ));
                let _ = process::send_group_signal(pgid, signal);
            }
        }
        if matches!(signal, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
            // Ctrl-Z: the processes are stopped, and herd stops too, so that
            // its shell sees the job stopped; `fg` sends herd SIGCONT, which
            // goes on to every process like any other signal.
            let _ = process::stop_self();
        }
    }

    fn stop_group(&mut self, cause: Cause) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.cause = Some(cause);
        let name = |index: usize| &self.procs[index].spec.name;
        self.service.stop_reason = Some(match cause {
            Cause::Request => "stopped on request".to_string(),
            Cause::Exited(index) => match self.procs[index].last_status {
                Some(status) => format!("{} ended ({})", name(index), describe(status)),
                None => format!("{} could not be started", name(index)),
            },
            Cause::GaveUp(index) => self.procs[index].gave_up(),
            Cause::NotReady(index) => self.procs[index].not_ready(),
        });
    }
    /// A request from the control socket.
    fn control(&mut self, command: Command) -> Reply {
        let index = match &command {
            Command::StopProcess(name)
            | Command::StartProcess(name)
            | Command::Restart(name)
            | Command::Signal(name, _)
            | Command::Send(name) => match self.procs.iter().position(|p| &p.spec.name == name) {
                Some(index) => index,
                None => return Reply::Error(format!("no process named '{name}'")),
            },
            Command::Status | Command::Stop | Command::Reload => 0,
        };
        if self.stopping && !matches!(command, Command::Status | Command::Stop | Command::Reload) {
            return Reply::Error("the group is stopping".to_string());
        }
        let ok = || Reply::Ok(Vec::new());
        let name = self.procs[index].spec.name.clone();
        match command {
            Command::Status => Reply::Ok(control::status_fields(&self.status())),
            Command::Stop => {
                if !self.stopping {
                    self.sink.herd_line("stop requested: stopping");
                    self.stop_group(Cause::Request);
                }
                ok()
            }
            Command::StopProcess(_) => match self.procs[index].state {
                State::Running | State::Starting { .. } => {
                    self.procs[index].manual_stop = true;
                    self.begin_stop(index, true);
                    ok()
                }
                State::Backoff { .. } | State::Waiting => {
                    self.procs[index].state = State::Stopped;
                    ok()
                }
                _ => Reply::Error(format!("{name} is not running")),
            },
            Command::StartProcess(_) => match self.procs[index].state {
                State::Stopped | State::Done => {
                    self.start(index);
                    ok()
                }
                _ => Reply::Error(format!("{name} is already running")),
            },
            Command::Restart(_) => {
                match self.procs[index].state {
                    State::Running | State::Starting { .. } => {
                        self.procs[index].restart_after_stop = true;
                        self.begin_stop(index, true);
                    }
                    State::Stopping { .. } => self.procs[index].restart_after_stop = true,
                    _ => {
                        self.procs[index].restarts += 1;
                        self.start(index);
                    }
                }
                ok()
            }
            Command::Signal(_, signal) => match (self.procs[index].pid, self.procs[index].pgid) {
                (Some(_), Some(pgid)) => {
                    let _ = process::send_group_signal(pgid, signal);
                    ok()
                }
                _ => Reply::Error(format!("{name} is not running")),
            },
            Command::Send(_) => {
                let proc = &self.procs[index];
                match proc.stdin_pipe.as_ref().map(File::try_clone) {
                    Some(Ok(pipe)) => Reply::Stdin(pipe),
                    Some(Err(e)) => Reply::Error(crate::error::describe(&e)),
                    None if proc.has_stdin_pipe => Reply::Error(format!("{name} is not running")),
                    None => Reply::Error(format!("{name} was not started with --stdin-pipe")),
                }
            }
            Command::Reload => Reply::Error("reload is not supported yet".to_string()),
        }
    }

    fn status(&self) -> Vec<ProcessStatus> {
        self.procs
            .iter()
            .map(|proc| ProcessStatus {
                name: proc.spec.name.clone(),
                state: match proc.state {
                    State::Waiting => "waiting",
                    State::Starting { .. } => "starting",
                    State::Running => "running",
                    State::Stopping { .. } => "stopping",
                    State::Backoff { .. } => "backoff",
                    State::Stopped => "stopped",
                    State::Done => "exited",
                },
                pid: proc.pid.map_or("-".to_string(), |pid| pid.to_string()),
                uptime: match proc.pid {
                    Some(_) => proc.started_at.elapsed(),
                    None => Duration::ZERO,
                },
                restarts: proc.restarts,
                last_exit: proc.last_status.map(describe),
            })
            .collect()
    }

    /// Stops processes in reverse start order, each gone before the one
    /// before it is asked (or all at once with --parallel-stop). Pending
    /// restarts and processes not started yet are cancelled.
    fn advance_stop(&mut self) {
        for index in (0..self.procs.len()).rev() {
            match self.procs[index].state {
                State::Waiting | State::Backoff { .. } | State::Stopped => {
                    self.procs[index].state = State::Done
                }
                State::Done => {}
                State::Stopping { .. } if !self.parallel_stop => return,
                State::Stopping { .. } => {}
                State::Starting { .. } | State::Running => {
                    self.begin_stop(index, true);
                    if !self.parallel_stop {
                        return;
                    }
                }
            }
        }
    }

    /// Lets the reader threads write what is still in the pipes.
    fn drain_output(&mut self) {
        self.sink.drain(output::OUTPUT_DRAIN);
    }

    fn exit_code(&self) -> u8 {
        let status_of = |index: usize| self.procs[index].last_status.map_or(1, exit_code);
        match self.cause {
            None => 0,
            Some(Cause::Request) => self
                .procs
                .iter()
                .find(|proc| !proc.ended_cleanly())
                .and_then(|proc| proc.last_status)
                .map_or(0, exit_code),
            Some(Cause::Exited(index)) => status_of(index),
            Some(Cause::GaveUp(index)) => {
                crate::log::line(format_args!("{}", self.procs[index].gave_up()));
                status_of(index)
            }
            Some(Cause::NotReady(index)) => {
                crate::log::line(format_args!("{}", self.procs[index].not_ready()));
                EXIT_NOT_READY
            }
        }
    }
}

/// `0.1s`, `30s`: how herd writes a duration in its event lines.
fn seconds(duration: Duration) -> String {
    format!("{}s", (duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(seconds(Duration::from_millis(100)), "0.1s");
        assert_eq!(seconds(Duration::from_secs(30)), "30s");
        assert_eq!(seconds(Duration::from_micros(1_234_567)), "1.235s");
    }
}
