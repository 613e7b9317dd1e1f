//! The supervisor loop and its executor: inputs in (signals, reaped
//! children, control requests, probe results), `core::Table::step` decides,
//! and the executor performs the effects. It is the only code outside
//! `sys/` that spawns, signals, reaps or writes, and it never blocks on
//! anything but its own inputs.

use crate::cli::RunArgs;
use crate::control::{self, Command, Reply};
use crate::core::{
    self, Answer, ClientId, Effect, GroupState, InitOptions, Input, InstanceId, Policy, Settings,
    Table, Target, UnitSetup,
};
use crate::daemon::Service;
use crate::error::{Failure, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};
use crate::listen::{Inherited, Sockets};
use crate::load;
use crate::notify::{self, Notice, Upward};
use crate::output::{self, Output, ReaderId, Style};
use crate::probe::{self, TcpProbe};
use crate::scoreboard::Board;
use crate::spec::{ProcessSpec, Ready, TcpCheck, TcpPort};
use crate::sys::events::{self, SignalFd, WakeFd};
use crate::sys::fd;
use crate::sys::guard::{self, Guard};
use crate::sys::process::{self, ChildSetup, LiveGroup, LivePid, Members, Reap, WaitStatus};
use crate::sys::signal::{self, SignalSet};
use crate::sys::Pid;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What the other threads hand the loop.
pub enum Event {
    /// A request from the control socket, and where its reply goes.
    Control(Command, mpsc::Sender<Reply>),
    /// A probe thread's finding.
    Probe(InstanceId, Probed),
    /// An instance's output pipe has been read to its end.
    OutputEnded(InstanceId),
    /// A `--watch` path changed.
    Reload,
    /// A datagram on herd's notify socket, from `pid` of process group `pgid`.
    Notify {
        pid: Pid,
        pgid: Option<Pid>,
        notice: Notice,
    },
    /// A datagram on herd's notify socket was ignored, for `-v`.
    NotifyIgnored(String),
    /// The `--health` responder's ping number N: the loop answers it.
    Alive(u64),
}

/// What a ready probe found.
pub enum Probed {
    Ready,
    /// A `tcp:` check's port is held by another program.
    PortTaken(u16),
    /// The process (named) closed its `ready=fd:N` without a newline.
    FdClosed(String),
    /// One result of a liveness check: `Err` says why it failed.
    Live(Result<(), String>),
}

/// Where the other threads put their events: a bounded queue (a sender
/// waits when the loop is far behind, the loop never does) and the wake-up
/// that makes the loop look at it.
#[derive(Clone)]
pub struct Inbox {
    queue: SyncSender<Event>,
    wake: Arc<WakeFd>,
}

/// The loop has gone: nobody takes events any more.
#[derive(Debug)]
pub struct Closed;

impl Inbox {
    pub fn send(&self, event: Event) -> Result<(), Closed> {
        self.queue.send(event).map_err(|_| Closed)?;
        self.wake.wake();
        Ok(())
    }

