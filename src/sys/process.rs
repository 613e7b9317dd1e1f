//! Spawning children with a clean signal state (and with sockets handed
//! over, systemd-style), reaping, signalling and the terminal's foreground
//! process group.

use super::signal::{self, SignalSet};
use super::{check, retry_eintr, Pid};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::{io, mem, mem::MaybeUninit, ptr};

/// What a child must look like when it execs.
pub struct ChildSetup<'a> {
    /// The signal mask the program gets (herd's caller's, not herd's).
    pub mask: SignalSet,
    /// Make the child's new process group the terminal's foreground group.
    pub take_terminal: bool,
    /// What the child gets as fds 0, 1 and 2; `None` passes herd's own on.
    pub stdio: [Option<BorrowedFd<'a>>; 3],
    /// Variables set on top of (or instead of) herd's environment.
    pub env: &'a [(String, String)],
    /// Sockets the child gets at fds 3, 4, ..., announced in `LISTEN_FDS`,
    /// `LISTEN_FDNAMES` (these names, joined with ':') and `LISTEN_PID`.
    pub sockets: &'a [BorrowedFd<'a>],
    pub socket_names: &'a str,
    /// Variables whose value is the child's own pid (`WATCHDOG_PID`), which
    /// only the child can know: it is forked to write them.
    pub pid_variables: &'a [&'a str],
    /// A pipe's write end, and the fd number the child gets it at.
    pub ready_fd: Option<(BorrowedFd<'a>, i32)>,
    /// Start the child in a session of its own (`setsid`, as dumb-init
    /// does) rather than only a process group of its own.
    pub new_session: bool,
    /// In its new session, make the terminal on stdin its controlling
    /// terminal (which `release_terminal` freed).
    pub claim_terminal: bool,
    /// The signal the child gets when herd dies (`PR_SET_PDEATHSIG`), so
    /// that a killed herd leaves no process running.
    pub death_signal: Option<i32>,
}

/// The variables that hand sockets over: herd's own (from systemd) never
/// reach a child; a child that gets sockets gets fresh ones.
const LISTEN_VARIABLES: [&str; 3] = ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"];

/// Room for the digits of any pid (pid_t is 32 bits).
const PID_DIGITS: usize = 10;

/// The kernel's `sigset_t`, 64 signals, for `rt_sigaction(2)` (every Linux
/// architecture but MIPS).
const KERNEL_SIGSET_BYTES: libc::size_t = 8;

