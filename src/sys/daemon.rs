//! Locks, forks, sessions and credentials: what detaching a supervisor and
//! guarding its state directory need.

use super::{check, retry_eintr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// Takes an exclusive lock on `file` without waiting. `Ok(false)`: another
/// open file description holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock has no memory arguments; the fd is open for `file`'s life.
    match retry_eintr(|| {
        check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })
    }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether some process holds a lock on `file` (tested with a shared lock
/// that is dropped at once).
pub fn is_locked(file: &File) -> io::Result<bool> {
    // SAFETY: as above.
    let rc = retry_eintr(|| {
        check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) })
    });
    match rc {
        Ok(_) => {
            // SAFETY: as above; releases the shared lock just taken.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            Ok(false)
        }
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Which side of a `fork` this is.
pub enum Forked {
    Parent,
    Child,
}

/// Forks. Only while herd has a single thread: the child then owns a
/// complete copy of the process and may do anything, allocation included.
pub fn fork_single_threaded() -> io::Result<Forked> {
    // SAFETY: callers fork before starting any thread, so no lock can be held
    // by a thread that does not exist in the child.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        _ => Ok(Forked::Parent),
    }
}

/// Starts a new session (no controlling terminal) led by this process.
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid has no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Makes `target` (0, 1 or 2) a copy of `source`.
pub fn redirect(source: BorrowedFd, target: i32) -> io::Result<()> {
    // SAFETY: dup2 has no memory arguments; both fds are open.
    retry_eintr(|| check(unsafe { libc::dup2(source.as_raw_fd(), target) })).map(drop)
}

/// Ends this process at once, without running destructors or atexit
/// handlers: for the intermediate parent of a double fork.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

pub fn own_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// The uid of the process at the other end of a unix socket.
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `credentials` and `length` are valid for getsockopt to write,
    // and `length` holds their size.
    check(unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut length,
        )
    })?;
    Ok(credentials.uid)
}

/// Closes every fd from 3 up except `keep`: a detached supervisor must not
/// hold what its caller happened to leave open (a terminal, a pipe a CI
/// runner waits on).
pub fn close_other_fds(keep: &[i32]) -> io::Result<()> {
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: closing an fd number that nothing in herd owns (it was
        // inherited, or is the directory fd of the listing, already closed:
        // EBADF, ignored).
        unsafe { libc::close(fd) };
    }
    Ok(())
}