    /// As `send`, but never waits: `Ok(false)` when the queue is full.
    pub fn try_send(&self, event: Event) -> Result<bool, Closed> {
        match self.queue.try_send(event) {
            Ok(()) => {
                self.wake.wake();
                Ok(true)
            }
            Err(mpsc::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(Closed),
        }
    }
}

/// Events waiting for the loop; more than this many unhandled means the
/// loop is far behind, and their senders may as well wait.
const EVENT_QUEUE: usize = 64;

/// How often the loop looks whether a process group has emptied when no
/// SIGCHLD may tell it (members that are not herd's children).
const GROUP_POLL: Duration = Duration::from_millis(50);

/// How often ready probes are tried.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// How long a main process's exit line waits for the rest of its output,
/// so that it comes after what the process printed.
const EXIT_LINE_WAIT: Duration = Duration::from_millis(100);

/// Runs a single command or a group until everything it started is gone;
/// returns the exit code herd must exit with.
pub fn run(args: RunArgs, inherited: Inherited, service: &mut Service) -> Result<u8, Failure> {
    // Read once and taken out of herd's environment before any thread
    // exists: it is herd's, and no child may get it unchanged.
    let manager_socket = std::env::var(notify::NOTIFY_SOCKET).ok();
    std::env::remove_var(notify::NOTIFY_SOCKET);
    // Another supervisor's heartbeat slot and watchdog are not this herd's
    // children's: each gets its own, or none.
    for key in HEARTBEAT_VARIABLES.iter().chain(&WATCHDOG_VARIABLES) {
        std::env::remove_var(key);
    }
    // Blocked since herd's first instruction (sys::entry); checked here,
    // before any thread exists, so that every thread inherits the full
    // mask and signals reach only the signalfd.
    signal::block_all().map_err(|e| Failure::io("blocking signals", &e))?;
    let caller_mask = signal::caller_mask();
    let signals =
        SignalFd::new(&SignalSet::full()).map_err(|e| Failure::io("opening a signalfd", &e))?;
    if let Some(signal) = args.parent_death_signal {
        process::set_parent_death_signal(signal)
            .map_err(|e| Failure::io("setting the parent death signal", &e))?;
    }
    // Before any socket is bound: what the dead supervisor left may hold
    // the ports this one is to listen on.
    if let Some(dir) = service
        .paths()
        .and_then(|paths| paths.dir.as_deref())
        .filter(|_| service.took_over())
    {
        crate::orphans::stop_left_behind(dir, &signals, &|text| {
            crate::log::line(format_args!("{text}"))
        })?;
    }
    let single = args.sources.is_empty();
    let (units, launches): (Vec<UnitSetup>, Vec<Launch>) = if single {
        single_launch(&args)
    } else {
        load::group(&args)?
            .into_iter()
            .map(|process| {
                let launch = Launch {
                    argv: None,
                    env: process.env,
                    takes_stdin: process.takes_stdin,
                    sockets: Vec::new(),
                    socket_names: String::new(),
                    new_session: false,
                    claim_terminal: false,
                };
                let setup = UnitSetup {
                    spec: process.spec,
                    stdin_pipe: process.stdin_pipe,
                };
                (setup, launch)
            })
            .unzip()
    };
    let mut launches = launches;
    let sockets = Sockets::open(&args.listen, inherited)?;
    for (unit, launch) in units.iter().zip(&mut launches) {
        launch.sockets = sockets.for_process(&unit.spec)?;
        launch.socket_names = sockets.names(&launch.sockets);
        check_ready_fd(&unit.spec, launch.sockets.len())?;
    }
    let is_init = adopt_orphans(args.subreaper)?;
    let wake = Arc::new(WakeFd::new().map_err(|e| Failure::io("opening an eventfd", &e))?);
    let (queue, events) = mpsc::sync_channel(EVENT_QUEUE);
    let inbox = Inbox { queue, wake };
    // Everything that can fail at set-up exists before the first child.
    if let Some(paths) = service.paths() {
        control::serve(paths, inbox.clone())?;
    }
    let health = match &args.health {
        Some(address) => Some(crate::health::serve(address, inbox.clone())?),
        None => None,
    };
    let board = match service.paths().and_then(|paths| paths.dir.as_deref()) {
        Some(dir) => Some(make_board(dir, units.len())?),
        None => None,
    };
    crate::watch::start(&args.watch, inbox.clone())?;
    if let Some(dir) = service
        .paths()
        .and_then(|paths| paths.dir.as_deref())
        .filter(|_| board.is_some())
    {
        let path = dir
            .join(crate::scoreboard::FILE)
            .to_string_lossy()
            .into_owned();
        for (slot, launch) in launches.iter_mut().enumerate() {
            launch
                .env
                .retain(|(key, _)| !HEARTBEAT_VARIABLES.contains(&key.as_str()));
            let [file, index] = HEARTBEAT_VARIABLES;
            launch.env.push((file.to_string(), path.clone()));
            launch.env.push((index.to_string(), slot.to_string()));
        }
    } else if single && units.iter().any(|unit| unit.spec.watchdog.is_some()) {
        return Err(Failure::new(
            "reading arguments",
            "--watchdog: a single command under herd run has no scoreboard and no \
             NOTIFY_SOCKET to send a heartbeat to (use herd start, or a group)",
        ));
    }
    // A group's processes may tell herd they are ready, their status, their
    // heartbeat; a single command is herd's whole job and says it by running.
    if !single {
        let receiver = notify::serve(inbox.clone())?;
        for launch in &mut launches {
            launch.env.retain(|(key, _)| key != notify::NOTIFY_SOCKET);
            launch
                .env
                .push((notify::NOTIFY_SOCKET.to_string(), receiver.address.clone()));
        }
    }
    let output = if single {
        Output::new(Style {
            color: false,
            timestamps: false,
            name_width: 0,
        })
    } else {
        let name_width = units
            .iter()
            .map(|u| u.spec.name.len())
            .chain([output::HERD.len()])
            .max()
            .unwrap_or_default();
        let color = output::use_color(
            args.color,
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR"),
        );
        Output::new(Style {
            color,
            timestamps: args.timestamps,
            name_width,
        })
    };
    let null = if single {
        None
    } else {
        Some(File::open("/dev/null").map_err(|e| Failure::io("opening /dev/null", &e))?)
    };
    let upward = match Upward::from_value(manager_socket.as_deref(), Instant::now()) {
        Ok(upward) => upward,
        Err(why) => {
            if args.verbose {
                output.note(&why);
            }
            None
        }
    };
    let defaults = &args.defaults;
    let settings = Settings {
        policy: if single {
            Policy::Transparent {
                // dumb-init's setsid mode signals the child's session.
                group_signal: args.group_signal || args.setsid == Some(true),
            }
        } else {
            Policy::Group {
                parallel_stop: args.parallel_stop,
            }
        },
        backoff_min: args.backoff_min,
        backoff_max: args.backoff_max,
        start_limit: args.start_limit,
        start_window: args.start_window,
        settle: if service.awaits_report() {
            Some(service.settle)
        } else {
            upward.as_ref().map(|_| Duration::ZERO)
        },
        sweep: is_init.then_some((defaults.stop_signal, defaults.grace)),
        reopens_log: service.writes_a_log(),
        output_linger: EXIT_LINE_WAIT,
        reload_batch: args.reload_batch,
        hup_reloads: !sockets.is_empty(),
        stop_deadline: args.stop_deadline,
        init: InitOptions::new(&args.rewrite, &args.exit_ok, args.setsid, args.warn_zombies),
    };
    if let Some(launch) = launches.first_mut().filter(|launch| launch.new_session) {
        launch.claim_terminal = match process::release_terminal() {
            Ok(released) => released,
            Err(e) => {
                if args.verbose {
                    output.note(&format!(
                        "giving up the terminal for the child: {}",
                        crate::error::describe(&e)
                    ));
                }
                false
            }
        };
    }
    // A single command with no state directory is herd's fastest case, and
    // its one process's parent-death signal stops it; the rest get a guard.
    // Not as PID 1, whose death ends every process of its namespace anyway.
    let death_signal = args.death_signal && !is_init;
    let guard = if death_signal && (!single || board.is_some()) {
        Some(Guard::start().map_err(|e| Failure::io("starting the guard", &e))?)
    } else {
        None
    };
    let table = Table::new(settings, units);
    let mut executor = Executor {
        table,
        launches,
        service,
        single,
        caller_mask,
        null,
        output,
        verbose: args.verbose,
        inbox,
        processes: IdMap::new(),
        groups: IdMap::new(),
        readers: IdMap::new(),
        stdin_pipes: IdMap::new(),
        sockets,
        ready_pipes: IdMap::new(),
        probes: IdMap::new(),
        live_checks: IdMap::new(),
        clients: IdMap::new(),
        next_client: 1,
        took_terminal: false,
        next_group_poll: None,
        upward,
        health,
        board,
        heartbeats: Vec::new(),
        death_signal,
        guard,
    };
    let result = executor.run(&signals, &events);
    // A group still there (one herd could not signal) is the guard's, as
    // if herd had died.
    if let Some(guard) = executor
        .guard
        .take()
        .filter(|_| executor.groups.iter().next().is_none())
    {
        guard.clean();
    }
    executor.output.drain(output::OUTPUT_DRAIN);
    result
}

/// How a child finds its heartbeat: the scoreboard's path and its slot.
const HEARTBEAT_VARIABLES: [&str; 2] = ["HERD_SCOREBOARD", "HERD_SLOT"];

/// systemd's watchdog variables, for a process with `--watchdog`.
const WATCHDOG_VARIABLES: [&str; 2] = ["WATCHDOG_USEC", "WATCHDOG_PID"];

/// The scoreboard of `dir`, with a slot for each of `units`.
fn make_board(dir: &std::path::Path, units: usize) -> Result<Board, Failure> {
    let supervisor = u32::try_from(process::own_pid()).unwrap_or(0);
    Board::create(dir, units, supervisor).map_err(|e| {
        let path = dir.join(crate::scoreboard::FILE);
        Failure::io(format!("creating {}", path.display()), &e)
    })
}

/// A single command as a unit of one: its argv exec'd as given.
fn single_launch(args: &RunArgs) -> (Vec<UnitSetup>, Vec<Launch>) {
    let name = args
        .command
        .first()
        .map_or(String::new(), |c| c.to_string_lossy().into_owned());
    let setup = UnitSetup {
        spec: ProcessSpec::new(name, String::new(), &args.defaults),
        stdin_pipe: false,
    };
    let launch = Launch {
        argv: Some(args.command.clone()),
        env: Vec::new(),
        takes_stdin: true,
        sockets: Vec::new(),
        socket_names: String::new(),
        new_session: args.setsid == Some(true),
        claim_terminal: false,
    };
    (vec![setup], vec![launch])
}

/// Makes herd the reaper of orphaned descendants: as PID 1 it already is;
/// otherwise it registers as a child subreaper, unless `--no-subreaper`.
/// Returns whether herd is PID 1.
fn adopt_orphans(subreaper: bool) -> Result<bool, Failure> {
    let is_init = process::own_pid() == 1;
    if subreaper && !is_init {
        process::become_subreaper()
            .map_err(|e| Failure::io("registering as child subreaper", &e))?;
    }
    Ok(is_init)
}

/// What the executor keeps per instance or client: a few dozen entries at
/// most, so a list searched in order is smaller and cheaper than a hash map.
struct IdMap<V>(Vec<(u64, V)>);

impl<V> IdMap<V> {
    fn new() -> IdMap<V> {
        IdMap(Vec::new())
    }

