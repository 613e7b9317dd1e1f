//! `exec:` liveness checks: a shell command run under a "clone" child of
//! herd, one whose exit sends no SIGCHLD, so that the supervisor's
//! `waitpid(-1)` never reaps it and the check's own thread alone waits for
//! it (`__WCLONE`), with a timeout. The clone child never execs (exec
//! would make it an ordinary child again): it forks the shell, waits for
//! it and ends as the shell ended.

use super::process::WaitStatus;
use super::signal::SignalSet;
use super::{check, retry_eintr, Pid};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use std::{io, mem, ptr};

/// The kernel's `sigset_t`, as `rt_sigaction(2)` takes it.
const KERNEL_SIGSET_BYTES: libc::size_t = 8;

/// How often a check is looked at when the kernel has no pidfds (before
/// Linux 5.3).
const POLL_WITHOUT_PIDFD: Duration = Duration::from_millis(5);

/// Everything the child uses, made before the clone: it may only make
/// async-signal-safe calls on memory it already has.
struct Plan {
    shell: CString,
    argv: [*const libc::c_char; 4],
    null: libc::c_int,
    highest_signal: libc::c_int,
    default_action: libc::sigaction,
    mask: libc::sigset_t,
}

/// Runs `/bin/sh -c command` with herd's environment, stdin, stdout and
/// stderr on /dev/null, in a process group of its own, the signal mask
/// `mask` and every signal at its default action; waits at most `timeout`
/// for it. On timeout its group gets SIGKILL and `None` comes back. What
/// is left of its group after it exits gets SIGKILL too, so that a check
/// leaves nothing running.
pub fn run_shell(
    command: &str,
    mask: &SignalSet,
    timeout: Duration,
) -> io::Result<Option<WaitStatus>> {
    let script = CString::new(command).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let shell =
        CString::new("/bin/sh").map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dash_c = CString::new("-c").map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open reads the NUL-terminated path; the flags ask for a
    // close-on-exec fd, which the child's dup2 copies without the flag.
    let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: open returned a new fd that nothing else owns.
    let null = unsafe { OwnedFd::from_raw_fd(null) };
    // SAFETY: sigaction is plain data; zeroed is SIG_DFL, no flags, empty mask.
    let default_action: libc::sigaction = unsafe { mem::zeroed() };
    let plan = Plan {
        argv: [
            shell.as_ptr(),
            dash_c.as_ptr(),
            script.as_ptr(),
            ptr::null(),
        ],
        shell,
        null: null.as_raw_fd(),
        highest_signal: super::signal::max_signal(),
        default_action,
        mask: *mask.as_raw(),
    };
    // SAFETY: the child runs only `exec_child`, async-signal-safe calls on
    // its copy of the plan.
    let Some(pid) = (unsafe { super::clone_silent() })? else {
        // SAFETY: this is the child; `plan` is its copy.
        unsafe { exec_child(&plan) }
    };
    drop(null);
    let ended = wait_exit(pid, timeout)?;
    // SAFETY: kill has no memory arguments. The child is not reaped yet,
    // so its pid, which is its group's id, is still its own.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = reap(pid)?;
    Ok(ended.then_some(status))
}

/// Waits until `pid` (a clone child of this process) has exited, without
/// reaping it; `false` when `timeout` ran out first.
fn wait_exit(pid: Pid, timeout: Duration) -> io::Result<bool> {
    let until = Instant::now().checked_add(timeout);
    // SAFETY: pidfd_open has no memory arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = libc::c_int::try_from(pidfd)
        .ok()
        .filter(|fd| *fd >= 0)
        // SAFETY: pidfd_open returned a new close-on-exec fd nothing owns.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    loop {
        if exited(pid)? {
            return Ok(true);
        }
        let left = until.map_or(Duration::MAX, |at| {
            at.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            return Ok(false);
        }
        match &pidfd {
            Some(pidfd) => {
                super::fd::wait_readable(std::os::fd::AsFd::as_fd(pidfd), Some(left))?;
            }
            None => std::thread::sleep(left.min(POLL_WITHOUT_PIDFD)),
        }
    }
}

