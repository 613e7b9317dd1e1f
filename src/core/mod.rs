//! The supervisor's decisions: a table of units and their instances, changed
//! only by `Table::step`, which turns one input at one time into effects.
//!
//! Nothing here touches a process, a clock or a file: the executor in
//! `supervisor.rs` performs the effects and reports what happened as the
//! next inputs, so every race (an exit during a stop, a ready check that
//! passes after its deadline) is a short unit test in `tests.rs`.

mod init;
mod live;
mod notify;
mod ready;
mod reload;
mod restart;
#[cfg(test)]
mod tests;
mod watchdog;

use crate::control::Command;
use crate::error::{Failure, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};
use crate::notify::Notice;
use crate::signals;
use crate::spec::{ProcessSpec, Ready, Restart};
use crate::sys::process::WaitStatus;
use crate::sys::Pid;
pub use init::InitOptions;
use notify::Notified;
use reload::ReloadJob;
use restart::{Backoff, StartLimit};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

/// Names one run of a unit for as long as the table knows it.
pub type InstanceId = u64;
/// Names a control connection waiting for its reply.
pub type ClientId = u64;

/// Exit code when a ready check timed out (as timeout(1) exits).
pub const EXIT_NOT_READY: u8 = 124;

/// How the table treats its units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `herd run -- CMD`: one unit whose signals are forwarded as received
    /// (to its pid, or with `group_signal` to its process group) and whose
    /// exact status is herd's.
    Transparent { group_signal: bool },
    /// A group: ordered start, restarts by policy, stop in reverse order (or
    /// all at once with `parallel_stop`).
    Group { parallel_stop: bool },
}

/// What applies to the whole table.
#[derive(Clone, Debug)]
pub struct Settings {
    pub policy: Policy,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub start_limit: usize,
    pub start_window: Duration,
    /// A `herd start` waits to hear that everything is ready: how long a
    /// unit without a ready check must stay up before it counts.
    pub settle: Option<Duration>,
    /// As PID 1: the signal and grace every process left in the namespace
    /// gets before herd exits (the kernel SIGKILLs them when PID 1 goes).
    pub sweep: Option<(i32, Duration)>,
    /// SIGUSR1 reopens herd's log instead of going to the processes.
    pub reopens_log: bool,
    /// How long an instance whose processes are gone may wait for the
    /// rest of its output, so that what comes next (the next unit's stop,
    /// a restart) comes after it. A leftover that keeps the pipe open only
    /// costs this much.
    pub output_linger: Duration,
    /// How many units a reload replaces at a time; 0: all at once.
    pub reload_batch: usize,
    /// SIGHUP reloads every unit (herd holds sockets for them) instead of
    /// going to the processes.
    pub hup_reloads: bool,
    /// `--stop-deadline`: how long the whole stop may take, from the stop
    /// request until the last process is gone; what is left then gets
    /// SIGKILL, whatever its grace.
    pub stop_deadline: Option<Duration>,
    /// A single command's tini and dumb-init options.
    pub init: InitOptions,
}

/// One unit as the table is built with it.
#[derive(Clone, Debug)]
pub struct UnitSetup {
    pub spec: ProcessSpec,
    /// Gets a pipe as stdin that `herd send` writes to.
    pub stdin_pipe: bool,
}

/// Whether the process group of an instance still has members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Alive,
    Empty,
    /// Its members are processes herd may not signal (EPERM): herd cannot
    /// stop them, so it does not wait for them.
    Unreachable,
}

/// What the executor reports.
#[derive(Debug)]
pub enum Input {
    /// Nothing happened; a deadline may have passed.
    Tick,
    Signal(i32),
    Spawned {
        instance: InstanceId,
        pid: Pid,
        /// It was made the terminal's foreground process group.
        has_terminal: bool,
        /// Its output goes through herd, which says when that output ends.
        has_output: bool,
    },
    SpawnFailed {
        instance: InstanceId,
        failure: Failure,
    },
    /// A child was reaped; `group` is the state of the process group it led.
    Exited {
        pid: Pid,
        status: WaitStatus,
        group: GroupState,
    },
    /// A child was stopped (by Ctrl-Z, or reading the terminal in background).
    Stopped {
        pid: Pid,
        signal: i32,
    },
    /// The watched process group of an instance whose main process is gone.
    Group {
        instance: InstanceId,
        state: GroupState,
    },
    /// An instance's ready check passed.
    Ready(InstanceId),
    /// An instance's `tcp:` check found its port held by another program.
    PortTaken {
        instance: InstanceId,
        port: u16,
    },
    /// Everything an instance wrote has been read (its pipe was closed).
    OutputEnded(InstanceId),
    Control {
        client: ClientId,
        command: Command,
    },
    /// `waitpid` says herd has no child left at all.
    NoChildren,
    /// A watched file changed: every unit reloads.
    Reload,
    /// A datagram on herd's notify socket from `pid`, of process group
    /// `pgid` when it could be looked up.
    Notify {
        pid: Pid,
        pgid: Option<Pid>,
        notice: Notice,
    },
    /// One result of an instance's liveness check: `Err` says why it failed.
    Live {
        instance: InstanceId,
        result: Result<(), String>,
    },
    /// The heartbeat counter in this unit's scoreboard slot moved.
    Heartbeat(usize),
}

/// Which processes a signal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The instance's main process, while it has not been reaped.
    Process(InstanceId),
    /// Every member of the instance's process group.
    Group(InstanceId),
}

/// The answer to a control request.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Ok(Vec<(String, String)>),
    Error(String),
    /// The stdin pipe of this instance, for `herd send`.
    Stdin(InstanceId),
}

/// What the executor must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Spawn {
        instance: InstanceId,
        unit: usize,
    },
    Signal {
        to: Target,
        signal: i32,
    },
    /// Every process herd may signal but itself (the PID 1 sweep).
    SignalAll(i32),
    /// One of herd's event lines, among the processes' output.
    Line(String),
    /// An event line that belongs after the last output of `instance`.
    LineAfterOutput {
        text: String,
        instance: InstanceId,
    },
    /// A decision, logged with `-v`.
    Note(String),
    /// A line on herd's stderr, `-v` or not (`--warn-zombies`).
    Warn(String),
    Reply {
        client: ClientId,
        answer: Answer,
    },
    StartProbe {
        instance: InstanceId,
        check: Ready,
        pgid: Pid,
    },
    StopProbe(InstanceId),
    /// Run the instance's liveness check every interval, from its grace on.
    StartLive {
        instance: InstanceId,
        live: crate::live::Liveness,
    },
    StopLive(InstanceId),
    /// Everything is up: a waiting `herd start` may return.
    ReportReady,
    /// The terminal goes back to herd's own process group.
    ReclaimTerminal,
    /// After `fg`: the terminal goes back to the instance, if herd has it.
    ResumeTerminal(InstanceId),
    /// herd stops itself, so that its shell sees the job stopped.
    StopSelf,
    ReopenLog,
    /// A reload began (for herd's own `NOTIFY_SOCKET`: `RELOADING=1`).
    ReloadStarted,
    /// A reload ended, replacing every unit it was for (`ok`) or not.
    ReloadFinished {
        ok: bool,
    },
    /// The instance is gone: what the executor keeps for it can go.
    Forget(InstanceId),
}

/// How the table ended.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub code: u8,
    /// Why it stopped, for a `herd start` that never got ready.
    pub reason: String,
    /// herd's last line on stderr, if the end needs one.
    pub message: Option<String>,
    /// A single command that could not be started: herd's own failure.
    pub failure: Option<Failure>,
}