    fn insert(&mut self, id: u64, value: V) {
        self.remove(&id);
        self.0.push((id, value));
    }

    fn get(&self, id: &u64) -> Option<&V> {
        self.0
            .iter()
            .find(|(key, _)| key == id)
            .map(|(_, value)| value)
    }

    fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    fn remove(&mut self, id: &u64) -> Option<V> {
        let at = self.0.iter().position(|(key, _)| key == id)?;
        Some(self.0.swap_remove(at).1)
    }

    fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.0.iter().map(|(key, value)| (key, value))
    }
}

/// How to start one unit.
/// What the executor needs beside the table's unit to start it: kept apart
/// so that nothing of a unit is held twice.
struct Launch {
    /// Gets herd's stdin (and the terminal, when herd has it).
    takes_stdin: bool,
    /// A single command's argv; a group's process runs its spec's command
    /// with `/bin/sh -c`, an argv made when it starts.
    argv: Option<Vec<OsString>>,
    env: Vec<(String, String)>,
    /// Which of the executor's sockets it gets, at fds 3, 4, ...
    sockets: Vec<usize>,
    /// Their names, for LISTEN_FDNAMES.
    socket_names: String,
    /// Runs in a session of its own (`--setsid`).
    new_session: bool,
    /// Takes herd's terminal, which herd gave up for it, as its own.
    claim_terminal: bool,
}

/// `ready=fd:N` must not be one of the fds the process's sockets take.
fn check_ready_fd(spec: &ProcessSpec, socket_count: usize) -> Result<(), Failure> {
    let Ready::Fd(fd) = spec.ready else {
        return Ok(());
    };
    let last = 2usize.saturating_add(socket_count);
    if usize::try_from(fd).is_ok_and(|fd| fd <= last) {
        return Err(Failure::new(
            "reading arguments",
            format!(
                "{}: ready=fd:{fd} is one of its socket fds (3 to {last}); use fd:{} or more",
                spec.name,
                last.saturating_add(1)
            ),
        ));
    }
    Ok(())
}

