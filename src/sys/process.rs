//! Spawning children with a clean signal state, reaping, signalling and the
//! terminal's foreground process group.

use super::signal::SignalSet;
use super::{check, retry_eintr, Pid};
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::{io, mem::MaybeUninit, ptr};

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
}

/// Starts `argv[0]` (searched in PATH) with `argv` and herd's environment, in
/// a new process group of its own, with every signal at its default action
/// and `setup.mask` as its mask.
///
/// glibc's `posix_spawnp` runs the child with CLONE_VFORK: herd's memory is
/// not copied, nothing of ours runs in the child, and the child's exec errno
/// comes back as this call's error, so an exec failure is never guessed from
/// an exit code.
pub fn spawn(argv: &[OsString], setup: &ChildSetup) -> io::Result<LivePid> {
    let argv = c_strings(argv.iter().map(|arg| arg.as_bytes().to_vec()))?;
    let inherited = std::env::vars_os()
        .filter(|(key, _)| {
            !setup
                .env
                .iter()
                .any(|(set, _)| key.as_bytes() == set.as_bytes())
        })
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()));
    let set = setup
        .env
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()));
    let envp = c_strings(inherited.chain(set).map(|(mut pair, value)| {
        pair.push(b'=');
        pair.extend_from_slice(&value);
        pair
    }))?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);
    let attributes = SpawnAttributes::new(setup.mask)?;
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
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(LivePid(pid))
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

/// `posix_spawnattr_t`: new process group, default dispositions, a mask.
struct SpawnAttributes(libc::posix_spawnattr_t);

impl SpawnAttributes {
    fn new(mask: SignalSet) -> io::Result<SpawnAttributes> {
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
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETSIGMASK;
        let attr = &mut attributes.0;
        // SAFETY: `attr` is initialised; the sets are valid sigset_t values
        // that the calls copy.
        unsafe {
            spawn_check(libc::posix_spawnattr_setflags(attr, flags as libc::c_short))?;
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