/// Starts `argv[0]` (searched in PATH) with `argv` and herd's environment, in
/// a new process group (or session) of its own, with every signal at its default action
/// and `setup.mask` as its mask.
///
/// A child with no fds beyond stdio is started with glibc's `posix_spawnp`,
/// which runs it with CLONE_VFORK: herd's memory is not copied, nothing of
/// ours runs in the child, and the child's exec errno comes back as this
/// call's error, so an exec failure is never guessed from an exit code.
/// A child that gets sockets needs its own pid in `LISTEN_PID`, which only
/// the child can know, and posix_spawn cannot ask for a parent-death signal
/// or a controlling terminal: those children are started by herd's own
/// clone of the same kind (see `spawn_forked`), which runs code of ours
/// in the child.
pub fn spawn(argv: &[OsString], setup: &ChildSetup) -> io::Result<LivePid> {
    let argv = c_strings(argv.iter().map(|arg| arg.as_bytes().to_vec()))?;
    let gets_sockets = !setup.sockets.is_empty();
    let mut pid_variables = setup.pid_variables.to_vec();
    if gets_sockets {
        pid_variables.push("LISTEN_PID");
    }
    let overridden = |key: &[u8]| {
        setup.env.iter().any(|(set, _)| key == set.as_bytes())
            || LISTEN_VARIABLES
                .iter()
                .chain(&pid_variables)
                .any(|listen| key == listen.as_bytes())
    };
    let inherited = std::env::vars_os()
        .filter(|(key, _)| !overridden(key.as_bytes()))
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()));
    let set = setup
        .env
        .iter()
        .filter(|(key, _)| !(gets_sockets && LISTEN_VARIABLES.contains(&key.as_str())))
        .filter(|(key, _)| !pid_variables.contains(&key.as_str()))
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()));
    let announced = gets_sockets.then(|| {
        [
            (
                b"LISTEN_FDS".to_vec(),
                setup.sockets.len().to_string().into_bytes(),
            ),
            (
                b"LISTEN_FDNAMES".to_vec(),
                setup.socket_names.as_bytes().to_vec(),
            ),
        ]
    });
    let envp = c_strings(
        inherited
            .chain(set)
            .chain(announced.into_iter().flatten())
            .map(|(mut pair, value)| {
                pair.push(b'=');
                pair.extend_from_slice(&value);
                pair
            }),
    )?;
    // posix_spawn has no way to take a controlling terminal.
    // Nor to ask for a parent-death signal.
    if !pid_variables.is_empty()
        || setup.ready_fd.is_some()
        || setup.claim_terminal
        || setup.death_signal.is_some()
    {
        return spawn_forked(&argv, envp, &pid_variables, setup);
    }
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);
    let attributes = SpawnAttributes::new(setup.mask, setup.new_session)?;
    let actions = SpawnFileActions::new(setup)?;
    let mut pid: Pid = 0;
    // SAFETY: every pointer is valid for the call: `argv_ptrs`/`envp_ptrs`
    // are null-terminated arrays of pointers into the CStrings alive above;
    // the attributes and file actions were initialised by their constructors.
    let rc = unsafe {
        libc::posix_spawnp(
            &mut pid,
            argv_ptrs[0],
            &actions.0,
            &attributes.0,
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
        )
    };
    let program = argv
        .first()
        .map_or(OsStr::new(""), |p| OsStr::from_bytes(p.as_bytes()));
    if rc == libc::EACCES && resolve_program(program).is_err_and(is_not_found) {
        // glibc's search counts a PATH directory this user may not enter
        // (`/root/.local/bin` in the PATH of an image run as another user)
        // as a file found but not executable; nothing was found at all.
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(LivePid(pid))
}

fn is_not_found(error: io::Error) -> bool {
    error.raw_os_error() == Some(libc::ENOENT)
}

/// Everything the forked child does, prepared before the fork: between fork
/// and exec the child of a threaded process may only make async-signal-safe
/// calls, so it allocates nothing, formats nothing and takes no lock.
struct ForkPlan {
    program: *const libc::c_char,
    argv: *const *mut libc::c_char,
    envp: *const *mut libc::c_char,
    /// Where the child writes its pid's digits, then a NUL, once for each
    /// variable that holds its pid.
    pid_digits: Vec<*mut u8>,
    /// dup2(source, target) in order; every source is above every target,
    /// so no move overwrites a source a later one needs.
    moves: Vec<(libc::c_int, libc::c_int)>,
    /// Fd ranges (first, last) the child marks close-on-exec: when it gets
    /// fds at fixed numbers, all but its targets, so that an fd herd
    /// inherited without the flag does not reach it either.
    other_fds: Vec<(libc::c_uint, libc::c_uint)>,
    take_terminal: bool,
    new_session: bool,
    claim_terminal: bool,
    /// The parent-death signal (0: none), and herd's pid, which the child
    /// checks after asking for it: herd may have died before.
    death_signal: libc::c_int,
    parent: Pid,
    highest_signal: libc::c_int,
    default_action: libc::sigaction,
    mask: libc::sigset_t,
    /// The write end of the pipe on which an exec failure's errno goes back.
    error_pipe: libc::c_int,
}

