//! The supervisor loop of `herd run -- CMD` (signals in as events; the loop
//! owns the child's state and decides forwarding, reaping, stopping, SIGKILL
//! and the exit code), and the signal thread every supervisor loop uses.

use crate::cli::RunArgs;
use crate::control::{self, Command, Reply};
use crate::daemon::Service;
use crate::error::{Failure, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};
use crate::log::Verbose;
use crate::output;
use crate::signals;
use crate::sys::fd;
use crate::sys::process::{self, ChildSetup, Reap, WaitStatus};
use crate::sys::signal::{self, SignalSet};
use crate::sys::Pid;
use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Something the loop must react to. Other threads only send these; only the
/// loop changes state.
pub enum Event {
    Signal(i32),
    /// A request from the control socket, and where its reply goes.
    Control(Command, mpsc::Sender<Reply>),
}

/// How often the loop looks whether a process group has emptied when no
/// SIGCHLD may tell it (members that are not herd's children).
pub const GROUP_POLL: Duration = Duration::from_millis(50);

/// Runs `args.command` until it and its process group are gone; returns the
/// exit code herd must exit with.
pub fn run(args: RunArgs, service: &mut Service) -> Result<u8, Failure> {
    // Before any thread exists, so that every thread inherits the full mask
    // and signals reach only the signal thread's sigwaitinfo.
    let caller_mask = signal::block_all().map_err(|e| Failure::io("blocking signals", &e))?;
    let verbose = Verbose(args.verbose);
    let is_init = adopt_orphans(args.subreaper)?;
    let take_terminal = process::owns_terminal();
    // Under `herd start` the command writes to the log through herd, so that
    // its output follows the log when SIGUSR1 reopens it.
    let output_pipe = if service.writes_a_log() {
        Some(fd::pipe().map_err(|e| Failure::io("creating the output pipe", &e))?)
    } else {
        None
    };
    let output_write = output_pipe.as_ref().map(|(_, write_end)| write_end.as_fd());
    let pid = spawn(
        &args.command,
        &ChildSetup {
            mask: caller_mask,
            take_terminal,
            stdio: [None, output_write, output_write],
            env: &[],
        },
    )
    .inspect_err(|_| {
        if take_terminal {
            reclaim_terminal();
        }
    })?;
    let copier = match output_pipe {
        Some((read_end, write_end)) => {
            // herd must not hold the write end, or the copy never sees EOF.
            drop(write_end);
            let copier = output::Output::new(output::Style::default());
            copier
                .spawn_copier(read_end)
                .map_err(|e| Failure::io("starting the output thread", &e))?;
            Some(copier)
        }
        None => None,
    };
    // After the spawn: the child's exec overlaps the thread's start, and a
    // signal that comes first waits, blocked, until the thread takes it.
    let events = start_event_sources(service)?;
    verbose.note(format_args!(
        "spawned pid {pid}: {}",
        args.command[0].to_string_lossy()
    ));
    let mut watch = Watch {
        pid,
        status: None,
        kill_at: None,
        killed: false,
        started: Instant::now(),
        args: &args,
        verbose,
        has_terminal: take_terminal,
        service,
    };
    let status = watch.until_group_gone(&events)?;
    if take_terminal {
        reclaim_terminal();
    }
    if is_init {
        let defaults = &args.defaults;
        sweep_namespace(&events, defaults.stop_signal, defaults.grace, verbose)?;
    }
    if let Some(copier) = copier {
        copier.drain(output::OUTPUT_DRAIN);
    }
    Ok(exit_code(status))
}

/// Makes herd the reaper of orphaned descendants: as PID 1 it already is;
/// otherwise it registers as a child subreaper, unless `--no-subreaper`.
/// Returns whether herd is PID 1.
pub fn adopt_orphans(subreaper: bool) -> Result<bool, Failure> {
    let is_init = process::own_pid() == 1;
    if subreaper && !is_init {
        process::become_subreaper()
            .map_err(|e| Failure::io("registering as child subreaper", &e))?;
    }
    Ok(is_init)
}

/// The exit code that tells what happened to the child: its own code, or
/// 128+N for death by signal N (as shells report it).
pub fn exit_code(status: WaitStatus) -> u8 {
    match status {
        WaitStatus::Exited(code) => code as u8,
        WaitStatus::Signaled(signal) | WaitStatus::Stopped(signal) => (128 + signal) as u8,
    }
}

/// Events waiting for the loop; more than this many unhandled means the
/// loop is stuck, and their senders may as well wait.
const EVENT_QUEUE: usize = 64;

/// Starts the signal thread and, for a supervisor with a state directory,
/// the control socket; returns what the loop receives from them.
pub fn start_event_sources(service: &Service) -> Result<Receiver<Event>, Failure> {
    // A bounded channel allocates its buffer here, so the signal thread never
    // allocates: glibc would give it a malloc arena of its own on first use,
    // which costs more than the whole of a short `herd run`.
    let (sender, receiver) = mpsc::sync_channel(EVENT_QUEUE);
    if let Some(paths) = service.paths() {
        control::serve(paths, sender.clone())?;
    }
    let all = SignalSet::full();
    thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            while let Ok(signal) = signal::wait_for(&all) {
                if sender.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| Failure::io("starting the signal thread", &e))?;
    Ok(receiver)
}

