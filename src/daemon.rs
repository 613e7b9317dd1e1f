//! A supervisor's state directory: where it is, the pid file locked for the
//! supervisor's whole life, and detaching into the background (`herd start`).

use crate::cli::{Detach, Target};
use crate::error::Failure;
use crate::sys::daemon::{self as sys, Forked};
use crate::sys::fd;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where one supervisor keeps its pid file, control socket and log.
#[derive(Clone, Debug, PartialEq)]
pub struct StatePaths {
    /// How messages name it: the `--name`, or the pid file's path.
    pub name: String,
    /// The state directory, when there is one (`--name`, `--state-dir`).
    pub dir: Option<PathBuf>,
    pub pid: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl StatePaths {
    fn relative_to(self, base: &Path) -> StatePaths {
        StatePaths {
            name: self.name,
            dir: self.dir.map(|dir| base.join(dir)),
            pid: base.join(self.pid),
            socket: base.join(self.socket),
            log: base.join(self.log),
        }
    }
}

/// Resolves `--name`, `--state-dir` and `--pidfile`. `None`: none given.
pub fn resolve(
    name: Option<&str>,
    state_dir: Option<&Path>,
    pidfile: Option<&Path>,
) -> Result<Option<StatePaths>, Failure> {
    let dir = match (name, state_dir) {
        (_, Some(dir)) => Some(dir.to_path_buf()),
        (Some(name), None) => Some(default_base().join(name)),
        (None, None) => None,
    };
    let Some(dir) = dir else {
        return Ok(pidfile.map(|pid| StatePaths {
            name: pid.display().to_string(),
            dir: None,
            pid: pid.to_path_buf(),
            socket: with_suffix(pid, ".sock"),
            log: with_suffix(pid, ".log"),
        }));
    };
    let name = match name {
        Some(name) => name.to_string(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Failure::new("reading arguments", "--state-dir needs a directory name")
            })?,
    };
    Ok(Some(StatePaths {
        name,
        pid: pidfile.map_or_else(|| dir.join("pid"), Path::to_path_buf),
        socket: dir.join("control.sock"),
        log: dir.join("log"),
        dir: Some(dir),
    }))
}