/// clone(CLONE_VM | CLONE_VFORK) + execve, for a child posix_spawn cannot
/// make (fds beyond stdio, its own pid in a variable, a parent-death
/// signal, a controlling terminal). The child reports
/// an exec failure's errno on a close-on-exec pipe, whose end of file tells
/// herd that the exec happened: exec failures are errors of this call, as
/// with `posix_spawnp`.
fn spawn_forked(
    argv: &[CString],
    envp: Vec<CString>,
    pid_variables: &[&str],
    setup: &ChildSetup,
) -> io::Result<LivePid> {
    let program = resolve_program(
        argv.first()
            .map_or(OsStr::new(""), |p| OsStr::from_bytes(p.as_bytes())),
    )?;
    let mut targets: Vec<(BorrowedFd, libc::c_int)> = (0..)
        .zip(setup.stdio)
        .filter_map(|(target, fd)| fd.map(|fd| (fd, target)))
        .collect();
    targets.extend(setup.sockets.iter().copied().zip(3..));
    targets.extend(setup.ready_fd);
    let highest = targets.iter().map(|(_, target)| *target).max().unwrap_or(2);
    let above = highest.saturating_add(1);
    // Copies above every target, held until the child has its own.
    let raised: Vec<(OwnedFd, libc::c_int)> = targets
        .iter()
        .map(|(fd, target)| Ok((duplicate_above(fd.as_raw_fd(), above)?, *target)))
        .collect::<io::Result<_>>()?;
    let (error_read, error_write_low) = super::fd::pipe()?;
    let error_write = duplicate_above(error_write_low.as_raw_fd(), above)?;
    // Only the child may hold a write end once it has forked, or the read
    // below never sees the end of file that means "exec'd".
    drop(error_write_low);
    let mut kept: Vec<libc::c_int> = targets.iter().map(|(_, target)| *target).collect();
    kept.sort_unstable();
    let mut other_fds = Vec::new();
    let mut next: libc::c_int = 3;
    for target in kept.into_iter().filter(|target| *target >= 3) {
        if target > next {
            other_fds.push((next as libc::c_uint, (target - 1) as libc::c_uint));
        }
        next = next.max(target.saturating_add(1));
    }
    // Fds at fixed numbers (sockets, a ready fd) must not meet an inherited
    // one; otherwise what herd inherited it passes on, as posix_spawn does.
    if !setup.sockets.is_empty() || setup.ready_fd.is_some() {
        other_fds.push((next as libc::c_uint, libc::c_uint::MAX));
    }
    let mut pid_entries: Vec<(Vec<u8>, usize)> = pid_variables
        .iter()
        .map(|name| {
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            let prefix = entry.len();
            entry.extend_from_slice(&[b'0'; PID_DIGITS + 1]);
            (entry, prefix)
        })
        .collect();
    let argv_ptrs = null_terminated(argv);
    let mut envp_ptrs = null_terminated(&envp);
    let pid_digits = pid_entries
        .iter_mut()
        .map(|(entry, prefix)| {
            // Before the terminating null pointer.
            envp_ptrs.insert(envp_ptrs.len() - 1, entry.as_mut_ptr().cast());
            // SAFETY: the entry is "NAME=" (`prefix` bytes) and
            // PID_DIGITS + 1 bytes.
            unsafe { entry.as_mut_ptr().add(*prefix) }
        })
        .collect();
    // SAFETY: sigaction is plain data; zeroed is SIG_DFL, no flags, empty mask.
    let default_action: libc::sigaction = unsafe { mem::zeroed() };
    let plan = ForkPlan {
        program: program.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        pid_digits,
        moves: raised
            .iter()
            .map(|(fd, target)| (fd.as_raw_fd(), *target))
            .collect(),
        other_fds,
        take_terminal: setup.take_terminal,
        new_session: setup.new_session,
        claim_terminal: setup.new_session && setup.claim_terminal,
        death_signal: setup.death_signal.unwrap_or(0),
        parent: own_pid(),
        highest_signal: signal::max_signal(),
        default_action,
        mask: *setup.mask.as_raw(),
        error_pipe: error_write.as_raw_fd(),
    };
    // As glibc's posix_spawn does: the child shares herd's memory
    // (CLONE_VM, so nothing is copied) on a stack of its own, and this
    // thread waits until it has exec'd or exited (CLONE_VFORK), so that
    // nothing it writes (errno, the pid digits) races with this thread.
    let mut stack: Vec<mem::MaybeUninit<u8>> = Vec::with_capacity(CHILD_STACK_BYTES);
    let top = (stack.as_mut_ptr() as usize).saturating_add(CHILD_STACK_BYTES) & !15;
    // SAFETY: `top` is the 16-aligned end of CHILD_STACK_BYTES this function
    // owns until clone returns, which with CLONE_VFORK is after the child
    // has exec'd or exited; `plan` outlives the call too. The child runs
    // only `exec_child`, async-signal-safe calls on memory prepared above,
    // with every signal blocked (herd's mask) and its own copy of the
    // signal actions (no CLONE_SIGHAND), which it resets.
    let pid = check(unsafe {
        libc::clone(
            exec_child_entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            ptr::from_ref(&plan).cast_mut().cast(),
        )
    })?;
    drop(stack);
    drop(error_write);
    drop(raised);
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        let rest = &mut errno[got..];
        // SAFETY: the pointer and length describe `rest`, writable memory.
        let count = retry_eintr(|| {
            check_count(unsafe {
                libc::read(error_read.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len())
            })
        })?;
        if count == 0 {
            break;
        }
        got += count;
    }
    if got == 0 {
        return Ok(LivePid(pid));
    }
    // The child exits at once: reap it here, so the loop never sees a
    // pid it did not start.
    let mut status = 0;
    // SAFETY: `status` is a valid c_int for waitpid to write.
    let _ = retry_eintr(|| check(unsafe { libc::waitpid(pid, &mut status, 0) }));
    Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
}