fn spawn(command: &[OsString], setup: &ChildSetup) -> Result<Pid, Failure> {
    process::spawn(command, setup).map_err(|e| spawn_failure(&command[0].to_string_lossy(), &e))
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

/// Gives the terminal back to herd's own process group after the child
/// (which had it) is gone; failing that, the shell takes it back anyway.
fn reclaim_terminal() {
    let _ = process::give_terminal_to(process::own_process_group());
}

/// The state of the one supervised command and its process group.
struct Watch<'a> {
    service: &'a mut Service,
    /// The child's pid, which is also its process group id.
    pid: Pid,
    /// Set once the child has been reaped; from then on `pid` names only the
    /// process group, never a process.
    status: Option<WaitStatus>,
    /// When what is left of the group gets SIGKILL.
    kill_at: Option<Instant>,
    /// SIGKILL was sent: there is nothing left to ask politely.
    killed: bool,
    started: Instant,
    args: &'a RunArgs,
    verbose: Verbose,
    has_terminal: bool,
}

impl Watch<'_> {
    fn until_group_gone(&mut self, events: &Receiver<Event>) -> Result<WaitStatus, Failure> {
        loop {
            if let Some(status) = self.status {
                if !process::group_exists(self.pid) {
                    return Ok(status);
                }
            }
            let now = Instant::now();
            if self.kill_at.is_some_and(|at| at <= now) {
                self.kill_group();
            }
            // A waiting `herd start` hears "ready" once the command has
            // stayed up for the settle time; if it exits first, the start
            // fails with its status.
            let report_at = self.started + self.service.settle;
            if self.status.is_none() && self.service.awaits_report() && report_at <= now {
                self.service.ready();
            }
            let mut wait = self.kill_at.map(|at| at.saturating_duration_since(now));
            if self.status.is_none() && self.service.awaits_report() {
                let until_report = report_at.saturating_duration_since(now);
                wait = Some(wait.map_or(until_report, |w| w.min(until_report)));
            }
            if self.status.is_some() {
                wait = Some(wait.map_or(GROUP_POLL, |w| w.min(GROUP_POLL)));
            }
            match next_event(events, wait)? {
                Some(Event::Signal(libc::SIGCHLD)) => {
                    self.reap_all()?;
                }
                Some(Event::Signal(libc::SIGUSR1)) if self.service.reopen_log() => {}
                Some(Event::Signal(signal)) => self.forward(signal),
                Some(Event::Control(command, reply_to)) => {
                    let _ = reply_to.send(self.control(command));
                }
                None => {}
            }
        }
    }

    fn reap_all(&mut self) -> Result<(), Failure> {
        reap_children(self.verbose, |pid, status| {
            if pid != self.pid {
                return false;
            }
            match status {
                WaitStatus::Stopped(signal) => self.follow_into_background(signal),
                _ => self.child_exited(status),
            }
            true
        })
        .map(drop)
    }

    fn child_exited(&mut self, status: WaitStatus) {
        self.status = Some(status);
        let name = self.args.command[0].to_string_lossy();
        self.service.stop_reason = Some(format!("{name} ended ({})", describe(status)));
        self.verbose.note(format_args!(
            "reaped pid {} ({})",
            self.pid,
            describe(status)
        ));
        if !self.killed && process::group_exists(self.pid) {
            let signal = self.args.defaults.stop_signal;
            self.verbose.note(format_args!(
                "sending {} to what is left of process group {}",
                signals::name(signal),
                self.pid
            ));
            let _ = process::send_group_signal(self.pid, signal);
            self.start_grace();
        }
    }

    /// The user pressed Ctrl-Z (or the child read from the terminal in the
    /// background): herd stops too, so that the shell sees its job stopped.
    fn follow_into_background(&mut self, signal: i32) {
        if !self.has_terminal || !matches!(signal, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
            return;
        }
        self.verbose.note(format_args!(
            "child stopped by {}; stopping too",
            signals::name(signal)
        ));
        let _ = process::stop_self();
    }

    fn forward(&mut self, signal: i32) {
        if signal == libc::SIGCONT && self.has_terminal {
            // Resumed by the shell's `fg`: the terminal goes back to the child.
            if process::terminal_foreground() == Some(process::own_process_group()) {
                let _ = process::give_terminal_to(self.pid);
            }
        }
        // After the child is gone, only its group is left to forward to; and
        // SIGCONT must wake every member a Ctrl-Z stopped.
        let to_group = self.args.group_signal || self.status.is_some() || signal == libc::SIGCONT;
        let target = if to_group { "process group" } else { "pid" };
        self.verbose.note(format_args!(
            "forwarding {} to {target} {}",
            signals::name(signal),
            self.pid
        ));
        let _ = if to_group {
            process::send_group_signal(self.pid, signal)
        } else {
            process::send_signal(self.pid, signal)
        };
        if signals::is_stop_request(signal) {
            self.start_grace();
        }
    }

    /// A single command answers `status` and `stop`; the rest needs a group.
    fn control(&mut self, command: Command) -> Reply {
        match command {
            Command::Status => {
                let (state, pid) = match self.status {
                    None => ("running", self.pid.to_string()),
                    Some(_) => ("stopping", "-".to_string()),
                };
                let name = self.args.command[0].to_string_lossy().into_owned();
                Reply::Ok(control::status_fields(&[control::ProcessStatus {
                    name,
                    state,
                    pid,
                    uptime: self.started.elapsed(),
                    restarts: 0,
                    last_exit: self.status.map(describe),
                }]))
            }
            Command::Stop => {
                self.forward(self.args.defaults.stop_signal);
                self.start_grace();
                Reply::Ok(Vec::new())
            }
            _ => Reply::Error(
                "a single command answers status and stop only; use a group (-c, -f)".into(),
            ),
        }
    }

    fn start_grace(&mut self) {
        if self.kill_at.is_none() && !self.killed {
            self.kill_at = Some(Instant::now() + self.args.defaults.grace);
            self.verbose.note(format_args!(
                "process group {} gets SIGKILL in {:?} if still alive",
                self.pid, self.args.defaults.grace
            ));
        }
    }

    fn kill_group(&mut self) {
        self.verbose.note(format_args!(
            "grace of {:?} ran out: sending SIGKILL to process group {}",
            self.args.defaults.grace, self.pid
        ));
        let _ = process::send_group_signal(self.pid, libc::SIGKILL);
        self.kill_at = None;
        self.killed = true;
    }
}

