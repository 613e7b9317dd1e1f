//! Locks, forks, sessions, credentials and a bounded connect: what detaching
//! a supervisor, guarding its state directory and reaching it need.

use super::{check, retry_eintr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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

/// Connects to the unix socket at `path`, waiting at most `timeout` (not
/// zero) for room in its backlog, which fills when nobody accepts: then
/// `WouldBlock` (EAGAIN). `timeout` stays the stream's write timeout.
pub fn connect_with_timeout(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    // SAFETY: sockaddr_un is plain data, for which all zeroes is valid.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // The path must leave room for the NUL that ends it.
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is too long for a unix socket",
        ));
    }
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: socket has no memory arguments.
    let fd =
        check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket, and nothing else owns it.
    let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // Linux bounds a unix socket's wait for the backlog by its send timeout.
    stream.set_write_timeout(Some(timeout))?;
    // SAFETY: `address` is a valid sockaddr_un and the length is its size;
    // connect only reads it. An interrupted connect on a unix socket leaves
    // it unconnected, so it may be tried again.
    retry_eintr(|| {
        check(unsafe {
            libc::connect(
                stream.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        })
    })?;
    Ok(stream)
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

/// Shuts a connected socket down both ways, so that the thread reading it
/// sees the end of the connection. The caller makes sure `fd` is still the
/// socket it means (not yet closed, so its number cannot have been reused).
pub fn shut_down(fd: RawFd) {
    // SAFETY: shutdown has no memory arguments; on a wrong or closed fd it
    // fails with EBADF or ENOTSOCK and changes nothing.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