/// The stack of a spawned child until it execs: `exec_child` needs little
/// (glibc gives its posix_spawn child 32 KiB and room for argv).
const CHILD_STACK_BYTES: usize = 64 * 1024;

extern "C" fn exec_child_entry(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn_forked` passes its plan, alive (and not written by
    // the suspended parent thread) until this child execs or exits.
    unsafe { exec_child(&*plan.cast::<ForkPlan>()) }
}

/// What runs in the cloned child: only async-signal-safe calls, on memory
/// prepared before the clone. Never returns: it execs or exits 127.
///
/// # Safety
/// Only to be called in the child of `spawn_forked`'s clone, with a plan
/// whose pointers are valid (they point into the parent's buffers, which
/// the child shares while the parent thread waits).
unsafe fn exec_child(plan: &ForkPlan) -> ! {
    if plan.new_session {
        libc::setsid();
        // Not fatal: without it the child runs with no controlling
        // terminal, as under dumb-init when the terminal is not free.
        if plan.claim_terminal {
            libc::ioctl(libc::STDIN_FILENO, libc::TIOCSCTTY, 0);
        }
    } else {
        libc::setpgid(0, 0);
    }
    if plan.death_signal != 0 {
        // A herd that died before the request leaves the child to init:
        // it must not start the program herd can no longer stop.
        if libc::prctl(libc::PR_SET_PDEATHSIG, plan.death_signal, 0, 0, 0) == -1
            || libc::getppid() != plan.parent
        {
            fail(plan.error_pipe);
        }
    }
    let mut signal = 1;
    while signal <= plan.highest_signal {
        // The system call, not glibc's sigaction, which refuses the signals
        // glibc reserves (32, 33): a caller may have those ignored (glibc's
        // own posix_spawn leaves them so), and an ignored signal stays
        // ignored across exec. The zeroed action is SIG_DFL, no flags, an
        // empty mask in the kernel's layout too. SIGKILL and SIGSTOP refuse;
        // that is fine.
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &plan.default_action,
            ptr::null_mut::<libc::sigaction>(),
            KERNEL_SIGSET_BYTES,
        );
        signal += 1;
    }
    // Every signal is still blocked (herd's mask), so SIGTTOU cannot stop
    // a child that takes the terminal from the background.
    if plan.take_terminal && libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid()) == -1 {
        fail(plan.error_pipe);
    }
    for &(source, target) in &plan.moves {
        // dup2 clears close-on-exec on the copy.
        if libc::dup2(source, target) == -1 {
            fail(plan.error_pipe);
        }
    }
    for &(first, last) in &plan.other_fds {
        // Before Linux 5.11 (no CLOSE_RANGE_CLOEXEC) only inherited fds
        // without the flag could leak, as with posix_spawn.
        libc::syscall(
            libc::SYS_close_range,
            first,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    if !plan.pid_digits.is_empty() {
        let pid = libc::getpid();
        for &digits in &plan.pid_digits {
            write_decimal(digits, pid);
        }
    }
    if libc::sigprocmask(libc::SIG_SETMASK, &plan.mask, ptr::null_mut()) == -1 {
        fail(plan.error_pipe);
    }
    libc::execve(plan.program, plan.argv.cast(), plan.envp.cast());
    fail(plan.error_pipe)
}

/// Sends errno back to herd and exits, in the child of a fork.
///
/// # Safety
/// As `exec_child`.
unsafe fn fail(error_pipe: libc::c_int) -> ! {
    let errno = (*libc::__errno_location()).to_ne_bytes();
    libc::write(error_pipe, errno.as_ptr().cast(), errno.len());
    libc::_exit(127)
}

/// Writes `value`'s decimal digits and a NUL at `at`, without allocating.
///
/// # Safety
/// `at` must have room for PID_DIGITS + 1 bytes.
unsafe fn write_decimal(at: *mut u8, value: Pid) {
    let mut digits = [0u8; PID_DIGITS];
    let mut left = value.unsigned_abs();
    let mut count = 0;
    while count < PID_DIGITS {
        digits[PID_DIGITS - 1 - count] = b'0' + (left % 10) as u8;
        left /= 10;
        count += 1;
        if left == 0 {
            break;
        }
    }
    let first = PID_DIGITS - count;
    let mut written = 0;
    for &digit in &digits[first..] {
        at.add(written).write(digit);
        written += 1;
    }
    at.add(written).write(0);
}

/// A close-on-exec copy of `fd` numbered `lowest` or more.
fn duplicate_above(fd: libc::c_int, lowest: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC has no memory arguments.
    let copy = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) })?;
    // SAFETY: fcntl returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// The file `execvp` would run for `program`: itself when it has a '/',
/// otherwise the first executable file of that name in herd's PATH (glibc's
/// default when PATH is unset). EACCES when only files that may not be
/// executed were found, ENOENT when none.
fn resolve_program(program: &OsStr) -> io::Result<CString> {
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let c_string = |bytes: Vec<u8>| {
        CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    if bytes.contains(&b'/') {
        return c_string(bytes.to_vec());
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
    let mut denied = false;
    for dir in search.as_bytes().split(|b| *b == b':') {
        let mut candidate = if dir.is_empty() {
            b".".to_vec()
        } else {
            dir.to_vec()
        };
        candidate.push(b'/');
        candidate.extend_from_slice(bytes);
        let is_file = std::fs::metadata(OsStr::from_bytes(&candidate)).is_ok_and(|m| m.is_file());
        if !is_file {
            continue;
        }
        let candidate = c_string(candidate)?;
        // SAFETY: access reads the NUL-terminated path it is given.
        if unsafe { libc::access(candidate.as_ptr(), libc::X_OK) } == 0 {
            return Ok(candidate);
        }
        denied = true;
    }
    let errno = if denied { libc::EACCES } else { libc::ENOENT };
    Err(io::Error::from_raw_os_error(errno))
}

fn check_count(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// A child that has not been reaped yet, and the only way to signal it: the
/// token is dropped when the child is reaped, so herd never signals a pid
/// the kernel may have given to another process since.
#[derive(Debug)]
pub struct LivePid(Pid);

impl LivePid {
    pub fn pid(&self) -> Pid {
        self.0
    }

    pub fn signal(&self, signal: i32) -> io::Result<()> {
        send_signal(self.0, signal)
    }
}

/// The process group a child was started in (its pid is the group's id),
/// for as long as the group may have members: the only way to signal it.
#[derive(Debug)]
pub struct LiveGroup(Pid);

/// Who is left in a process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Members {
    /// Some member (zombies included) herd may signal.
    Some,
    None,
    /// Members herd may not signal (EPERM): a setuid program, say.
    Unsignallable,
}

impl LiveGroup {
    pub fn of(leader: &LivePid) -> LiveGroup {
        LiveGroup(leader.0)
    }

    /// A group a supervisor that died left behind, whose id the caller has
    /// checked is still that group's (see `start_ticks`).
    pub fn left_behind(pgid: Pid) -> LiveGroup {
        LiveGroup(pgid)
    }

    pub fn id(&self) -> Pid {
        self.0
    }

    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: killpg has no memory arguments.
        check(unsafe { libc::killpg(self.0, signal) }).map(drop)
    }

    pub fn members(&self) -> Members {
        match self.signal(0) {
            Ok(()) => Members::Some,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Members::Unsignallable,
            Err(_) => Members::None,
        }
    }
}

fn c_strings(items: impl Iterator<Item = Vec<u8>>) -> io::Result<Vec<CString>> {
    items
        .map(|bytes| {
            CString::new(bytes).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an argument contains a NUL byte",
                )
            })
        })
        .collect()
}

fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(ptr::null_mut()))
        .collect()
}

/// `posix_spawnattr_t`: new process group (or session), default
/// dispositions, a mask.
struct SpawnAttributes(libc::posix_spawnattr_t);

impl SpawnAttributes {
    fn new(mask: SignalSet, new_session: bool) -> io::Result<SpawnAttributes> {
        let mut raw = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        // SAFETY: init writes the whole attribute object.
        spawn_check(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised just above; from here on Drop destroys it.
        let mut attributes = SpawnAttributes(unsafe { raw.assume_init() });
        // Every bit set, not sigfillset: glibc's sigfillset leaves out the
        // signals it reserves (32, 33), and a caller may have those ignored.
        let mut every_signal = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigset_t is plain bits; all ones is a valid set.
        let every_signal = unsafe {
            ptr::write_bytes(every_signal.as_mut_ptr(), 0xff, 1);
            every_signal.assume_init()
        };
        // A session leader leads its own group already, and may not be
        // moved to another: setsid and setpgid together would fail.
        let group = if new_session {
            libc::POSIX_SPAWN_SETSID
        } else {
            libc::POSIX_SPAWN_SETPGROUP as libc::c_short
        };
        let flags = group
            | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short
            | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short;
        let attr = &mut attributes.0;
        // SAFETY: `attr` is initialised; the sets are valid sigset_t values
        // that the calls copy.
        unsafe {
            spawn_check(libc::posix_spawnattr_setflags(attr, flags))?;
            spawn_check(libc::posix_spawnattr_setpgroup(attr, 0))?;
            spawn_check(libc::posix_spawnattr_setsigdefault(attr, &every_signal))?;
            spawn_check(libc::posix_spawnattr_setsigmask(attr, mask.as_raw()))?;
        }
        Ok(attributes)
    }
}

impl Drop for SpawnAttributes {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// `posix_spawn_file_actions_t`: the child's stdio and the terminal hand-over.
struct SpawnFileActions(libc::posix_spawn_file_actions_t);

impl SpawnFileActions {
    fn new(setup: &ChildSetup) -> io::Result<SpawnFileActions> {
        let mut raw = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        // SAFETY: init writes the whole object.
        spawn_check(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised just above; from here on Drop destroys it.
        let mut actions = SpawnFileActions(unsafe { raw.assume_init() });
        for (target, fd) in (0..).zip(setup.stdio) {
            if let Some(fd) = fd {
                // SAFETY: `actions` is initialised; `fd` is open for as long
                // as `setup` borrows it, which outlives the spawn. dup2 onto
                // 0..2 clears close-on-exec for the copy only.
                spawn_check(unsafe {
                    libc::posix_spawn_file_actions_adddup2(&mut actions.0, fd.as_raw_fd(), target)
                })?;
            }
        }
        if setup.take_terminal {
            // SAFETY: `actions` is initialised. glibc (2.35+) makes the
            // child's new group the foreground of the terminal on fd 0 while
            // the child still has every signal blocked, so SIGTTOU cannot
            // stop it.
            spawn_check(unsafe {
                libc::posix_spawn_file_actions_addtcsetpgrp_np(&mut actions.0, libc::STDIN_FILENO)
            })?;
        }
        Ok(actions)
    }
}

impl Drop for SpawnFileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// posix_spawn* return an errno value instead of setting errno.
fn spawn_check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// How a child changed state, as `waitpid` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    Stopped(i32),
}

/// What one non-blocking `waitpid(-1)` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reap {
    Changed(Pid, WaitStatus),
    NothingYet,
    NoChildren,
}

/// Reaps one child that has changed state (or reports a stopped one), without
/// blocking.
pub fn reap_one() -> io::Result<Reap> {
    let mut status: libc::c_int = 0;
    let pid = retry_eintr(|| {
        // SAFETY: `status` is a valid c_int for waitpid to write.
        check(unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) })
    });
    match pid {
        Ok(0) => Ok(Reap::NothingYet),
        Ok(pid) => Ok(Reap::Changed(pid, decode_status(status))),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(Reap::NoChildren),
        Err(e) => Err(e),
    }
}

fn decode_status(status: libc::c_int) -> WaitStatus {
    if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        WaitStatus::Stopped(libc::WSTOPSIG(status))
    }
}

/// Sends `signal` to one process. The caller must not have reaped `pid`.
fn send_signal(pid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory arguments; pid > 0 names one process.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Sends `signal` to every process this one may signal, except itself (and,
/// in a PID namespace, only to that namespace's processes).
pub fn send_signal_to_all(signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory arguments; -1 means "all but init and me".
    check(unsafe { libc::kill(-1, signal) }).map(drop)
}

/// What /proc says of a process: its state letter (`R`, `S`, `T`, `Z`,
/// ...) and when it started, in clock ticks since boot, which with the pid
/// names one process for good, as a pid alone does not once the kernel has
/// given it to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub pgid: Pid,
    pub start_ticks: u64,
}

impl ProcStat {
    /// Dead, and not yet reaped by its parent.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

pub fn proc_stat(pid: Pid) -> Option<ProcStat> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&stat)
}

/// When process `pid` started (see `ProcStat`).
pub fn start_ticks(pid: Pid) -> Option<u64> {
    proc_stat(pid).map(|stat| stat.start_ticks)
}

/// The process groups that have a member that is not a zombie, from /proc
/// (`None` when /proc cannot be read): a signal to a group would reach
/// zombies too, which only their parent can remove (and a parent that
/// never reaps is common as a container's PID 1).
pub fn live_process_groups() -> Option<std::collections::HashSet<Pid>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<Pid>().ok())
            .filter_map(proc_stat)
            .filter(|stat| !stat.is_zombie())
            .map(|stat| stat.pgid)
            .collect(),
    )
}

/// Fields 3, 5 and 22 of a `/proc/PID/stat` line; the command (field 2) is in
/// parentheses and may hold spaces and parentheses itself.
fn parse_proc_stat(stat: &[u8]) -> Option<ProcStat> {
    let after_command = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(after_command + 1..)?).ok()?;
    // Fields from the third on; the 22nd is the 20th of these.
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgid = fields.nth(1)?.parse().ok()?;
    let start_ticks = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgid,
        start_ticks,
    })
}

pub fn own_pid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn own_process_group() -> Pid {
    // SAFETY: getpgrp cannot fail.
    unsafe { libc::getpgrp() }
}

/// Makes orphaned descendants become this process's children instead of
/// init's, so that herd can reap them.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// Has the kernel send `signal` to herd when the thread that started herd
/// ends (tini's `-p`): a supervisor whose parent died is told, as a signal
/// it forwards like any other.
pub fn set_parent_death_signal(signal: i32) -> io::Result<()> {
    let signal =
        libc::c_ulong::try_from(signal).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_PDEATHSIG takes one integer argument, a signal number
    // the kernel checks.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) }).map(drop)
}

/// Gives up herd's controlling terminal (on stdin) when herd leads the
/// session it controls, as PID 1 of `docker run -t` does, so that a child
/// in a session of its own can take it (dumb-init's setsid mode); returns
/// whether it did. Giving it up makes the kernel send SIGHUP and SIGCONT
/// to the terminal's foreground group, herd's own: every signal is blocked
/// by now, and those two are taken off herd's pending signals here, before
/// the loop could forward them to the child.
pub fn release_terminal() -> io::Result<bool> {
    let own = own_pid();
    // SAFETY: getsid and tcgetsid have no memory arguments; -1 (no
    // terminal) is an answer.
    let leads = unsafe { libc::getsid(0) == own && libc::tcgetsid(libc::STDIN_FILENO) == own };
    if !leads {
        return Ok(false);
    }
    // SAFETY: TIOCNOTTY takes no argument.
    check(unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCNOTTY) })?;
    let mut sent = MaybeUninit::<libc::sigset_t>::uninit();
    let no_wait = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigemptyset initialises the set and sigaddset adds valid
    // signal numbers to it; sigtimedwait reads the set and the timespec and
    // may be given no siginfo. It returns -1 (EAGAIN) once neither is pending.
    unsafe {
        libc::sigemptyset(sent.as_mut_ptr());
        libc::sigaddset(sent.as_mut_ptr(), libc::SIGHUP);
        libc::sigaddset(sent.as_mut_ptr(), libc::SIGCONT);
        while libc::sigtimedwait(sent.as_ptr(), ptr::null_mut(), &no_wait) > 0 {}
    }
    Ok(true)
}

/// Whether stdin is a terminal whose foreground group is ours: only then may
/// herd hand the terminal to its child (a herd started with `&` must not).
pub fn owns_terminal() -> bool {
    // SAFETY: tcgetpgrp has no memory arguments; -1 (not a tty) is an answer.
    let foreground = unsafe { libc::tcgetpgrp(libc::STDIN_FILENO) };
    foreground != -1 && foreground == own_process_group()
}

/// Makes `pgid` the foreground group of the terminal on stdin. All signals
/// are blocked in herd, so SIGTTOU cannot stop it when it is in background.
pub fn give_terminal_to(pgid: Pid) -> io::Result<()> {
    // SAFETY: tcsetpgrp has no memory arguments.
    check(unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, pgid) }).map(drop)
}

/// The foreground process group of the terminal on stdin, if there is one.
pub fn terminal_foreground() -> Option<Pid> {
    // SAFETY: tcgetpgrp has no memory arguments.
    let pgid = unsafe { libc::tcgetpgrp(libc::STDIN_FILENO) };
    (pgid > 0).then_some(pgid)
}

/// Stops this whole process (all threads) until a SIGCONT: how herd follows
/// its child into the background when the user presses Ctrl-Z.
pub fn stop_self() -> io::Result<()> {
    send_signal(own_pid(), libc::SIGSTOP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_start_time_past_a_command_with_spaces_and_parentheses() {
        let stat =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_proc_stat(stat),
            Some(ProcStat {
                state: 'S',
                pgid: 4242,
                start_ticks: 987_654
            })
        );
        assert_eq!(parse_proc_stat(b"4242 (x) S 1 2 3"), None);
        assert_eq!(parse_proc_stat(b"no parenthesis"), None);
        let own = start_ticks(own_pid()).expect("herd's own /proc/PID/stat");
        assert_eq!(start_ticks(own_pid()), Some(own));
    }

    #[test]
    fn writes_any_pid_into_its_slot_with_a_nul() {
        for (pid, text) in [(1, "1"), (4_194_304, "4194304"), (i32::MAX, "2147483647")] {
            let mut slot = [b'x'; PID_DIGITS + 1];
            // SAFETY: the slot has PID_DIGITS + 1 bytes.
            unsafe { write_decimal(slot.as_mut_ptr(), pid) };
            let end = slot.iter().position(|b| *b == 0).unwrap();
            assert_eq!(&slot[..end], text.as_bytes());
        }
    }

    #[test]
    fn resolves_a_program_as_execvp_would() {
        assert_eq!(
            resolve_program(OsStr::new("./x")).unwrap().as_bytes(),
            b"./x"
        );
        let sh = resolve_program(OsStr::new("sh")).unwrap();
        assert!(sh.as_bytes().ends_with(b"/sh"), "{sh:?}");
        for missing in ["", "herd-no-such-program"] {
            let error = resolve_program(OsStr::new(missing)).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{missing:?}");
        }
    }
}