/// As PID 1, herd's exit kills every process left in the namespace with
/// SIGKILL; give them `signal` and the `grace` period first, reaping them as
/// they go.
pub fn sweep_namespace(
    events: &Receiver<Event>,
    signal: i32,
    grace: Duration,
    verbose: Verbose,
) -> Result<(), Failure> {
    if process::send_signal_to_all(signal).is_err() {
        return Ok(());
    }
    verbose.note(format_args!(
        "sent {} to every process left in the namespace",
        signals::name(signal)
    ));
    let mut kill_at = Some(Instant::now() + grace);
    while reap_children(verbose, |_, _| false)? {
        let now = Instant::now();
        if kill_at.is_some_and(|at| at <= now) {
            verbose.note(format_args!(
                "grace ran out: sending SIGKILL to every process left"
            ));
            let _ = process::send_signal_to_all(libc::SIGKILL);
            kill_at = None;
        }
        let wait = kill_at.map_or(GROUP_POLL, |at| {
            at.saturating_duration_since(now).min(GROUP_POLL)
        });
        next_event(events, Some(wait))?;
    }
    Ok(())
}

/// Reaps every child that has changed state (and sees every stopped one).
/// `ours` handles those it knows and returns false for any other; an orphan
/// herd adopted and reaped is logged. Returns false once herd has no child
/// left at all.
pub fn reap_children(
    verbose: Verbose,
    mut ours: impl FnMut(Pid, WaitStatus) -> bool,
) -> Result<bool, Failure> {
    loop {
        match process::reap_one().map_err(|e| Failure::io("reaping children", &e))? {
            Reap::Changed(pid, status) => {
                if !ours(pid, status) && !matches!(status, WaitStatus::Stopped(_)) {
                    verbose.note(format_args!(
                        "reaped adopted pid {pid} ({})",
                        describe(status)
                    ));
                }
            }
            Reap::NothingYet => return Ok(true),
            Reap::NoChildren => return Ok(false),
        }
    }
}

/// The next event, or `None` when `wait` passes first (`None` waits forever).
pub fn next_event(
    events: &Receiver<Event>,
    wait: Option<Duration>,
) -> Result<Option<Event>, Failure> {
    let lost = || Failure::new("waiting for signals", "the signal thread stopped");
    match wait {
        None => events.recv().map(Some).map_err(|_| lost()),
        Some(wait) => match events.recv_timeout(wait) {
            Ok(event) => Ok(Some(event)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(lost()),
        },
    }
}

pub fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(code) => format!("exit {code}"),
        WaitStatus::Signaled(signal) => format!("killed by {}", signals::name(signal)),
        WaitStatus::Stopped(signal) => format!("stopped by {}", signals::name(signal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(WaitStatus::Exited(0)), 0);
        assert_eq!(exit_code(WaitStatus::Exited(255)), 255);
        assert_eq!(exit_code(WaitStatus::Signaled(libc::SIGTERM)), 143);
        assert_eq!(exit_code(WaitStatus::Signaled(libc::SIGKILL)), 137);
    }

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