struct Executor<'a> {
    table: Table,
    launches: Vec<Launch>,
    service: &'a mut Service,
    single: bool,
    /// The mask herd was started with, which children get back.
    caller_mask: SignalSet,
    /// A group's processes' stdin, unless they take herd's or a pipe.
    null: Option<File>,
    output: Output,
    /// `-v`: decisions are noted on stderr.
    verbose: bool,
    inbox: Inbox,
    /// Main processes not reaped yet.
    processes: IdMap<LivePid>,
    /// Process groups that may still have members.
    groups: IdMap<LiveGroup>,
    readers: IdMap<ReaderId>,
    stdin_pipes: IdMap<File>,
    /// The `--listen` sockets, held for herd's whole life so that the
    /// kernel queues connections while no child accepts.
    sockets: Sockets,
    /// The read ends of `ready=fd:N` pipes, until their reader starts.
    ready_pipes: IdMap<OwnedFd>,
    /// Running probes, and the flag that stops each.
    probes: IdMap<Arc<AtomicBool>>,
    /// Running liveness checks, and the flag that stops each.
    live_checks: IdMap<Arc<AtomicBool>>,
    clients: IdMap<mpsc::Sender<Reply>>,
    next_client: ClientId,
    /// A single command was given the terminal, which herd takes back.
    took_terminal: bool,
    next_group_poll: Option<Instant>,
    /// The manager that started herd with `NOTIFY_SOCKET`, told how herd is.
    upward: Option<Upward>,
    /// What the `--health` responder answers from.
    health: Option<Arc<crate::health::Published>>,
    /// The scoreboard of the state directory, when there is one.
    board: Option<Board>,
    /// Each slot's heartbeat counter when the loop last looked.
    heartbeats: Vec<u64>,
    /// Each process gets its stop signal when herd dies.
    death_signal: bool,
    /// Stops every process group if herd dies without stopping them.
    guard: Option<Guard>,
}