/// Where a unit is in its life, between runs.
#[derive(Clone, Copy, Debug, PartialEq, Hash)]
pub enum UnitState {
    /// Not started yet: an earlier unit is not ready.
    Waiting,
    /// It has an instance.
    Active,
    /// Waiting to be started again.
    Backoff { until: Instant },
    /// Stopped by `herd stop NAME`: the group goes on, `herd start NAME`
    /// may start it again.
    Stopped,
    /// Will not run again.
    Done,
}

/// Where an instance is in its run.
#[derive(Clone, Copy, Debug, PartialEq, Hash)]
pub enum Phase {
    /// The executor is starting it.
    Spawning,
    /// Started; its ready check has not passed yet.
    Starting {
        deadline: Instant,
    },
    Ready,
    /// Its process group got the stop signal (or its main process exited);
    /// it is gone once the main process is reaped and the group is empty.
    /// `requested`: herd asked it to stop, rather than clearing up after a
    /// main process that exited on its own.
    Stopping {
        kill_at: Option<Instant>,
        requested: bool,
    },
}

/// A unit as `herd status` and the scoreboard show it: its serving
/// instance, or what is left of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row<'a> {
    pub name: &'a str,
    /// Its number among the instances of a process (`web.2`: 2), 0 when
    /// the process has one.
    pub instance: u32,
    pub state: &'static str,
    pub ready: bool,
    pub pid: Option<Pid>,
    pub pgid: Option<Pid>,
    /// Which run of the process this is, from 1 (0: never started).
    pub generation: u32,
    /// When the running process started.
    pub started_at: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<WaitStatus>,
    /// A reload's progress or its last failure.
    pub reload: Option<String>,
    /// What the process last said with `STATUS=`.
    pub status_text: Option<&'a str>,
    /// When its heartbeat last moved (or it said `WATCHDOG=1`).
    pub watchdog_at: Option<Instant>,
    /// Its last run was stopped for failing its liveness check.
    pub not_live: bool,
    /// Its `--watchdog` period.
    pub watchdog: Option<Duration>,
    /// Its last run was stopped for having no heartbeat for its period.
    pub no_heartbeat: bool,
    /// How it is stopped: what a herd that takes over after this one died
    /// uses to stop what it left.
    pub stop_signal: i32,
    pub grace: Duration,
}

impl Row<'_> {
    pub fn status(&self, now: Instant) -> crate::control::ProcessStatus {
        crate::control::ProcessStatus {
            name: self.name.to_string(),
            state: self.state,
            pid: self.pid.map_or("-".to_string(), |pid| pid.to_string()),
            generation: self.generation,
            uptime: self
                .started_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
            restarts: self.restarts,
            last_exit: self.last_exit.map(|status| {
                describe_end(
                    status,
                    EndCause::from_flags(
                        self.not_live,
                        self.watchdog.filter(|_| self.no_heartbeat),
                    ),
                )
            }),
            reload: self.reload.clone(),
            status_text: self.status_text.map(str::to_string),
            watchdog: self.watchdog_at.map(|at| now.saturating_duration_since(at)),
        }
    }
}

/// One run of a unit.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: InstanceId,
    /// Counts the runs of its unit, from 1.
    pub generation: u32,
    /// The main process, until it is reaped.
    pub pid: Option<Pid>,
    /// The process group, while it may have members.
    pub pgid: Option<Pid>,
    pub phase: Phase,
    pub started_at: Instant,
    pub has_terminal: bool,
    /// SIGKILL was sent: nothing is left to ask politely.
    killed: bool,
    /// It did not get ready in time (and is being stopped for it).
    timed_out: bool,
    /// Its output pipe may still hold output.
    output_open: bool,
    /// Once its main process is gone: how long it waits for its output.
    linger_until: Option<Instant>,
    /// A newer generation replaced it, or it was a reload's new generation
    /// that failed: its end is not the unit's.
    superseded: bool,
    notified: Notified,
    live: live::Live,
    /// Its watchdog ran out (and it is being stopped for it).
    no_heartbeat: bool,
}

impl Instance {
    fn new(id: InstanceId, generation: u32, now: Instant) -> Instance {
        Instance {
            id,
            generation,
            pid: None,
            pgid: None,
            phase: Phase::Spawning,
            started_at: now,
            has_terminal: false,
            killed: false,
            timed_out: false,
            output_open: false,
            linger_until: None,
            superseded: false,
            notified: Notified::default(),
            live: live::Live::default(),
            no_heartbeat: false,
        }
    }
}

/// What to run and everything about its runs.
#[derive(Debug)]
pub struct Unit {
    pub spec: ProcessSpec,
    pub state: UnitState,
    /// Its runs that are alive: the current one and, later, draining ones.
    pub instances: Vec<Instance>,
    pub restarts: u32,
    pub last_exit: Option<WaitStatus>,
    /// Its last run was stopped by its watchdog.
    ended_without_heartbeat: bool,
    pub stdin_pipe: bool,
    generations: u32,
    backoff: Backoff,
    limit: StartLimit,
    /// Stopped by `herd stop NAME`: becomes `Stopped`, not `Done`.
    manual_stop: bool,
    /// Stopped by `herd restart NAME`: starts again once gone.
    restart_after_stop: bool,
    /// Has been ready once: a later ready timeout is a failure like any
    /// other, not a failed start of the whole group.
    was_ready: bool,
    /// Why it could not be started, if it could not.
    spawn_failure: Option<Failure>,
    /// When its latest run started: a run that stayed up long resets the
    /// backoff.
    last_started: Option<Instant>,
    /// A reload's new generation, while it is not ready yet.
    pending: Option<InstanceId>,
    /// Why its last reload failed, until one succeeds.
    reload_failure: Option<String>,
    /// Its last run was stopped for failing its liveness check: a failure,
    /// however it exited.
    ended_not_live: bool,
}

/// Why the table is stopping.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cause {
    Request,
    Exited(usize),
    GaveUp(usize),
    NotReady(usize),
}

/// The PID 1 sweep after the last unit is done.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sweep {
    NotYet,
    Running { kill_at: Option<Instant> },
    Done,
}

pub struct Table {
    settings: Settings,
    pub units: Vec<Unit>,
    /// Units before this index have been started.
    next_to_start: usize,
    stopping: bool,
    /// A second stop request: SIGKILL for everything left.
    kill_everything: bool,
    cause: Option<Cause>,
    /// A waiting `herd start` has been told.
    reported: bool,
    next_instance: InstanceId,
    sweep: Sweep,
    reload: Option<ReloadJob>,
    /// A single command was asked to stop: no reload may start.
    stop_forwarded: bool,
    /// When a datagram from a stranger was last noted.
    stranger_noted: Option<Instant>,
    /// When the stop deadline runs out, once the whole stop has begun.
    stop_by: Option<Instant>,
    /// The stop deadline ran out and everything left got SIGKILL.
    stop_deadline_passed: bool,
}