/// `/run/herd` for root, `$XDG_RUNTIME_DIR/herd` otherwise, or
/// `/tmp/herd-UID` where there is no runtime directory. A relative
/// `XDG_RUNTIME_DIR` is none: the XDG Base Directory specification says to
/// ignore it, and a client run from another directory would look elsewhere.
fn default_base() -> PathBuf {
    let uid = sys::own_uid();
    if uid == 0 {
        return PathBuf::from("/run/herd");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if Path::new(&runtime).is_absolute() => PathBuf::from(runtime).join("herd"),
        _ => PathBuf::from(format!("/tmp/herd-{uid}")),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

/// The pid file, locked: proof that this process is the one supervisor of
/// its state directory. Held until `release` (or until the process dies,
/// when the kernel drops the lock, which is how a stale one is recognised).
pub struct PidLock {
    file: File,
    pub paths: StatePaths,
    /// The pid file was there, left by a herd that died: what that herd
    /// left in the state directory is this one's now.
    took_over: bool,
    /// The state directory is herd's to remove (once empty): this herd
    /// created it, or took it over.
    owns_dir: bool,
    /// The state directory's log is herd's to remove after a clean end:
    /// this herd created it, or took it over.
    owns_log: bool,
}

impl PidLock {
    /// Takes the lock, or says who holds it. A stale directory (no lock
    /// held) is taken over.
    pub fn acquire(paths: &StatePaths) -> Result<PidLock, Failure> {
        let mut made_dir = match &paths.dir {
            Some(dir) => {
                let made = create_dir(dir).map_err(|e| cannot_create(dir, &e))?;
                check_private(dir)?;
                let shared_base = default_base();
                if shared_base.starts_with("/tmp") && dir.parent() == Some(shared_base.as_path()) {
                    check_private(&shared_base)?;
                }
                made
            }
            None => false,
        };
        let doing = || format!("locking {}", paths.pid.display());
        loop {
            let (file, existed) = match (open_pid_file(&paths.pid), &paths.dir) {
                (Ok(opened), _) => opened,
                // The herd that held the lock removed its state directory on
                // its way out, after this one had found it: make it again.
                (Err(e), Some(dir))
                    if e.kind() == std::io::ErrorKind::NotFound
                        && create_dir(dir).is_ok_and(|made| made) =>
                {
                    made_dir = true;
                    continue;
                }
                (Err(e), _) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(Failure::new(doing(), "it is a symbolic link"));
                }
                (Err(e), _) => return Err(Failure::io(doing(), &e)),
            };
            check_own_pid_file(&file, &doing)?;
            if !lock_patiently(&file).map_err(|e| Failure::io(doing(), &e))? {
                return Err(already_running(paths, &file));
            }
            // A supervisor that was exiting may have unlinked the file we
            // opened just before we locked it: then lock the new one.
            let opened = file.metadata().map_err(|e| Failure::io(doing(), &e))?;
            match fs::metadata(&paths.pid) {
                Ok(now) if now.ino() == opened.ino() && now.dev() == opened.dev() => {}
                _ => continue,
            }
            let _ = fs::remove_file(&paths.socket);
            return Ok(PidLock {
                file,
                paths: paths.clone(),
                took_over: existed,
                owns_dir: made_dir || existed,
                owns_log: false,
            });
        }
    }

    /// Writes the supervisor's pid (after the lock is held, so a reader that
    /// finds the file locked and empty knows a start is under way).
    pub fn write_pid(&self, pid: i32) -> Result<(), Failure> {
        let doing = || format!("writing {}", self.paths.pid.display());
        self.file.set_len(0).map_err(|e| Failure::io(doing(), &e))?;
        self.file
            .write_all_at(format!("{pid}\n").as_bytes(), 0)
            .map_err(|e| Failure::io(doing(), &e))
    }

    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Removes the state files, then lets the lock go (unlinking while still
    /// holding it, so no second supervisor can lock the old file and win).
    /// `clean`: the supervisor ended well, and its log in the state
    /// directory goes too if it is herd's; otherwise the log stays for the
    /// user to read. Only what herd created (or took over) is removed.
    pub fn release(self, clean: bool) {
        self.remove_files(clean);
        // The lock goes when the process ends, not before: whoever waits for
        // it to go (`herd stop`, a failed `herd start`) then knows the
        // supervisor is gone, not just finishing.
        std::mem::forget(self.file);
    }

    fn remove_files(&self, clean: bool) {
        let _ = fs::remove_file(&self.paths.socket);
        let _ = fs::remove_file(&self.paths.pid);
        if clean && self.owns_log {
            let _ = fs::remove_file(&self.paths.log);
        }
        if let Some(dir) = &self.paths.dir {
            let _ = fs::remove_file(dir.join(crate::scoreboard::FILE));
        }
        match &self.paths.dir {
            Some(dir) if self.owns_dir => drop(fs::remove_dir(dir)),
            _ => {}
        }
    }
}

/// Creates the state directory, and any missing parent, with mode 0700.
/// Returns whether the directory itself was created here.
fn create_dir(dir: &Path) -> std::io::Result<bool> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why the state directory cannot be made, with where else it may go: on a
/// read-only root file system (a container's), or under a runtime
/// directory that is not the user's, only another directory will do.
fn cannot_create(dir: &Path, error: &std::io::Error) -> Failure {
    let mut failure = Failure::io(format!("creating {}", dir.display()), error);
    let unwritable = [libc::EROFS, libc::EACCES, libc::EPERM];
    if error
        .raw_os_error()
        .is_some_and(|e| unwritable.contains(&e))
    {
        let runtime = if sys::own_uid() == 0 {
            ""
        } else {
            " or set XDG_RUNTIME_DIR to"
        };
        failure.cause = format!(
            "{} (give --state-dir{runtime} a writable directory)",
            failure.cause
        );
    }
    failure
}

/// Opens the pid file for reading and writing, creating it (mode 0600) if
/// need be. Returns whether it was there before. Only herd's user may open
/// it: whoever can open it can lock it, and so hold a start off for ever
/// (flock needs no write access). A symbolic link is not followed, so that
/// a link planted in a shared directory cannot make herd truncate another
/// file.
fn open_pid_file(path: &Path) -> std::io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW);
    // Either step can lose a race with a herd that removes or creates the
    // file; the other then wins.
    loop {
        match options.clone().create_new(true).open(path) {
            Ok(file) => return Ok((file, false)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match options.open(path) {
            Ok(file) => return Ok((file, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

/// How long a start keeps trying to lock the pid file before it says that
/// a herd is running: `herd status` and `herd stop` take a shared lock on
/// it for a moment, to see whether anyone holds one, and a start that met
/// one of them would otherwise fail now and then.
const LOCK_PATIENCE: Duration = Duration::from_millis(50);

/// How long a start waits between two tries; a tester's lock lasts a few
/// microseconds.
const LOCK_RETRY: Duration = Duration::from_millis(2);

fn lock_patiently(file: &File) -> std::io::Result<bool> {
    let until = Instant::now() + LOCK_PATIENCE;
    loop {
        if sys::try_lock_exclusive(file)? {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(LOCK_RETRY);
    }
}

/// A pid file that another user made (in a shared directory such as /tmp)
/// is theirs to lock and to write: refused.
fn check_own_pid_file(file: &File, doing: &dyn Fn() -> String) -> Result<(), Failure> {
    let meta = file.metadata().map_err(|e| Failure::io(doing(), &e))?;
    if meta.uid() != sys::own_uid() {
        return Err(Failure::new(doing(), "it belongs to another user"));
    }
    Ok(())
}

/// A state directory (and a base under /tmp, where anyone may create one
/// first) must be this user's and writable by nobody else.
fn check_private(dir: &Path) -> Result<(), Failure> {
    let meta =
        fs::metadata(dir).map_err(|e| Failure::io(format!("checking {}", dir.display()), &e))?;
    if meta.uid() != sys::own_uid() || meta.mode() & 0o022 != 0 {
        return Err(Failure::new(
            format!("checking {}", dir.display()),
            "it belongs to another user or others may write to it",
        ));
    }
    Ok(())
}

/// `NAME is already running (pid N)`; the pid is read with a short wait,
/// since the winner of a race writes it just after taking the lock.
fn already_running(paths: &StatePaths, file: &File) -> Failure {
    let until = Instant::now() + Duration::from_millis(500);
    let pid = loop {
        let mut text = String::new();
        let _ = (&*file).read_to_string(&mut text);
        let _ = std::io::Seek::rewind(&mut &*file);
        match text.trim().parse::<i32>() {
            Ok(pid) => break Some(pid),
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let pid = pid.map_or("pid unknown".to_string(), |pid| format!("pid {pid}"));
    Failure::message(format!("{} is already running ({pid})", paths.name))
}

/// What the pid file says about a supervisor.
#[derive(Debug, PartialEq)]
pub enum Liveness {
    /// Nobody holds the lock (or there is no pid file).
    NotRunning,
    /// The lock is held; the pid, once the supervisor has written it.
    Running(Option<i32>),
    /// The pid file cannot be read.
    Unknown(String),
}

/// Whether a supervisor holds `paths`' lock now.
pub fn liveness(paths: &StatePaths) -> Liveness {
    let file = match File::open(&paths.pid) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Liveness::NotRunning,
        Err(e) => return Liveness::Unknown(crate::error::describe(&e)),
    };
    match sys::is_locked(&file) {
        Ok(false) => Liveness::NotRunning,
        Ok(true) => {
            let pid = fs::read_to_string(&paths.pid)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            Liveness::Running(pid)
        }
        Err(e) => Liveness::Unknown(crate::error::describe(&e)),
    }
}

/// Waits until no supervisor holds `paths`' lock (the lock goes only when
/// the supervisor's process ends), for at most `timeout`. Returns whether it
/// is gone. With the pid of the supervisor waited for, a lock taken by a new
/// one (that has written another pid, or none yet) means it is gone too:
/// a `herd start` may follow its exit at once.
pub fn wait_for_exit(paths: &StatePaths, supervisor: Option<i32>, timeout: Duration) -> bool {
    // A timeout past what an Instant can hold is no timeout.
    let until = Instant::now().checked_add(timeout);
    let still_there = || match liveness(paths) {
        Liveness::NotRunning => false,
        Liveness::Running(pid) => supervisor.is_none() || pid == supervisor,
        Liveness::Unknown(_) => true,
    };
    while still_there() {
        if until.is_some_and(|until| Instant::now() >= until) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The write end of the pipe on which a detached supervisor tells the
/// process that ran `herd start` how the start went.
pub struct StartReport(OwnedFd);

impl StartReport {
    /// The group is ready: `herd start` exits 0.
    pub fn ready(self) {
        let _ = fd::write_all(self.0.as_fd(), b"ready\n");
    }

    /// The start failed: `herd start` prints `message` and exits `code`.
    pub fn failed(self, code: u8, message: &str) {
        let _ = fd::write_all(
            self.0.as_fd(),
            format!("failed {code} {message}\n").as_bytes(),
        );
    }
}

/// Detaches: fork, `setsid`, fork, chdir, umask, stdin from /dev/null,
/// stdout and stderr to `log`, every other fd closed. Returns in the
/// supervisor (with the report pipe) only; the process that called it waits
/// for the report and exits with what it says.
/// Also returns whether the log was created, not appended to.
pub fn detach(
    lock: &PidLock,
    log: &Path,
    umask: u32,
    chdir: &Path,
) -> Result<(StartReport, bool), Failure> {
    let (report_read, report_write) = fd::pipe().map_err(|e| Failure::io("creating a pipe", &e))?;
    let detaching = |e: std::io::Error| Failure::io("detaching", &e);
    if let Forked::Parent = sys::fork_single_threaded().map_err(detaching)? {
        drop(report_write);
        // Only the supervisor reads signals from a signalfd: Ctrl-C on a
        // waiting `herd start` ends the wait, as for any command.
        crate::sys::signal::restore_caller_mask();
        std::process::exit(wait_for_report(report_read, &lock.paths, log).into());
    }
    drop(report_read);
    match become_daemon(lock, log, umask, chdir, &report_write) {
        Ok(created_log) => Ok((StartReport(report_write), created_log)),
        Err(failure) => {
            // The caller is waiting for the report, not for this process:
            // tell it, and leave no state behind.
            lock.remove_files(false);
            StartReport(report_write).failed(failure.exit_code, &failure.to_string());
            sys::exit_now(failure.exit_code.into());
        }
    }
}

/// The detached half of `detach`, in the first child. Returns whether the
/// log was created.
fn become_daemon(
    lock: &PidLock,
    log: &Path,
    umask: u32,
    chdir: &Path,
    report: &OwnedFd,
) -> Result<bool, Failure> {
    let detaching = |e: std::io::Error| Failure::io("detaching", &e);
    sys::new_session().map_err(detaching)?;
    if let Forked::Parent = sys::fork_single_threaded().map_err(detaching)? {
        // The session leader goes, so the supervisor can never get a
        // controlling terminal back.
        sys::exit_now(0);
    }
    std::env::set_current_dir(chdir)
        .map_err(|e| Failure::io(format!("changing to {}", chdir.display()), &e))?;
    sys::set_umask(umask);
    let null = File::open("/dev/null").map_err(|e| Failure::io("opening /dev/null", &e))?;
    let (log_file, created_log) = open_new_log(log)?;
    sys::redirect(null.as_fd(), 0).map_err(detaching)?;
    sys::redirect(log_file.as_fd(), 1).map_err(detaching)?;
    sys::redirect(log_file.as_fd(), 2).map_err(detaching)?;
    drop((null, log_file));
    sys::close_other_fds(&[lock.fd(), report.as_raw_fd()]).map_err(detaching)?;
    Ok(created_log)
}

/// Opens (or creates) the log for appending.
pub fn open_log(path: &Path) -> Result<File, Failure> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| Failure::io(format!("opening {}", path.display()), &e))
}

/// Opens the log as `open_log` does; also returns whether it was created.
fn open_new_log(path: &Path) -> Result<(File, bool), Failure> {
    let created = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o644)
        .open(path);
    match created {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((open_log(path)?, false)),
        Err(e) => Err(Failure::io(format!("opening {}", path.display()), &e)),
    }
}

/// In the process that ran `herd start`: reads the supervisor's report and
/// turns it into an exit code and, on failure, one line on stderr.
fn wait_for_report(pipe: OwnedFd, paths: &StatePaths, log: &Path) -> u8 {
    let mut text = String::new();
    let _ = File::from(pipe).read_to_string(&mut text);
    if text.starts_with("ready") {
        return 0;
    }
    if let Some(rest) = text.strip_prefix("failed ") {
        let (code, message) = rest.trim_end().split_once(' ').unwrap_or((rest, ""));
        crate::log::line(format_args!("{message}"));
        // So that a script may try again at once: the failed supervisor
        // holds its lock until it has exited.
        wait_for_exit(paths, None, Duration::from_secs(5));
        return code.parse().unwrap_or(crate::error::EXIT_HERD_FAILED);
    }
    crate::log::line(format_args!(
        "starting {}: the supervisor ended before it was ready (see {})",
        paths.name,
        log.display()
    ));
    crate::error::EXIT_HERD_FAILED
}

/// What a supervisor serves besides its processes: the lock on its state
/// directory (and so its control socket), the report `herd start` waits
/// for, and the log it reopens on SIGUSR1.
pub struct Service {
    lock: Option<PidLock>,
    report: Option<StartReport>,
    /// `herd start --settle`: how long a process without a ready check must
    /// stay up before the start counts as a success.
    pub settle: Duration,
    log: Option<PathBuf>,
    /// Why the supervisor stopped, for a `herd start` that never got ready.
    pub stop_reason: Option<String>,
}

impl Service {
    /// `herd run`: a state directory only if one was asked for.
    pub fn foreground(target: &Target) -> Result<Service, Failure> {
        let lock = match resolve_target(target)? {
            Some(paths) => Some(PidLock::acquire(&paths)?),
            None => None,
        };
        if let Some(lock) = &lock {
            lock.write_pid(std::process::id() as i32)?;
        }
        Ok(Service {
            lock,
            report: None,
            settle: Duration::ZERO,
            log: None,
            stop_reason: None,
        })
    }

    /// `herd start`: takes the lock (so a second start is refused at once,
    /// on the caller's terminal), then detaches. Returns in the supervisor.
    pub fn detached(target: &Target, settings: &Detach) -> Result<Service, Failure> {
        let here = std::env::current_dir()
            .map_err(|e| Failure::io("finding the current directory", &e))?;
        // Absolute before --chdir moves the supervisor elsewhere.
        let paths = resolve_target(target)?
            .expect("start requires a target")
            .relative_to(&here);
        let log = here.join(settings.log.as_ref().unwrap_or(&paths.log));
        let chdir = here.join(settings.chdir.as_ref().unwrap_or(&here));
        let mut lock = PidLock::acquire(&paths)?;
        let (report, created_log) = detach(&lock, &log, settings.umask, &chdir)?;
        // Only the state directory's own log: one given with --log, or
        // next to a --pidfile, is the user's to keep.
        lock.owns_log =
            settings.log.is_none() && paths.dir.is_some() && (created_log || lock.took_over);
        lock.write_pid(std::process::id() as i32)?;
        Ok(Service {
            lock: Some(lock),
            report: Some(report),
            settle: settings.settle,
            log: Some(log),
            stop_reason: None,
        })
    }

    /// The state directory was left by a supervisor that died, and is
    /// this one's now, with whatever that one left running.
    pub fn took_over(&self) -> bool {
        self.lock.as_ref().is_some_and(|lock| lock.took_over)
    }

    pub fn paths(&self) -> Option<&StatePaths> {
        self.lock.as_ref().map(|lock| &lock.paths)
    }

    /// Whether a `herd start` still waits to hear that the group is ready.
    pub fn awaits_report(&self) -> bool {
        self.report.is_some()
    }

    /// Everything is started and ready: `herd start` may return.
    pub fn ready(&mut self) {
        if let Some(report) = self.report.take() {
            report.ready();
        }
    }

    /// Whether herd's stdout and stderr are a log it reopens on SIGUSR1.
    pub fn writes_a_log(&self) -> bool {
        self.log.is_some()
    }

    /// On SIGUSR1: reopens the log (which logrotate has moved away) as
    /// stdout and stderr. `false`: there is no log, the signal is the
    /// processes'.
    pub fn reopen_log(&self) -> bool {
        let Some(path) = &self.log else { return false };
        if let Ok(file) = open_log(path) {
            let _ = sys::redirect(file.as_fd(), 1);
            let _ = sys::redirect(file.as_fd(), 2);
        }
        true
    }

    /// The supervisor is done: tells a waiting `herd start` why, if it was
    /// never ready, and removes the state files.
    pub fn finish(mut self, result: &Result<u8, Failure>) {
        let clean = matches!(result, Ok(0)) && self.report.is_none();
        if let Some(report) = self.report.take() {
            let name = self.paths().map_or(String::new(), |p| p.name.clone());
            let log = self
                .log
                .as_ref()
                .map_or(String::new(), |l| l.display().to_string());
            match result {
                Err(failure) => report.failed(failure.exit_code, &failure.to_string()),
                Ok(code) => {
                    let reason = self.stop_reason.as_deref().unwrap_or("it stopped");
                    let code = if *code == 0 {
                        crate::error::EXIT_HERD_FAILED
                    } else {
                        *code
                    };
                    report.failed(
                        code,
                        &format!("{name} did not get ready: {reason} (see {log})"),
                    );
                }
            }
        }
        if let Some(lock) = self.lock.take() {
            lock.release(clean);
        }
    }
}

/// The state paths a `--name`, `--state-dir` or `--pidfile` gives.
pub fn resolve_target(target: &Target) -> Result<Option<StatePaths>, Failure> {
    resolve(
        target.name.as_deref(),
        target.state_dir.as_deref(),
        target.pidfile.as_deref(),
    )
}
