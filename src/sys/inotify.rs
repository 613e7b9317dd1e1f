//! inotify(7): being told when files change, for `--watch`.

use super::{check, retry_eintr};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What counts as a change: a file written and closed, created, moved in or
/// out, deleted (editors often save by writing a new file and renaming it
/// over the old one), or its attributes changed (`touch`).
const CHANGES: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// An inotify instance, CLOEXEC.
pub struct Inotify(OwnedFd);

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes flags only and returns a new fd we own.
        let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel and is ours alone.
        Ok(Inotify(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `path` (a file, or a directory and what is in it).
    pub fn watch(&self, path: &Path) -> io::Result<()> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte")
        })?;
        // SAFETY: the fd is an inotify instance and `path` a valid C string.
        check(unsafe { libc::inotify_add_watch(self.0.as_raw_fd(), path.as_ptr(), CHANGES) })
            .map(drop)
    }

    /// Waits for the next events and drops them: only that something
    /// changed matters.
    pub fn wait(&self) -> io::Result<()> {
        // Room for several events with names (each at most NAME_MAX + 1 after
        // its header), so that one read takes a burst.
        let mut buffer = [0u8; 16 * 1024];
        retry_eintr(|| {
            // SAFETY: the buffer is valid for writes of its length.
            let read =
                unsafe { libc::read(self.0.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if read < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }
}