impl Executor<'_> {
    fn run(&mut self, signals: &SignalFd, events: &Receiver<Event>) -> Result<u8, Failure> {
        // Every process waiting, before the first ones start.
        self.publish(Instant::now());
        self.handle(Input::Tick);
        let outcome = loop {
            if let Some(outcome) = self.table.outcome() {
                break outcome;
            }
            let now = Instant::now();
            self.tell_upward(now);
            self.publish(now);
            let mut due = self.table.next_deadline();
            if let Some(at) = self.upward.as_ref().and_then(Upward::next_due) {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
            let watching =
                self.table.groups_to_watch().next().is_some() || self.table.is_sweeping();
            if watching {
                let poll = *self
                    .next_group_poll
                    .get_or_insert_with(|| core::deadline(now, GROUP_POLL));
                due = Some(due.map_or(poll, |d| d.min(poll)));
            } else {
                self.next_group_poll = None;
            }
            if let Some(poll) = self.table.heartbeat_poll() {
                let look = core::deadline(now, poll);
                due = Some(due.map_or(look, |d| d.min(look)));
            }
            let timeout = due.map(|at| at.saturating_duration_since(now));
            if let Some(board) = &self.board {
                board.loop_state(true);
            }
            let woken = events::wait(signals, &self.inbox.wake, timeout)
                .map_err(|e| Failure::io("waiting for events", &e))?;
            if let Some(board) = &self.board {
                board.loop_state(false);
            }
            self.look_at_heartbeats();
            if woken.signals {
                while let Some(signal) = signals
                    .take()
                    .map_err(|e| Failure::io("reading signals", &e))?
                {
                    if signal == libc::SIGCHLD {
                        self.reap();
                    } else {
                        self.handle(Input::Signal(signal));
                    }
                }
            }
            if woken.inputs {
                while let Ok(event) = events.try_recv() {
                    self.event(event);
                }
            }
            if self.next_group_poll.is_some_and(|at| at <= Instant::now()) {
                self.next_group_poll = None;
                self.poll_groups();
            }
            self.handle(Input::Tick);
        };
        if self.took_terminal {
            reclaim_terminal();
        }
        if let Some(upward) = &mut self.upward {
            let _ = upward.stopping(Instant::now());
        }
        if let Some(board) = self.board.take() {
            board.remove();
        }
        self.service.stop_reason = Some(outcome.reason);
        if let Some(failure) = outcome.failure {
            return Err(failure);
        }
        if let Some(message) = outcome.message {
            // Through the writer, whose drain is bounded: a stderr nobody
            // reads must not keep herd from exiting.
            self.output.note(&message);
        }
        Ok(outcome.code)
    }

    /// Steps the table with `input` and performs what it decides, with the
    /// inputs that performing it gives, until none is left.
    fn handle(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let effects = self.table.step(input, Instant::now());
            // Before the effects, among them a status reply: `/ready` and
            // `herd status --ready` never disagree.
            if let Some(health) = &self.health {
                health.set_ready(self.table.is_ready());
            }
            for effect in effects {
                self.perform(effect, &mut inputs);
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Control(command, reply_to) => {
                let client = self.next_client;
                self.next_client += 1;
                self.clients.insert(client, reply_to);
                self.handle(Input::Control { client, command });
            }
            Event::Probe(instance, Probed::Ready) => self.handle(Input::Ready(instance)),
            Event::Probe(instance, Probed::PortTaken(port)) => {
                self.handle(Input::PortTaken { instance, port })
            }
            Event::Probe(instance, Probed::Live(result)) => {
                self.handle(Input::Live { instance, result })
            }
            Event::Probe(_, Probed::FdClosed(name)) => self.output.herd_line(&format!(
                "{name} closed its ready fd without writing a newline: it is not ready"
            )),
            Event::OutputEnded(instance) => self.handle(Input::OutputEnded(instance)),
            Event::Reload => self.handle(Input::Reload),
            Event::Notify { pid, pgid, notice } => self.handle(Input::Notify { pid, pgid, notice }),
            Event::NotifyIgnored(why) => self.note(&why),
            Event::Alive(number) => {
                if let Some(health) = &self.health {
                    health.answer(number);
                }
            }
        }
    }

    /// Tells the table of every heartbeat counter that moved since the
    /// last look: a few loads, on every wake-up.
    fn look_at_heartbeats(&mut self) {
        let Some(board) = &self.board else {
            return;
        };
        let mut moved = Vec::new();
        for (slot, count) in board.heartbeats().enumerate() {
            match self.heartbeats.get_mut(slot) {
                Some(seen) if *seen == count => {}
                Some(seen) => {
                    *seen = count;
                    moved.push(slot);
                }
                // The first look: where the counter starts.
                None => self.heartbeats.push(count),
            }
        }
        for slot in moved {
            self.handle(Input::Heartbeat(slot));
        }
    }

    /// Writes what changed to the scoreboard. One that someone truncated or
    /// removed is made anew, once per loss: readers said so meanwhile.
    fn publish(&mut self, now: Instant) {
        let Some(board) = &mut self.board else {
            return;
        };
        if board.publish(self.table.rows(), self.table.is_ready(), now) {
            return;
        }
        let dir = self.service.paths().and_then(|paths| paths.dir.clone());
        self.board = dir.and_then(|dir| match make_board(&dir, self.launches.len()) {
            Ok(mut board) => {
                board.publish(self.table.rows(), self.table.is_ready(), now);
                Some(board)
            }
            Err(failure) => {
                self.output.note(&failure.to_string());
                None
            }
        });
        // A new file's counters start again.
        self.heartbeats.clear();
        let what = if self.board.is_some() {
            "made a new one"
        } else {
            "going on without one"
        };
        self.output
            .note(&format!("the scoreboard was truncated or removed: {what}"));
    }

    /// Tells the manager that started herd what changed: stopping, how many
    /// are ready, and, when a start or stop is slow, that it needs more time.
    fn tell_upward(&mut self, now: Instant) {
        let stopping = self.table.is_stopping();
        let (ready, total) = self.table.readiness();
        let Some(upward) = &mut self.upward else {
            return;
        };
        let sent = if stopping {
            upward.stopping(now)
        } else {
            upward.status(&format!("{ready} of {total} ready"))
        }
        .and_then(|()| upward.tick(now));
        self.upward_failed(sent);
    }

    fn upward_failed(&self, sent: io::Result<()>) {
        if let Err(e) = sent {
            self.note(&format!(
                "notifying {}: {}",
                notify::NOTIFY_SOCKET,
                crate::error::describe(&e)
            ));
        }
    }

    /// Reaps every child that has changed state (orphans herd adopted too).
    fn reap(&mut self) {
        loop {
            match process::reap_one() {
                Ok(Reap::Changed(pid, WaitStatus::Stopped(signal))) => {
                    self.handle(Input::Stopped { pid, signal })
                }
                Ok(Reap::Changed(pid, status)) => {
                    let instance = self
                        .processes
                        .iter()
                        .find(|(_, live)| live.pid() == pid)
                        .map(|(id, _)| *id);
                    let group = match instance {
                        Some(id) => {
                            // Reaped: the pid is the kernel's again.
                            self.processes.remove(&id);
                            self.group_state(id)
                        }
                        None => GroupState::Empty,
                    };
                    self.handle(Input::Exited { pid, status, group });
                }
                Ok(Reap::NothingYet) => return,
                Ok(Reap::NoChildren) => {
                    if self.table.is_sweeping() {
                        self.handle(Input::NoChildren);
                    }
                    return;
                }
                Err(error) => {
                    self.note(&format!(
                        "reaping children: {}",
                        crate::error::describe(&error)
                    ));
                    return;
                }
            }
        }
    }

    /// Who is left in an instance's process group; an empty group's token
    /// goes, so that its id is never signalled again.
    fn group_state(&mut self, id: InstanceId) -> GroupState {
        let Some(group) = self.groups.get(&id) else {
            return GroupState::Empty;
        };
        match group.members() {
            Members::Some => GroupState::Alive,
            Members::None => {
                self.forget_group(id);
                GroupState::Empty
            }
            Members::Unsignallable => {
                self.forget_group(id);
                GroupState::Unreachable
            }
        }
    }

    /// The group's token goes, and the guard is told, so that neither ever
    /// signals its id, which the kernel may give to another process now.
    fn forget_group(&mut self, id: InstanceId) {
        if let Some(group) = self.groups.remove(&id) {
            self.tell_guard(|guard| guard.ended(group.id()));
        }
    }

    /// Tells the guard; one that is gone (killed) is said once and dropped.
    fn tell_guard(&mut self, tell: impl FnOnce(&Guard) -> Result<(), guard::Lost>) {
        if self
            .guard
            .as_ref()
            .is_some_and(|guard| tell(guard).is_err())
        {
            self.guard = None;
            self.output.herd_line(
                "the guard is gone (killed?): if herd is killed now, its processes get their \
                 stop signal but their process groups are not stopped",
            );
        }
    }

    fn poll_groups(&mut self) {
        if self.table.is_sweeping() {
            self.reap();
        }
        let watched: Vec<InstanceId> = self.table.groups_to_watch().map(|(id, _)| id).collect();
        for id in watched {
            match self.group_state(id) {
                GroupState::Alive => {}
                state => self.handle(Input::Group {
                    instance: id,
                    state,
                }),
            }
        }
    }

    fn note(&self, text: &str) {
        if self.verbose {
            self.output.note(text);
        }
    }

    fn perform(&mut self, effect: Effect, inputs: &mut VecDeque<Input>) {
        match effect {
            Effect::Spawn { instance, unit } => inputs.push_back(self.spawn(instance, unit)),
            Effect::Signal { to, signal } => self.signal(to, signal, inputs),
            Effect::SignalAll(signal) => {
                if process::send_signal_to_all(signal).is_err() {
                    inputs.push_back(Input::NoChildren);
                }
            }
            Effect::Line(text) => self.output.herd_line(&text),
            Effect::LineAfterOutput { text, instance } => match self.readers.get(&instance) {
                Some(reader) => self.output.herd_line_after(&text, *reader, EXIT_LINE_WAIT),
                None => self.output.herd_line(&text),
            },
            Effect::Note(text) => self.note(&text),
            Effect::Warn(text) => self.output.note(&text),
            Effect::Reply { client, answer } => {
                if let Some(reply_to) = self.clients.remove(&client) {
                    let _ = reply_to.send(self.reply(answer));
                }
            }
            Effect::StartProbe {
                instance,
                check,
                pgid,
            } => self.start_probe(instance, check, pgid),
            Effect::StopProbe(instance) => {
                if let Some(stop) = self.probes.remove(&instance) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Effect::StartLive { instance, live } => self.start_live(instance, live),
            Effect::StopLive(instance) => {
                if let Some(stop) = self.live_checks.remove(&instance) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Effect::ReportReady => {
                self.service.ready();
                let (ready, total) = self.table.readiness();
                if let Some(upward) = &mut self.upward {
                    let sent = upward.ready(&format!("{ready} of {total} ready"));
                    self.upward_failed(sent);
                }
            }
            Effect::ReclaimTerminal => reclaim_terminal(),
            Effect::ResumeTerminal(instance) => {
                if let Some(group) = self.groups.get(&instance) {
                    if process::terminal_foreground() == Some(process::own_process_group()) {
                        let _ = process::give_terminal_to(group.id());
                    }
                }
            }
            Effect::StopSelf => {
                let _ = process::stop_self();
            }
            Effect::ReopenLog => {
                self.service.reopen_log();
            }
            Effect::ReloadStarted => {
                self.note("reload started");
                if let Some(upward) = &mut self.upward {
                    let sent = upward.reloading(Instant::now());
                    self.upward_failed(sent);
                }
            }
            Effect::ReloadFinished { ok } => {
                self.note(if ok { "reload done" } else { "reload failed" });
                let (ready, total) = self.table.readiness();
                if let Some(upward) = &mut self.upward {
                    let status = if ok { "reloaded" } else { "reload failed" };
                    let sent = upward.reloaded(&format!("{status}; {ready} of {total} ready"));
                    self.upward_failed(sent);
                }
            }
            Effect::Forget(instance) => {
                self.processes.remove(&instance);
                self.forget_group(instance);
                self.readers.remove(&instance);
                self.stdin_pipes.remove(&instance);
                self.ready_pipes.remove(&instance);
                if let Some(stop) = self.probes.remove(&instance) {
                    stop.store(true, Ordering::Relaxed);
                }
                if let Some(stop) = self.live_checks.remove(&instance) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn signal(&mut self, to: Target, signal: i32, inputs: &mut VecDeque<Input>) {
        match to {
            Target::Process(id) => {
                if let Some(live) = self.processes.get(&id) {
                    let _ = live.signal(signal);
                }
            }
            Target::Group(id) => {
                let Some(group) = self.groups.get(&id) else {
                    return;
                };
                let failed = group.signal(signal).err().and_then(|e| e.raw_os_error());
                // Only once its leader is reaped can a group empty for good.
                if failed.is_some() && !self.processes.contains_key(&id) {
                    let state = self.group_state(id);
                    if state != GroupState::Alive {
                        inputs.push_back(Input::Group {
                            instance: id,
                            state,
                        });
                    }
                }
            }
        }
    }

    fn reply(&self, answer: Answer) -> Reply {
        match answer {
            Answer::Ok(fields) => Reply::Ok(fields),
            Answer::Error(why) => Reply::Error(why),
            Answer::Stdin(instance) => match self.stdin_pipes.get(&instance).map(File::try_clone) {
                Some(Ok(pipe)) => Reply::Stdin(pipe),
                Some(Err(e)) => Reply::Error(crate::error::describe(&e)),
                None => Reply::Error("it is not running".to_string()),
            },
        }
    }

    /// Starts an instance of `unit`; says how it went as the next input.
    fn spawn(&mut self, instance: InstanceId, unit: usize) -> Input {
        match self.try_spawn(instance, unit) {
            Ok((pid, has_terminal)) => Input::Spawned {
                instance,
                pid,
                has_terminal,
                has_output: self.readers.contains_key(&instance),
            },
            Err(failure) => Input::SpawnFailed { instance, failure },
        }
    }

    fn try_spawn(&mut self, instance: InstanceId, unit: usize) -> Result<(i32, bool), Failure> {
        let (Some(launch), Some(table_unit)) =
            (self.launches.get(unit), self.table.units.get(unit))
        else {
            return Err(Failure::new("starting a process", "no such unit"));
        };
        let name = &table_unit.spec.name;
        let doing = format!("starting {name}");
        // A group's process writes through herd (one pipe for stdout and
        // stderr: they are shown alike, and one pipe keeps their order); so
        // does a single command under `herd start`, so that its output
        // follows the log when SIGUSR1 reopens it. Otherwise a single
        // command writes to herd's own stdout and stderr.
        let output_pipe = if !self.single || self.service.writes_a_log() {
            Some(fd::pipe().map_err(|e| Failure::io(&doing, &e))?)
        } else {
            None
        };
        let stdin_pipe = if table_unit.stdin_pipe {
            Some(fd::pipe().map_err(|e| Failure::io(&doing, &e))?)
        } else {
            None
        };
        let stdin = match (&stdin_pipe, &self.null) {
            (Some((read_end, _)), _) => Some(read_end.as_fd()),
            (None, _) if launch.takes_stdin => None,
            (None, Some(null)) => Some(null.as_fd()),
            (None, None) => None,
        };
        let output_write = output_pipe.as_ref().map(|(_, write_end)| write_end.as_fd());
        // A child in another session cannot be given herd's terminal.
        let take_terminal = launch.takes_stdin && !launch.new_session && process::owns_terminal();
        let ready_pipe = match table_unit.spec.ready {
            Ready::Fd(number) => Some((fd::pipe().map_err(|e| Failure::io(&doing, &e))?, number)),
            _ => None,
        };
        let sockets = self.sockets.fds(&launch.sockets);
        let watchdog = table_unit.spec.watchdog;
        // A copy of the launch's variables only for a watched process.
        let env: Cow<[(String, String)]> = match watchdog {
            Some(period) => {
                let mut env = launch.env.clone();
                env.push((
                    WATCHDOG_VARIABLES[0].to_string(),
                    period.as_micros().to_string(),
                ));
                Cow::Owned(env)
            }
            None => Cow::Borrowed(&launch.env),
        };
        let setup = ChildSetup {
            mask: self.caller_mask,
            take_terminal,
            stdio: [stdin, output_write, output_write],
            env: &env,
            sockets: &sockets,
            socket_names: &launch.socket_names,
            pid_variables: if watchdog.is_some() {
                &WATCHDOG_VARIABLES[1..]
            } else {
                &[]
            },
            ready_fd: ready_pipe
                .as_ref()
                .map(|((_, write_end), number)| (write_end.as_fd(), *number)),
            new_session: launch.new_session,
            claim_terminal: launch.claim_terminal,
            death_signal: self.death_signal.then_some(table_unit.spec.stop_signal),
        };
        let shell_argv;
        let argv = match &launch.argv {
            Some(argv) => argv,
            None => {
                shell_argv = ["/bin/sh", "-c", &table_unit.spec.command].map(OsString::from);
                &shell_argv[..]
            }
        };
        let program = argv
            .first()
            .map_or(String::new(), |p| p.to_string_lossy().into_owned());
        let live = process::spawn(argv, &setup).map_err(|e| {
            if take_terminal {
                reclaim_terminal();
            }
            spawn_failure(&program, &e)
        })?;
        let pid = live.pid();
        if let Some((read_end, write_end)) = output_pipe {
            // herd must not hold the write end, or the reader never sees EOF.
            drop(write_end);
            let reader = self.start_reader(instance, name, read_end);
            match reader {
                Ok(reader) => {
                    self.readers.insert(instance, reader);
                }
                Err(e) => self.output.herd_line(&format!(
                    "{name}: its output is lost: starting its reader: {}",
                    crate::error::describe(&e)
                )),
            }
        }
        if let Some((_, write_end)) = stdin_pipe {
            self.stdin_pipes.insert(instance, File::from(write_end));
        }
        if let Some(((read_end, _), _)) = ready_pipe {
            // The write end goes with it: only the child holds one now.
            self.ready_pipes.insert(instance, read_end);
        }
        if self.single {
            self.took_terminal = take_terminal;
        }
        let grace = u64::try_from(table_unit.spec.grace.as_micros()).unwrap_or(u64::MAX);
        let stop_signal = table_unit.spec.stop_signal;
        self.tell_guard(|guard| guard.started(pid, stop_signal, grace));
        self.groups.insert(instance, LiveGroup::of(&live));
        self.processes.insert(instance, live);
        Ok((pid, take_terminal))
    }

    fn start_reader(&self, id: InstanceId, name: &str, pipe: OwnedFd) -> io::Result<ReaderId> {
        let inbox = self.inbox.clone();
        let on_end = Box::new(move || {
            let _ = inbox.send(Event::OutputEnded(id));
        });
        if self.single {
            self.output.spawn_copier(pipe, on_end)
        } else {
            self.output.spawn_reader(name, pipe, on_end)
        }
    }

    /// Runs a ready probe on a thread of its own, so that a slow check (a
    /// file on a dead network mount) never holds up the loop.
    fn start_probe(&mut self, instance: InstanceId, check: Ready, pgid: i32) {
        let stop = Arc::new(AtomicBool::new(false));
        let inbox = self.inbox.clone();
        let stopped = Arc::clone(&stop);
        let ready_pipe = self.ready_pipes.remove(&instance);
        let name = self
            .table
            .units
            .iter()
            .find(|unit| unit.instances.iter().any(|i| i.id == instance))
            .map_or(String::new(), |unit| unit.spec.name.clone());
        let started = thread::Builder::new()
            .name("probe".into())
            .stack_size(64 * 1024)
            .spawn(move || match ready_pipe {
                Some(pipe) => read_ready_fd(instance, name, &pipe, &stopped, &inbox),
                None => probe(instance, &check, pgid, &stopped, &inbox),
            });
        match started {
            Ok(_) => {
                self.probes.insert(instance, stop);
            }
            Err(e) => self.output.herd_line(&format!(
                "starting a ready probe: {}",
                crate::error::describe(&e)
            )),
        }
    }
}

impl Executor<'_> {
    /// Runs an instance's liveness check on a thread of its own: a check
    /// waits on the network or on a command, the loop on neither. An
    /// `exec:` check is a child that herd's reaper does not take (see
    /// `sys::check`).
    fn start_live(&mut self, instance: InstanceId, live: crate::live::Liveness) {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let inbox = self.inbox.clone();
        let mask = self.caller_mask;
        let started = thread::Builder::new()
            .name("live".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                crate::live::watch(&live, &mask, &stopped, |result| {
                    inbox
                        .send(Event::Probe(instance, Probed::Live(result)))
                        .is_ok()
                })
            });
        match started {
            Ok(_) => {
                self.live_checks.insert(instance, stop);
            }
            Err(e) => self.output.herd_line(&format!(
                "starting a liveness check: {}",
                crate::error::describe(&e)
            )),
        }
    }
}

/// Tries `check` until it passes or the loop says stop. A port held by
/// another program is said once; the check goes on, since that program may
/// go and the process take the port.
fn probe(instance: InstanceId, check: &Ready, pgid: i32, stop: &AtomicBool, inbox: &Inbox) {
    let mut said_taken = false;
    while !stop.load(Ordering::Relaxed) {
        let ready = match check {
            Ready::Started => true,
            Ready::Tcp(TcpCheck {
                host,
                port: TcpPort::Number(port),
            }) => match probe::tcp_listener(pgid, *host, *port) {
                TcpProbe::Ready => true,
                TcpProbe::NotListening => false,
                TcpProbe::TakenByAnother => {
                    if !std::mem::replace(&mut said_taken, true) {
                        let _ = inbox.send(Event::Probe(instance, Probed::PortTaken(*port)));
                    }
                    false
                }
            },
            // Resolved against the process's PORT when the group was read.
            Ready::Tcp(TcpCheck {
                port: TcpPort::FromEnv,
                ..
            }) => false,
            Ready::File(path) => probe::file_exists(path),
            // Not a probe: the table is told through the notify socket.
            Ready::Notify => return,
            // Read from its pipe by `read_ready_fd`; without one, never.
            Ready::Fd(_) => false,
        };
        if ready {
            let _ = inbox.send(Event::Probe(instance, Probed::Ready));
            return;
        }
        thread::sleep(PROBE_INTERVAL);
    }
}

/// Waits for a newline on the read end of a `ready=fd:N` pipe (s6's
/// notification fd), or for the loop to say stop. What comes before the
/// newline is ignored. End of file without a newline (the process closed
/// the fd, or exited) is said once: the process stays not ready, and its
/// ready timeout decides.
fn read_ready_fd(
    instance: InstanceId,
    name: String,
    pipe: &OwnedFd,
    stop: &AtomicBool,
    inbox: &Inbox,
) {
    let mut buf = Vec::with_capacity(512);
    while !stop.load(Ordering::Relaxed) {
        match fd::wait_readable(pipe.as_fd(), Some(PROBE_INTERVAL)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        buf.clear();
        match fd::read_appending(pipe.as_fd(), &mut buf) {
            Ok(0) => {
                if !stop.load(Ordering::Relaxed) {
                    let _ = inbox.send(Event::Probe(instance, Probed::FdClosed(name)));
                }
                return;
            }
            Ok(_) if buf.contains(&b'\n') => {
                let _ = inbox.send(Event::Probe(instance, Probed::Ready));
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Gives the terminal back to herd's own process group after the child
/// (which had it) is gone; failing that, the shell takes it back anyway.
fn reclaim_terminal() {
    let _ = process::give_terminal_to(process::own_process_group());
}

pub fn spawn_failure(program: &str, error: &io::Error) -> Failure {
    let doing = format!("executing {program}");
    match error.kind() {
        io::ErrorKind::NotFound if !program.contains('/') => {
            Failure::new(doing, "command not found").with_exit_code(EXIT_NOT_FOUND)
        }
        io::ErrorKind::NotFound => Failure::io(doing, error).with_exit_code(EXIT_NOT_FOUND),
        // Out of processes, memory or fds: herd could not start anything, the
        // command itself is not at fault.
        _ if matches!(
            error.raw_os_error(),
            Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE)
        ) =>
        {
            Failure::io(doing, error)
        }
        _ => Failure::io(doing, error).with_exit_code(EXIT_CANNOT_EXECUTE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_command_is_127_and_an_unrunnable_one_126() {
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        let failure = spawn_failure("nope", &missing);
        assert_eq!(failure.exit_code, 127);
        assert_eq!(failure.to_string(), "executing nope: command not found");
        let failure = spawn_failure("./nope", &missing);
        assert_eq!(failure.exit_code, 127);
        assert_eq!(
            failure.to_string(),
            "executing ./nope: no such file or directory"
        );
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(spawn_failure("./x", &denied).exit_code, 126);
        let no_processes = io::Error::from_raw_os_error(libc::EAGAIN);
        assert_eq!(spawn_failure("./x", &no_processes).exit_code, 125);
    }
}