/// Whether clone child `pid` has exited, leaving it a zombie.
fn exited(pid: Pid) -> io::Result<bool> {
    // SAFETY: siginfo_t is plain data for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    retry_eintr(|| {
        // SAFETY: `info` is valid for waitid to write; P_PID names our child.
        check(unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WCLONE,
            )
        })
    })?;
    // SAFETY: waitid filled `info`; si_pid is 0 when nothing changed.
    Ok(unsafe { info.si_pid() } != 0)
}

fn reap(pid: Pid) -> io::Result<WaitStatus> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid c_int for waitpid to write.
    retry_eintr(|| check(unsafe { libc::waitpid(pid, &mut status, libc::__WCLONE) }))?;
    Ok(if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    })
}

/// What runs in the cloned child: async-signal-safe calls only. Never
/// returns: it ends as the shell it forks ends (127: it could not).
///
/// # Safety
/// Only in the child of the clone, with its copy of the plan.
unsafe fn exec_child(plan: &Plan) -> ! {
    libc::setpgid(0, 0);
    let mut signal = 1;
    while signal <= plan.highest_signal {
        // The system call, as in process.rs: glibc's sigaction refuses
        // the signals it reserves, which could be ignored and stay so.
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &plan.default_action,
            ptr::null_mut::<libc::sigaction>(),
            KERNEL_SIGSET_BYTES,
        );
        signal += 1;
    }
    // The raw fork (glibc's runs atfork handlers): the shell is this
    // child's child, which herd never sees.
    let shell = libc::syscall(
        libc::SYS_clone,
        libc::SIGCHLD as libc::c_ulong,
        0 as libc::c_ulong,
        0,
        0,
        0,
    );
    if shell == 0 {
        exec_shell(plan);
    }
    let Ok(shell) = Pid::try_from(shell) else {
        libc::_exit(127)
    };
    let mut status: libc::c_int = 0;
    while libc::waitpid(shell, &mut status, 0) == -1 {
        if *libc::__errno_location() != libc::EINTR {
            libc::_exit(127);
        }
    }
    if libc::WIFSIGNALED(status) {
        // Dies of the same signal, now at its default action, unblocked.
        let signal = libc::WTERMSIG(status);
        let mut unblocked: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut unblocked);
        libc::sigprocmask(libc::SIG_SETMASK, &unblocked, ptr::null_mut());
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// The shell, in the clone child's child.
///
/// # Safety
/// As `exec_child`.
unsafe fn exec_shell(plan: &Plan) -> ! {
    for target in 0..3 {
        if libc::dup2(plan.null, target) == -1 {
            libc::_exit(127);
        }
    }
    // An fd herd inherited without close-on-exec does not reach the check.
    libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    if libc::sigprocmask(libc::SIG_SETMASK, &plan.mask, ptr::null_mut()) == -1 {
        libc::_exit(127);
    }
    libc::execv(plan.shell.as_ptr(), plan.argv.as_ptr());
    libc::_exit(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, timeout: Duration) -> Option<WaitStatus> {
        run_shell(command, &SignalSet::empty(), timeout).unwrap()
    }

    #[test]
    fn reports_the_exit_of_the_command() {
        let long = Duration::from_secs(10);
        assert_eq!(run("exit 0", long), Some(WaitStatus::Exited(0)));
        assert_eq!(run("exit 3", long), Some(WaitStatus::Exited(3)));
        assert_eq!(run("kill -9 $$", long), Some(WaitStatus::Signaled(9)));
        assert_eq!(
            run("no-such-command-here", long),
            Some(WaitStatus::Exited(127))
        );
    }

    #[test]
    fn a_check_past_its_timeout_is_killed_with_what_it_started() {
        let pidfile = std::env::temp_dir().join(format!("herd-check-{}", std::process::id()));
        let command = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let started = Instant::now();
        assert_eq!(run(&command, Duration::from_millis(300)), None);
        assert!(started.elapsed() < Duration::from_secs(5));
        let sleeper: Pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::fs::remove_file(&pidfile).unwrap();
        // Killed with its group; an orphan is reaped by its new parent.
        let deadline = Instant::now() + Duration::from_secs(5);
        let running = || {
            std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        while running() {
            assert!(
                Instant::now() < deadline,
                "the check's sleep {sleeper} is still running"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