/// `now + wait`, or a time so far off that it never comes when that does
/// not fit the clock: no deadline arithmetic may panic.
pub fn deadline(now: Instant, wait: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(wait)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// `0.1s`, `30s`: how herd writes a duration in its event lines.
pub fn seconds(duration: Duration) -> String {
    format!("{}s", (duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// `exit 3`, `killed by SIGTERM`: a status in notes and `herd status`.
pub fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(code) => format!("exit {code}"),
        WaitStatus::Signaled(signal) => format!("killed by {}", signals::name(signal)),
        WaitStatus::Stopped(signal) => format!("stopped by {}", signals::name(signal)),
    }
}

/// Why a process's last run ended, when herd ended it for a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// It ended by itself, or was stopped as asked.
    Own,
    /// It failed its liveness check.
    NotLive,
    /// Its heartbeat stayed still for its `--watchdog` period.
    NoHeartbeat(Duration),
}

impl EndCause {
    /// From the two flags a row (or a scoreboard slot) keeps; a run stopped
    /// for both reasons is told by its heartbeat, which ran out first.
    pub fn from_flags(not_live: bool, no_heartbeat: Option<Duration>) -> EndCause {
        match (no_heartbeat, not_live) {
            (Some(period), _) => EndCause::NoHeartbeat(period),
            (None, true) => EndCause::NotLive,
            (None, false) => EndCause::Own,
        }
    }
}

/// `describe`, and why herd stopped the process: `exit 0 (not live)`,
/// `no heartbeat for 5s: killed by SIGTERM`.
pub fn describe_end(status: WaitStatus, cause: EndCause) -> String {
    match cause {
        EndCause::Own => describe(status),
        EndCause::NotLive => format!("{} (not live)", describe(status)),
        EndCause::NoHeartbeat(period) => {
            format!("no heartbeat for {}: {}", seconds(period), describe(status))
        }
    }
}

/// The exit code that tells what happened to a process: its own code, or
/// 128+N for death by signal N (as shells report it).
pub fn exit_code(status: WaitStatus) -> u8 {
    match status {
        WaitStatus::Exited(code) => u8::try_from(code & 0xff).unwrap_or(u8::MAX),
        WaitStatus::Signaled(signal) | WaitStatus::Stopped(signal) => {
            u8::try_from(128 + (signal & 0x7f)).unwrap_or(u8::MAX)
        }
    }
}

impl Table {
    pub fn new(settings: Settings, units: Vec<UnitSetup>) -> Table {
        let units = units
            .into_iter()
            .map(|setup| Unit {
                spec: setup.spec,
                state: UnitState::Waiting,
                instances: Vec::new(),
                restarts: 0,
                last_exit: None,
                ended_without_heartbeat: false,
                stdin_pipe: setup.stdin_pipe,
                generations: 0,
                backoff: Backoff::new(settings.backoff_min, settings.backoff_max),
                limit: StartLimit::new(settings.start_limit, settings.start_window),
                manual_stop: false,
                restart_after_stop: false,
                was_ready: false,
                spawn_failure: None,
                last_started: None,
                pending: None,
                reload_failure: None,
                ended_not_live: false,
            })
            .collect();
        Table {
            settings,
            units,
            next_to_start: 0,
            stopping: false,
            kill_everything: false,
            cause: None,
            reported: false,
            next_instance: 1,
            sweep: Sweep::NotYet,
            reload: None,
            stop_forwarded: false,
            stranger_noted: None,
            stop_by: None,
            stop_deadline_passed: false,
        }
    }

    /// Takes one input at `now`; returns what must be done, in order.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Tick => {}
            Input::Signal(signal) => self.on_signal(signal, now, &mut out),
            Input::Spawned {
                instance,
                pid,
                has_terminal,
                has_output,
            } => self.on_spawned(instance, pid, has_terminal, has_output, now, &mut out),
            Input::SpawnFailed { instance, failure } => {
                self.on_spawn_failed(instance, failure, &mut out)
            }
            Input::Exited { pid, status, group } => {
                self.on_exited(pid, status, group, now, &mut out)
            }
            Input::Stopped { pid, signal } => self.on_stopped(pid, signal, &mut out),
            Input::Group { instance, state } => self.on_group(instance, state, now, &mut out),
            Input::Ready(instance) => self.on_ready(instance, &mut out),
            Input::PortTaken { instance, port } => {
                if let Some((unit, _)) = self.find(instance) {
                    let name = &self.units[unit].spec.name;
                    out.push(Effect::Line(format!(
                        "{name}: port {port} is taken by another program"
                    )));
                }
            }
            Input::OutputEnded(id) => {
                if let Some((unit, index)) = self.find(id) {
                    self.units[unit].instances[index].output_open = false;
                    self.maybe_gone(unit, now, &mut out);
                }
            }
            Input::Control { client, command } => {
                if let Some(answer) = self.on_control(client, command, now, &mut out) {
                    out.push(Effect::Reply { client, answer });
                }
            }
            Input::Reload => self.on_reload(None, None, now, &mut out),
            Input::NoChildren => {
                if let Sweep::Running { .. } = self.sweep {
                    self.sweep = Sweep::Done;
                }
            }
            Input::Notify { pid, pgid, notice } => self.on_notice(pid, pgid, notice, now, &mut out),
            Input::Live { instance, result } => self.on_live(instance, result, now, &mut out),
            Input::Heartbeat(unit) => self.on_heartbeat(unit, now),
        }
        self.advance(now, &mut out);
        self.advance_live(now, &mut out);
        out
    }

    /// The next time something is due when no input comes.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let mut earliest = |at: Instant| due = Some(due.map_or(at, |d| d.min(at)));
        for unit in &self.units {
            if let UnitState::Backoff { until } = unit.state {
                earliest(until);
            }
            for instance in &unit.instances {
                match instance.phase {
                    Phase::Starting { deadline } => earliest(deadline),
                    Phase::Stopping {
                        kill_at: Some(at), ..
                    } => earliest(at),
                    _ => {}
                }
                if let Some(at) = instance.linger_until.filter(|_| instance.output_open) {
                    earliest(at);
                }
                if let Some(at) = watchdog::heartbeat_due(&unit.spec, instance) {
                    earliest(at);
                }
            }
        }
        if let Some(at) = self.settled_at() {
            earliest(at);
        }
        if let Sweep::Running { kill_at: Some(at) } = self.sweep {
            earliest(at);
        }
        if let Some(at) = self.stop_by.filter(|_| !self.stop_deadline_passed) {
            earliest(at);
        }
        due
    }

    /// Process groups whose main process is gone but which may still have
    /// members: the executor watches them (their members send no SIGCHLD).
    pub fn groups_to_watch(&self) -> impl Iterator<Item = (InstanceId, Pid)> + '_ {
        self.units
            .iter()
            .flat_map(|unit| &unit.instances)
            .filter(|instance| instance.pid.is_none())
            .filter_map(|instance| Some((instance.id, instance.pgid?)))
    }

    /// Whether the table waits for herd's last children to go (PID 1).
    pub fn is_sweeping(&self) -> bool {
        matches!(self.sweep, Sweep::Running { .. })
    }

    #[cfg(test)]
    pub fn instance(&self, id: InstanceId) -> Option<(&Unit, &Instance)> {
        let (unit, index) = self.find(id)?;
        let unit = &self.units[unit];
        Some((unit, &unit.instances[index]))
    }

    /// How it ended, once every unit is gone and the sweep is over.
    pub fn outcome(&self) -> Option<Outcome> {
        if self.units.iter().any(|unit| unit.state != UnitState::Done)
            || matches!(self.sweep, Sweep::NotYet | Sweep::Running { .. })
                && self.settings.sweep.is_some()
        {
            return None;
        }
        if let Policy::Transparent { .. } = self.settings.policy {
            let unit = self.units.first()?;
            let init = &self.settings.init;
            if let Some(failure) = &unit.spawn_failure {
                // Not found or not executable is the child's status, as
                // tini's child reports it; herd's own failures are not.
                let code = match failure.exit_code {
                    code @ (EXIT_CANNOT_EXECUTE | EXIT_NOT_FOUND) => init.exit_code(code),
                    code => code,
                };
                return Some(Outcome {
                    code,
                    reason: failure.to_string(),
                    message: None,
                    failure: Some(failure.clone().with_exit_code(code)),
                });
            }
            let status = unit.last_exit.unwrap_or(WaitStatus::Exited(0));
            return Some(Outcome {
                code: init.exit_code(exit_code(status)),
                reason: format!("{} ended ({})", unit.spec.name, describe(status)),
                message: None,
                failure: None,
            });
        }
        let status_of = |index: usize| self.units[index].last_exit.map_or(1, exit_code);
        let (code, message) = match self.cause {
            None => (0, None),
            Some(Cause::Request) => (
                self.units
                    .iter()
                    .find(|unit| !unit.ended_cleanly())
                    .and_then(|unit| unit.last_exit)
                    .map_or(0, exit_code),
                None,
            ),
            Some(Cause::Exited(index)) => match &self.units[index].spawn_failure {
                Some(failure) => (
                    failure.exit_code,
                    Some(self.units[index].could_not_start(failure)),
                ),
                None => (status_of(index), None),
            },
            Some(Cause::GaveUp(index)) => (status_of(index), Some(self.units[index].gave_up())),
            Some(Cause::NotReady(index)) => (EXIT_NOT_READY, Some(self.units[index].not_ready())),
        };
        Some(Outcome {
            code,
            reason: self.stop_reason(),
            message,
            failure: None,
        })
    }

    /// Why the table stopped, in words.
    fn stop_reason(&self) -> String {
        match self.cause {
            None | Some(Cause::Request) => "stopped on request".to_string(),
            Some(Cause::Exited(index)) => {
                let unit = &self.units[index];
                match (&unit.spawn_failure, unit.last_exit) {
                    (Some(failure), _) => unit.could_not_start(failure),
                    (None, Some(status)) => {
                        format!("{} ended ({})", unit.spec.name, describe(status))
                    }
                    (None, None) => format!("{} ended", unit.spec.name),
                }
            }
            Some(Cause::GaveUp(index)) => self.units[index].gave_up(),
            Some(Cause::NotReady(index)) => self.units[index].not_ready(),
        }
    }

    /// Each unit as `herd status` and the scoreboard show it, in order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.units.iter().map(|unit| self.row(unit))
    }

    fn row<'a>(&self, unit: &'a Unit) -> Row<'a> {
        let current = unit.serving_index().and_then(|i| unit.instances.get(i));
        let state = match (unit.state, current.map(|i| i.phase)) {
            (UnitState::Waiting, _) => "waiting",
            (UnitState::Backoff { .. }, _) => "backoff",
            (UnitState::Stopped, _) => "stopped",
            (UnitState::Done, _) => "exited",
            (UnitState::Active, Some(Phase::Spawning | Phase::Starting { .. })) => "starting",
            // What the process itself said it is doing.
            (UnitState::Active, Some(Phase::Ready))
                if current.is_some_and(|i| i.notified.stopping) =>
            {
                "stopping"
            }
            (UnitState::Active, Some(Phase::Ready))
                if current.is_some_and(|i| i.notified.reloading) =>
            {
                "reloading"
            }
            (UnitState::Active, Some(Phase::Ready)) => "running",
            // A single command asked to stop runs until it exits.
            (UnitState::Active, Some(_))
                if !self.is_group() && current.is_some_and(|i| i.pid.is_some()) =>
            {
                "running"
            }
            (UnitState::Active, _) => "stopping",
        };
        let pid = current.and_then(|i| i.pid);
        Row {
            name: &unit.spec.name,
            instance: (unit.spec.instances > 1)
                .then(|| unit.spec.name.rsplit_once('.'))
                .flatten()
                .and_then(|(_, number)| number.parse().ok())
                .unwrap_or(0),
            state,
            ready: current.is_some_and(|i| i.phase == Phase::Ready),
            pid,
            pgid: current.and_then(|i| i.pgid),
            generation: current.map_or(unit.generations, |i| i.generation),
            started_at: current.filter(|_| pid.is_some()).map(|i| i.started_at),
            restarts: unit.restarts,
            last_exit: unit.last_exit,
            reload: unit.reload_note(),
            status_text: current.and_then(|i| i.notified.status.as_deref()),
            watchdog_at: current.and_then(|i| i.notified.watchdog_at),
            not_live: unit.ended_not_live,
            watchdog: unit.spec.watchdog,
            no_heartbeat: unit.ended_without_heartbeat,
            stop_signal: unit.spec.stop_signal,
            grace: unit.spec.grace,
        }
    }

    /// The rows of `herd status`.
    pub fn status(&self, now: Instant) -> Vec<crate::control::ProcessStatus> {
        self.rows().map(|row| row.status(now)).collect()
    }

    fn is_group(&self) -> bool {
        matches!(self.settings.policy, Policy::Group { .. })
    }

    fn find(&self, id: InstanceId) -> Option<(usize, usize)> {
        self.units.iter().enumerate().find_map(|(unit, u)| {
            let index = u.instances.iter().position(|i| i.id == id)?;
            Some((unit, index))
        })
    }

    fn find_pid(&self, pid: Pid) -> Option<(usize, usize)> {
        self.units.iter().enumerate().find_map(|(unit, u)| {
            let index = u.instances.iter().position(|i| i.pid == Some(pid))?;
            Some((unit, index))
        })
    }

    /// Everything that state or time changes have made due, until nothing
    /// more changes.
    fn advance(&mut self, now: Instant, out: &mut Vec<Effect>) {
        loop {
            let before = self.fingerprint();
            self.advance_once(now, out);
            if self.fingerprint() == before {
                break;
            }
        }
        self.maybe_report(now, out);
        self.maybe_sweep(now, out);
    }

    /// What `advance` compares to know whether a round changed anything:
    /// a hash of every unit's state and its instances' phases, rather than
    /// a copy of them, so that a step allocates nothing for it. (Two
    /// different tables hashing alike would end a round early: one in 2^64.)
    fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        for unit in &self.units {
            unit.state.hash(&mut hasher);
            unit.instances.len().hash(&mut hasher);
            for instance in &unit.instances {
                instance.phase.hash(&mut hasher);
            }
        }
        hasher.finish()
    }

    fn advance_once(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.stop_by.is_some_and(|at| at <= now) && !self.stop_deadline_passed {
            self.stop_deadline_ran_out(out);
        }
        for unit in 0..self.units.len() {
            for index in 0..self.units[unit].instances.len() {
                let instance = &self.units[unit].instances[index];
                match instance.phase {
                    Phase::Starting { deadline } if deadline <= now => {
                        self.ready_timed_out(unit, index, now, out)
                    }
                    Phase::Stopping {
                        kill_at: Some(at), ..
                    } if at <= now => self.kill(unit, index, out),
                    _ => {}
                }
                self.check_heartbeat(unit, index, now, out);
            }
            let lingered = self.units[unit].instances.iter().any(|i| {
                i.pid.is_none() && i.pgid.is_none() && i.linger_until.is_some_and(|at| at <= now)
            });
            if lingered {
                self.maybe_gone(unit, now, out);
            }
            if let UnitState::Backoff { until } = self.units[unit].state {
                if until <= now && !self.stopping {
                    self.start(unit, now, out);
                }
            }
        }
        if self.stopping {
            self.advance_stop(now, out);
        } else {
            self.advance_start(now, out);
            self.advance_reload(now, out);
        }
    }

    /// Starts the next units in order; one that is not ready yet holds
    /// back the ones after it.
    fn advance_start(&mut self, now: Instant, out: &mut Vec<Effect>) {
        while let Some(unit) = self.units.get(self.next_to_start) {
            match unit.state {
                UnitState::Waiting => self.start(self.next_to_start, now, out),
                UnitState::Done | UnitState::Stopped => self.next_to_start += 1,
                UnitState::Active
                    if unit
                        .instances
                        .last()
                        .is_some_and(|i| i.phase == Phase::Ready) =>
                {
                    self.next_to_start += 1
                }
                _ => return,
            }
        }
    }

    /// Stops units in reverse start order, each gone before the one before
    /// it is asked (or all at once with `parallel_stop`). Pending restarts
    /// and units not started yet are cancelled.
    fn advance_stop(&mut self, now: Instant, out: &mut Vec<Effect>) {
        self.start_stop_deadline(now);
        let parallel = match self.settings.policy {
            Policy::Group { parallel_stop } => parallel_stop,
            Policy::Transparent { .. } => true,
        };
        for unit in (0..self.units.len()).rev() {
            match self.units[unit].state {
                UnitState::Waiting | UnitState::Backoff { .. } | UnitState::Stopped => {
                    self.units[unit].state = UnitState::Done
                }
                UnitState::Done => {}
                UnitState::Active => {
                    let mut asked = false;
                    for index in 0..self.units[unit].instances.len() {
                        match self.units[unit].instances[index].phase {
                            Phase::Stopping { .. } => asked = true,
                            Phase::Spawning => asked = true,
                            _ => {
                                self.begin_stop(unit, index, true, now, out);
                                asked = true;
                            }
                        }
                    }
                    if asked && !parallel {
                        return;
                    }
                }
            }
        }
    }

    /// Tells a waiting `herd start` once every unit is ready, and those
    /// without a ready check have been up for the settle time.
    fn maybe_report(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.settled_at().is_some_and(|at| at <= now) {
            self.reported = true;
            out.push(Effect::ReportReady);
        }
    }

    /// When a waiting `herd start` may be told; `None`: not while some unit
    /// is not up, or when nobody waits.
    fn settled_at(&self) -> Option<Instant> {
        let settle = self.settings.settle?;
        if self.reported || self.stopping || self.next_to_start < self.units.len() {
            return None;
        }
        let mut settled: Option<Instant> = None;
        for unit in &self.units {
            match (unit.state, unit.instances.last()) {
                (UnitState::Active, Some(instance)) if instance.phase == Phase::Ready => {
                    let up = if unit.spec.ready == Ready::Started {
                        deadline(instance.started_at, settle)
                    } else {
                        instance.started_at
                    };
                    settled = Some(settled.map_or(up, |s| s.max(up)));
                }
                (UnitState::Done | UnitState::Stopped, _) => {}
                _ => return None,
            }
        }
        settled
    }

    /// As PID 1, once every unit is done: the rest of the namespace gets
    /// the stop signal, then SIGKILL after the grace.
    fn maybe_sweep(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let Some((signal, grace)) = self.settings.sweep else {
            return;
        };
        if self.units.iter().any(|unit| unit.state != UnitState::Done) {
            return;
        }
        match self.sweep {
            Sweep::NotYet => {
                out.push(Effect::Note(format!(
                    "sending {} to every process left in the namespace",
                    signals::name(signal)
                )));
                out.push(Effect::SignalAll(signal));
                let kill_at = deadline(now, grace);
                self.sweep = Sweep::Running {
                    kill_at: Some(self.stop_by.map_or(kill_at, |by| by.min(kill_at))),
                };
            }
            Sweep::Running { kill_at: Some(at) } if at <= now => {
                out.push(Effect::Note(
                    "grace ran out: sending SIGKILL to every process left".to_string(),
                ));
                out.push(Effect::SignalAll(libc::SIGKILL));
                self.sweep = Sweep::Running { kill_at: None };
            }
            _ => {}
        }
    }

    /// Creates an instance of `unit` and asks the executor to spawn it.
    fn start(&mut self, unit: usize, now: Instant, out: &mut Vec<Effect>) {
        let id = self.next_instance;
        self.next_instance += 1;
        let u = &mut self.units[unit];
        u.generations = u.generations.saturating_add(1);
        u.state = UnitState::Active;
        // Most units have one instance at a time: no room for four.
        u.instances.reserve_exact(1);
        u.instances.push(Instance::new(id, u.generations, now));
        out.push(Effect::Spawn { instance: id, unit });
    }

    fn on_spawned(
        &mut self,
        id: InstanceId,
        pid: Pid,
        has_terminal: bool,
        has_output: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some((unit, index)) = self.find(id) else {
            return;
        };
        let group = self.is_group();
        let u = &mut self.units[unit];
        let instance = &mut u.instances[index];
        instance.pid = Some(pid);
        instance.pgid = Some(pid);
        instance.started_at = now;
        instance.has_terminal = has_terminal;
        instance.output_open = has_output;
        u.last_started = Some(now);
        instance.phase = match u.spec.ready {
            Ready::Started => Phase::Ready,
            _ => Phase::Starting {
                deadline: deadline(now, u.spec.ready_timeout),
            },
        };
        if group {
            out.push(Effect::Line(format!("{} started (pid {pid})", u.spec.name)));
        } else {
            out.push(Effect::Note(format!("spawned pid {pid}: {}", u.spec.name)));
        }
        match &u.spec.ready {
            Ready::Started => u.was_ready = true,
            // Its READY=1 comes through the notify socket.
            Ready::Notify => {}
            check => out.push(Effect::StartProbe {
                instance: id,
                check: check.clone(),
                pgid: pid,
            }),
        }
    }

    /// A unit that could not be spawned counts as failed at once: a group
    /// stops without starting the units after it.
    fn on_spawn_failed(&mut self, id: InstanceId, failure: Failure, out: &mut Vec<Effect>) {
        let Some((unit, index)) = self.find(id) else {
            return;
        };
        if self.units[unit].pending == Some(id) {
            self.pending_failed(
                unit,
                index,
                &format!("could not be started: {failure}"),
                out,
            );
            self.units[unit].instances.remove(index);
            out.push(Effect::Forget(id));
            return;
        }
        let group = self.is_group();
        let u = &mut self.units[unit];
        u.instances.remove(index);
        u.state = UnitState::Done;
        u.last_exit = Some(WaitStatus::Exited(i32::from(failure.exit_code)));
        if group {
            out.push(Effect::Line(u.could_not_start(&failure)));
        }
        u.spawn_failure = Some(failure);
        out.push(Effect::Forget(id));
        self.stop_all(Cause::Exited(unit), out);
    }

    fn on_ready(&mut self, id: InstanceId, out: &mut Vec<Effect>) {
        let Some((unit, index)) = self.find(id) else {
            return;
        };
        let u = &mut self.units[unit];
        let instance = &mut u.instances[index];
        if let Phase::Starting { .. } = instance.phase {
            instance.phase = Phase::Ready;
            u.was_ready = true;
            out.push(Effect::StopProbe(id));
            out.push(Effect::Line(format!("{} is ready", u.spec.name)));
        }
    }

    /// A first start that does not get ready in time fails the group; a
    /// later one is a failure of the unit, which its restart policy handles.
    fn ready_timed_out(&mut self, unit: usize, index: usize, now: Instant, out: &mut Vec<Effect>) {
        let u = &mut self.units[unit];
        let id = u.instances[index].id;
        u.instances[index].timed_out = true;
        out.push(Effect::StopProbe(id));
        if u.pending == Some(id) {
            let why = format!("was not ready after {}", seconds(u.spec.ready_timeout));
            self.pending_failed(unit, index, &why, out);
            self.begin_stop(unit, index, true, now, out);
            return;
        }
        out.push(Effect::Line(u.not_ready()));
        let first_start = !u.was_ready;
        self.begin_stop(unit, index, true, now, out);
        if first_start {
            self.stop_all(Cause::NotReady(unit), out);
        }
    }

    fn on_exited(
        &mut self,
        pid: Pid,
        status: WaitStatus,
        group: GroupState,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some((unit, index)) = self.find_pid(pid) else {
            let text = format!("reaped adopted pid {pid} ({})", describe(status));
            out.push(if self.settings.init.warn_zombies {
                Effect::Warn(text)
            } else {
                Effect::Note(text)
            });
            return;
        };
        let is_group = self.is_group();
        let on_trial = self.units[unit].pending;
        let instance = &self.units[unit].instances[index];
        if on_trial == Some(instance.id) && instance.phase != Phase::Ready {
            let why = format!("ended before it was ready ({})", describe(status));
            self.pending_failed(unit, index, &why, out);
        }
        let u = &mut self.units[unit];
        let instance = &mut u.instances[index];
        // A replaced generation's end is not the unit's.
        let name = if instance.superseded {
            format!("{} generation {}", u.spec.name, instance.generation)
        } else {
            u.last_exit = Some(status);
            u.ended_not_live = instance.live.failed;
            u.ended_without_heartbeat = instance.no_heartbeat;
            u.spec.name.clone()
        };
        instance.pid = None;
        instance.linger_until = Some(deadline(now, self.settings.output_linger));
        if std::mem::take(&mut instance.has_terminal) && is_group {
            // Back to herd, so that Ctrl-C reaches herd again and a restart
            // can hand it over once more.
            out.push(Effect::ReclaimTerminal);
        }
        let id = instance.id;
        if is_group {
            let text = match status {
                WaitStatus::Exited(code) => format!("{name} exited with code {code}"),
                WaitStatus::Signaled(signal) | WaitStatus::Stopped(signal) => {
                    format!("{name} was killed by {}", signals::name(signal))
                }
            };
            out.push(Effect::LineAfterOutput { text, instance: id });
        } else {
            out.push(Effect::Note(format!(
                "reaped pid {pid} ({})",
                describe(status)
            )));
        }
        if let Phase::Starting { .. } = instance.phase {
            out.push(Effect::StopProbe(id));
        }
        let (phase, killed) = (instance.phase, instance.killed);
        let group_alive = match group {
            GroupState::Alive => true,
            GroupState::Empty => false,
            GroupState::Unreachable => {
                out.push(unreachable_line(is_group, &name, pid));
                false
            }
        };
        if !group_alive {
            instance.pgid = None;
        }
        match phase {
            Phase::Stopping { .. } if is_group || killed || !group_alive => {}
            Phase::Stopping { .. } => {
                // A single command that was asked to stop and has exited:
                // what it left in its group is asked too.
                out.push(Effect::Note(format!(
                    "sending {} to what is left of process group {pid}",
                    signals::name(u.spec.stop_signal)
                )));
                out.push(Effect::Signal {
                    to: Target::Group(id),
                    signal: u.spec.stop_signal,
                });
            }
            // What the main process left in its group goes with it, so
            // that an orphan cannot keep a port or a pipe.
            _ => self.begin_stop(unit, index, false, now, out),
        }
        self.maybe_gone(unit, now, out);
    }

    fn on_group(&mut self, id: InstanceId, state: GroupState, now: Instant, out: &mut Vec<Effect>) {
        let Some((unit, index)) = self.find(id) else {
            return;
        };
        let is_group = self.is_group();
        let u = &mut self.units[unit];
        let instance = &mut u.instances[index];
        match state {
            GroupState::Alive => return,
            GroupState::Empty => {}
            GroupState::Unreachable => {
                let pgid = instance.pgid.unwrap_or_default();
                out.push(unreachable_line(is_group, &u.spec.name, pgid));
            }
        }
        instance.pgid = None;
        self.maybe_gone(unit, now, out);
    }

    /// Removes the instances of `unit` that are gone (main process reaped,
    /// group empty) and decides what comes next for the unit.
    fn maybe_gone(&mut self, unit: usize, now: Instant, out: &mut Vec<Effect>) {
        let u = &mut self.units[unit];
        let mut requested = None;
        let mut timed_out = false;
        u.instances.retain(|instance| {
            let output_done =
                !instance.output_open || instance.linger_until.is_some_and(|at| at <= now);
            let gone = instance.pid.is_none() && instance.pgid.is_none() && output_done;
            if gone {
                out.push(Effect::Forget(instance.id));
                if let Phase::Stopping { requested: r, .. } = instance.phase {
                    // A replaced generation was asked to stop, but when it
                    // is the last to go the unit has nothing serving left:
                    // a failure, for the restart policy to judge.
                    let r = r && !instance.superseded;
                    requested = Some(requested.unwrap_or(false) || r);
                }
                timed_out |= (instance.timed_out || instance.live.failed || instance.no_heartbeat)
                    && !instance.superseded;
            }
            !gone
        });
        if let Some(requested) = requested {
            if u.instances.is_empty() {
                self.settle(unit, requested && !timed_out, now, out);
            }
        }
    }

    /// The unit's last instance is gone: decide what comes next.
    fn settle(&mut self, unit: usize, requested: bool, now: Instant, out: &mut Vec<Effect>) {
        let stopping = self.stopping;
        let is_group = self.is_group();
        let u = &mut self.units[unit];
        u.state = UnitState::Done;
        if stopping || !is_group {
            return;
        }
        if std::mem::take(&mut u.restart_after_stop) {
            u.restarts = u.restarts.saturating_add(1);
            self.start(unit, now, out);
            return;
        }
        if std::mem::take(&mut u.manual_stop) {
            u.state = UnitState::Stopped;
            return;
        }
        if requested {
            return;
        }
        let failed = u.last_exit != Some(WaitStatus::Exited(0))
            || u.ended_not_live
            || u.ended_without_heartbeat;
        let restart = match u.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => failed,
            Restart::Never => false,
        };
        if restart {
            if !u.limit.allow(now) {
                out.push(Effect::Line(u.gave_up()));
                self.stop_all(Cause::GaveUp(unit), out);
                return;
            }
            u.restarts = u.restarts.saturating_add(1);
            let uptime = u
                .last_started
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            let delay = u.backoff.next_delay(uptime);
            u.state = UnitState::Backoff {
                until: deadline(now, delay),
            };
            out.push(Effect::Line(format!(
                "{} restarting in {}",
                u.spec.name,
                seconds(delay)
            )));
        } else if failed || !u.spec.oneshot {
            self.stop_all(Cause::Exited(unit), out);
        }
    }

    /// Sends the stop signal to an instance's whole group and starts its
    /// grace. `requested`: herd asks it to stop (rather than clearing up
    /// after a main process that exited).
    fn begin_stop(
        &mut self,
        unit: usize,
        index: usize,
        requested: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let kill_everything = self.kill_everything;
        let is_group = self.is_group();
        let u = &mut self.units[unit];
        let signal = u.spec.stop_signal;
        let instance = &mut u.instances[index];
        if let Phase::Starting { .. } = instance.phase {
            if !instance.timed_out {
                out.push(Effect::StopProbe(instance.id));
            }
        }
        instance.phase = Phase::Stopping {
            kill_at: None,
            requested,
        };
        let Some(pgid) = instance.pgid else {
            return;
        };
        if kill_everything {
            self.kill(unit, index, out);
            return;
        }
        let id = instance.id;
        if is_group {
            if requested {
                out.push(Effect::Line(format!(
                    "stopping {} ({})",
                    u.spec.name,
                    signals::name(signal)
                )));
            }
        } else {
            out.push(Effect::Note(format!(
                "sending {} to what is left of process group {pgid}",
                signals::name(signal)
            )));
        }
        out.push(Effect::Signal {
            to: Target::Group(id),
            signal,
        });
        self.start_grace(unit, index, now, out);
    }

    fn start_grace(&mut self, unit: usize, index: usize, now: Instant, out: &mut Vec<Effect>) {
        let is_group = self.is_group();
        let u = &mut self.units[unit];
        let grace = u.spec.grace;
        let instance = &mut u.instances[index];
        if instance.killed {
            return;
        }
        match &mut instance.phase {
            Phase::Stopping { kill_at, .. } if kill_at.is_none() => {
                *kill_at = Some(deadline(now, grace));
            }
            Phase::Stopping { .. } => return,
            phase => {
                // A single command asked to stop keeps its phase for
                // `status`, but gets its deadline all the same.
                *phase = Phase::Stopping {
                    kill_at: Some(deadline(now, grace)),
                    requested: true,
                };
            }
        }
        if !is_group {
            if let Some(pgid) = instance.pgid {
                out.push(Effect::Note(format!(
                    "process group {pgid} gets SIGKILL in {grace:?} if still alive"
                )));
            }
        }
    }

    fn kill(&mut self, unit: usize, index: usize, out: &mut Vec<Effect>) {
        let kill_everything = self.kill_everything;
        let is_group = self.is_group();
        let u = &mut self.units[unit];
        let grace = u.spec.grace;
        let instance = &mut u.instances[index];
        if let Phase::Stopping { kill_at, .. } = &mut instance.phase {
            *kill_at = None;
        }
        let Some(pgid) = instance.pgid else { return };
        instance.killed = true;
        if is_group {
            if !kill_everything {
                out.push(Effect::Line(format!(
                    "{} still running after {} grace: sending SIGKILL",
                    u.spec.name,
                    seconds(grace)
                )));
            }
        } else {
            out.push(Effect::Note(format!(
                "grace of {grace:?} ran out: sending SIGKILL to process group {pgid}"
            )));
        }
        out.push(Effect::Signal {
            to: Target::Group(instance.id),
            signal: libc::SIGKILL,
        });
    }

    fn stop_all(&mut self, cause: Cause, out: &mut Vec<Effect>) {
        if !self.stopping {
            self.stopping = true;
            self.cause = Some(cause);
            self.cancel_reload("herd is stopping", out);
        }
    }

    /// The whole stop has begun: the stop deadline, if there is one, runs
    /// from now (a later stop request does not move it).
    fn start_stop_deadline(&mut self, now: Instant) {
        if self.stop_by.is_none() {
            self.stop_by = self.settings.stop_deadline.map(|wait| deadline(now, wait));
        }
    }

    /// The stop deadline has run out: every process left gets SIGKILL now,
    /// whatever is left of its grace and whether or not its turn to stop
    /// has come, each said in a line.
    fn stop_deadline_ran_out(&mut self, out: &mut Vec<Effect>) {
        self.stop_deadline_passed = true;
        // Anything that would still be asked to stop is killed at once.
        self.kill_everything = true;
        let is_group = self.is_group();
        let budget = seconds(self.settings.stop_deadline.unwrap_or_default());
        // In stop order: the last started first.
        for unit in self.units.iter_mut().rev() {
            for instance in &mut unit.instances {
                let Some(pgid) = instance.pgid else { continue };
                if instance.killed {
                    continue;
                }
                instance.killed = true;
                match &mut instance.phase {
                    Phase::Stopping { kill_at, .. } => *kill_at = None,
                    phase => {
                        if let Phase::Starting { .. } = phase {
                            if !instance.timed_out {
                                out.push(Effect::StopProbe(instance.id));
                            }
                        }
                        *phase = Phase::Stopping {
                            kill_at: None,
                            requested: true,
                        };
                    }
                }
                let name = &unit.spec.name;
                out.push(if is_group {
                    Effect::Line(format!(
                        "{name} still running at the stop deadline ({budget}): sending SIGKILL"
                    ))
                } else {
                    Effect::Note(format!(
                        "stop deadline ({budget}) ran out: sending SIGKILL to process group {pgid}"
                    ))
                });
                out.push(Effect::Signal {
                    to: Target::Group(instance.id),
                    signal: libc::SIGKILL,
                });
            }
        }
    }

    fn on_signal(&mut self, signal: i32, now: Instant, out: &mut Vec<Effect>) {
        if signal == libc::SIGUSR1 && self.settings.reopens_log {
            out.push(Effect::ReopenLog);
            return;
        }
        if signal == libc::SIGHUP && self.settings.hup_reloads {
            self.on_reload(None, None, now, out);
            return;
        }
        match self.settings.policy {
            Policy::Transparent { group_signal } => {
                self.forward_received(signal, group_signal, now, out)
            }
            Policy::Group { .. } => self.group_signal(signal, out),
        }
    }

    /// A signal herd received, for a single command: rewritten or dropped
    /// as `--rewrite-signal` says, and in dumb-init's modes a terminal stop
    /// signal stops herd too once it is forwarded.
    fn forward_received(
        &mut self,
        received: i32,
        group_signal: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        match self.settings.init.forwarded_as(received) {
            Some(signal) => self.forward(signal, group_signal, now, out),
            None => out.push(Effect::Note(format!(
                "dropping {}, as --rewrite-signal says",
                signals::name(received)
            ))),
        }
        if self.settings.init.stops_self_after(received) {
            out.push(Effect::Note(format!(
                "stopping herd after {}, as dumb-init does",
                signals::name(received)
            )));
            out.push(Effect::StopSelf);
        }
    }

    /// A single command: every signal goes on to the child (its group once
    /// it is gone, or with `-g`); a stop request starts the grace.
    /// With a reload under way, every generation gets it.
    fn forward(&mut self, signal: i32, group_signal: bool, now: Instant, out: &mut Vec<Effect>) {
        if signals::is_stop_request(signal) {
            self.stop_forwarded = true;
            self.start_stop_deadline(now);
            self.cancel_reload("herd is stopping", out);
        }
        let instances = self.units.first().map_or(0, |u| u.instances.len());
        for index in 0..instances {
            let instance = &self.units[0].instances[index];
            let Some(pgid) = instance.pgid else {
                continue;
            };
            let id = instance.id;
            if signal == libc::SIGCONT && instance.has_terminal {
                // Resumed by the shell's `fg`: the terminal goes back to the child.
                out.push(Effect::ResumeTerminal(id));
            }
            // After the child is gone only its group is left to forward to;
            // and SIGCONT must wake every member a Ctrl-Z stopped.
            let to_group = group_signal || instance.pid.is_none() || signal == libc::SIGCONT;
            let target = if to_group { "process group" } else { "pid" };
            out.push(Effect::Note(format!(
                "forwarding {} to {target} {pgid}",
                signals::name(signal)
            )));
            out.push(Effect::Signal {
                to: if to_group {
                    Target::Group(id)
                } else {
                    Target::Process(id)
                },
                signal,
            });
            if signals::is_stop_request(signal) {
                self.start_grace(0, index, now, out);
            }
        }
    }

    fn group_signal(&mut self, signal: i32, out: &mut Vec<Effect>) {
        if signals::is_stop_request(signal) {
            if !self.stopping {
                out.push(Effect::Line(format!(
                    "got {}: stopping",
                    signals::name(signal)
                )));
                self.stop_all(Cause::Request, out);
            } else if signal != libc::SIGQUIT && !self.kill_everything {
                out.push(Effect::Line(format!(
                    "got {} while stopping: killing everything",
                    signals::name(signal)
                )));
                self.kill_everything = true;
                for unit in 0..self.units.len() {
                    for index in 0..self.units[unit].instances.len() {
                        if let Phase::Stopping { .. } = self.units[unit].instances[index].phase {
                            self.kill(unit, index, out);
                        }
                    }
                }
            }
            return;
        }
        for unit in &self.units {
            for instance in &unit.instances {
                if let (Some(_), Some(pgid)) = (instance.pid, instance.pgid) {
                    out.push(Effect::Note(format!(
                        "forwarding {} to process group {pgid} ({})",
                        signals::name(signal),
                        unit.spec.name
                    )));
                    out.push(Effect::Signal {
                        to: Target::Group(instance.id),
                        signal,
                    });
                }
            }
        }
        if matches!(signal, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
            // Ctrl-Z: the processes are stopped, and herd stops too, so that
            // its shell sees the job stopped; `fg` sends herd SIGCONT, which
            // goes on to every process like any other signal.
            out.push(Effect::StopSelf);
        }
    }

    /// A single command stopped by the terminal: herd stops too, so that
    /// the shell sees its job stopped.
    fn on_stopped(&mut self, pid: Pid, signal: i32, out: &mut Vec<Effect>) {
        if self.is_group() {
            return;
        }
        let Some((unit, index)) = self.find_pid(pid) else {
            return;
        };
        let has_terminal = self.units[unit].instances[index].has_terminal;
        if has_terminal && matches!(signal, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
            out.push(Effect::Note(format!(
                "child stopped by {}; stopping too",
                signals::name(signal)
            )));
            out.push(Effect::StopSelf);
        }
    }

    /// The answer to `command`; `None` when it comes later (a reload is
    /// answered when it ends).
    fn on_control(
        &mut self,
        client: ClientId,
        command: Command,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> Option<Answer> {
        match command {
            Command::Status => {
                let mut fields = crate::control::status_fields(&self.status(now));
                let ready = if self.is_ready() { "yes" } else { "no" };
                fields.push(("ready".to_string(), ready.to_string()));
                Some(Answer::Ok(fields))
            }
            Command::Reload(name) => {
                self.on_reload(Some(client), name.as_deref(), now, out);
                None
            }
            command => Some(self.on_request(command, now, out)),
        }
    }

    fn on_request(&mut self, command: Command, now: Instant, out: &mut Vec<Effect>) -> Answer {
        if !self.is_group() {
            return match command {
                Command::Stop => {
                    let signal = self
                        .units
                        .first()
                        .map_or(libc::SIGTERM, |u| u.spec.stop_signal);
                    if let Policy::Transparent { group_signal } = self.settings.policy {
                        self.forward(signal, group_signal, now, out);
                    }
                    self.stop_forwarded = true;
                    self.start_stop_deadline(now);
                    self.cancel_reload("herd is stopping", out);
                    let instances = self.units.first().map_or(0, |u| u.instances.len());
                    for index in 0..instances {
                        self.start_grace(0, index, now, out);
                    }
                    Answer::Ok(Vec::new())
                }
                _ => Answer::Error(
                    "a single command answers status, stop and reload only; use a group (-c, -f)"
                        .to_string(),
                ),
            };
        }
        let (name, units) = match &command {
            Command::StopProcess(name)
            | Command::StartProcess(name)
            | Command::Restart(name)
            | Command::Signal(name, _)
            | Command::Send(name) => {
                let units: Vec<usize> = (0..self.units.len())
                    .filter(|&unit| self.units[unit].answers_to(name))
                    .collect();
                if units.is_empty() {
                    return Answer::Error(format!("no process named '{name}'"));
                }
                (name.clone(), units)
            }
            Command::Status | Command::Stop | Command::Reload(_) => (String::new(), vec![0]),
        };
        if self.stopping && command != Command::Stop {
            return Answer::Error("the group is stopping".to_string());
        }
        if let (Command::Send(_), [first, .., last]) = (&command, units.as_slice()) {
            return Answer::Error(format!(
                "{name} has {} instances ({} to {}): send to one of them",
                units.len(),
                self.units[*first].spec.name,
                self.units[*last].spec.name
            ));
        }
        // A process's name asks every instance of it; the answer is an
        // error only when none of them could do it.
        let mut answer = None;
        let mut failures: Vec<String> = Vec::new();
        for &unit in &units {
            let who = match units.len() {
                1 => self
                    .units
                    .get(unit)
                    .map_or(String::new(), |u| u.spec.name.clone()),
                _ => name.clone(),
            };
            match self.on_unit_request(unit, &who, &command, now, out) {
                Answer::Error(why) if !failures.contains(&why) => failures.push(why),
                Answer::Error(_) => {}
                done => answer = Some(done),
            }
        }
        answer.unwrap_or_else(|| Answer::Error(failures.join("; ")))
    }

    /// `command` for one unit; `name` is how its answer names it.
    fn on_unit_request(
        &mut self,
        unit: usize,
        name: &str,
        command: &Command,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> Answer {
        let ok = || Answer::Ok(Vec::new());
        let current = self.units.get(unit).and_then(|u| {
            let index = u.serving_index()?;
            Some((index, u.instances[index].phase, u.instances[index].id))
        });
        match *command {
            // Answered by `on_control`.
            Command::Status | Command::Reload(_) => ok(),
            Command::Stop => {
                if !self.stopping {
                    out.push(Effect::Line("stop requested: stopping".to_string()));
                    self.stop_all(Cause::Request, out);
                }
                ok()
            }
            Command::StopProcess(_) => match (self.units[unit].state, current) {
                (UnitState::Active, Some((index, Phase::Ready | Phase::Starting { .. }, _))) => {
                    self.units[unit].manual_stop = true;
                    self.begin_stop(unit, index, true, now, out);
                    ok()
                }
                (UnitState::Backoff { .. } | UnitState::Waiting, _) => {
                    self.units[unit].state = UnitState::Stopped;
                    ok()
                }
                _ => Answer::Error(format!("{name} is not running")),
            },
            Command::StartProcess(_) => match self.units[unit].state {
                UnitState::Stopped | UnitState::Done => {
                    self.start(unit, now, out);
                    ok()
                }
                _ => Answer::Error(format!("{name} is already running")),
            },
            Command::Restart(_) => {
                match (self.units[unit].state, current) {
                    (
                        UnitState::Active,
                        Some((index, Phase::Ready | Phase::Starting { .. }, _)),
                    ) => {
                        self.units[unit].restart_after_stop = true;
                        self.begin_stop(unit, index, true, now, out);
                    }
                    (UnitState::Active, _) => self.units[unit].restart_after_stop = true,
                    _ => {
                        let u = &mut self.units[unit];
                        u.restarts = u.restarts.saturating_add(1);
                        self.start(unit, now, out);
                    }
                }
                ok()
            }
            Command::Signal(_, signal) => match current {
                Some((index, _, id)) if self.units[unit].instances[index].pid.is_some() => {
                    out.push(Effect::Signal {
                        to: Target::Group(id),
                        signal,
                    });
                    ok()
                }
                _ => Answer::Error(format!("{name} is not running")),
            },
            Command::Send(_) => {
                let u = &self.units[unit];
                match current {
                    _ if !u.stdin_pipe => {
                        Answer::Error(format!("{name} was not started with --stdin-pipe"))
                    }
                    Some((index, _, id)) if u.instances[index].pid.is_some() => Answer::Stdin(id),
                    _ => Answer::Error(format!("{name} is not running")),
                }
            }
        }
    }
}

impl Unit {
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

    fn could_not_start(&self, failure: &Failure) -> String {
        format!("{} could not be started: {failure}", self.spec.name)
    }

    /// Ended the way a stop ends: exit 0, or the stop signal herd sent.
    fn ended_cleanly(&self) -> bool {
        match self.last_exit {
            None | Some(WaitStatus::Exited(0)) => true,
            Some(WaitStatus::Signaled(signal)) => signal == self.spec.stop_signal,
            Some(_) => false,
        }
    }
}

/// EPERM on what is left of a process group: said once, not waited for.
fn unreachable_line(is_group: bool, name: &str, pgid: Pid) -> Effect {
    let text = format!(
        "{name}: what is left of process group {pgid} cannot be signalled by herd \
         (permission denied); not waiting for it"
    );
    if is_group {
        Effect::Line(text)
    } else {
        Effect::Note(text)
    }
}
