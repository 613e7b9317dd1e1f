//! The only place with `unsafe`: thin safe wrappers over libc.
//!
//! Each wrapper turns `-1`/errno into `io::Error`, retries EINTR where the call
//! is restartable, and says in its name what it does. Nothing here keeps state
//! but the signal mask herd was started with, which only the entry point sets.

pub mod check;
pub mod daemon;
pub mod datagram;
#[cfg(not(test))]
mod entry;
pub mod events;
pub mod fd;
pub mod guard;
pub mod inotify;
pub mod process;
pub mod shm;
pub mod signal;
pub mod socket;

use std::io;

/// A process, process-group or session id as the kernel gives it.
pub type Pid = libc::pid_t;

/// Turns the C convention "-1 and errno" into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A clone with no flags and exit signal 0: a copy of this process, as fork
/// makes, whose end raises no SIGCHLD and which only a `__WCLONE` wait
/// sees, so that the supervisor's `waitpid(-1)` never reaps it. The child
/// goes on with `Ok(None)` on its own copy of the caller's stack (stack
/// pointer 0); the parent gets `Ok(Some(pid))`.
///
/// # Safety
/// The caller is threaded: in the child, it may make async-signal-safe
/// calls only, on memory made before the call, and must never return into
/// code that would break that.
unsafe fn clone_silent() -> io::Result<Option<Pid>> {
    let pid = libc::syscall(
        libc::SYS_clone,
        0 as libc::c_ulong,
        0 as libc::c_ulong,
        0,
        0,
        0,
    );
    match pid {
        0 => Ok(None),
        pid => Pid::try_from(pid)
            .ok()
            .filter(|pid| *pid > 0)
            .map(Some)
            .ok_or_else(io::Error::last_os_error),
    }
}

/// Runs `f` again while it fails with EINTR.
fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Makes every thread allocate from glibc's main malloc arena. Without this,
/// each new thread's first allocation reserves an arena of its own (64 MiB of
/// address space, and the page faults to set it up), which costs more time
/// than a short `herd run` and more memory than herd's reader threads need.
pub fn share_one_malloc_arena() {
    // SAFETY: mallopt only changes a malloc tunable; called before any
    // thread exists. A 0 return (not applied) only costs memory.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Where the first `byte` in `haystack` is: libc's `memchr`, which glibc
/// vectorises. Finding newlines is most of an output reader's work.
pub fn find_byte(byte: u8, haystack: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe `haystack`, which memchr only
    // reads; a non-null result points into it, so the offset is in range.
    let found = unsafe { libc::memchr(haystack.as_ptr().cast(), i32::from(byte), haystack.len()) };
    (!found.is_null()).then(|| found as usize - haystack.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_newline_at_every_position() {
        for len in 0..40 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|i| [b'a', 0x8b, 0x0b, 0x09, 0xff][i % 5])
                .collect();
            assert_eq!(find_byte(b'\n', &bytes), None, "{len}");
            for at in 0..len {
                bytes[at] = b'\n';
                if at + 1 < len {
                    // A later newline, and bytes that differ from it by one bit.
                    bytes[len - 1] = b'\n';
                }
                assert_eq!(find_byte(b'\n', &bytes), Some(at), "{len} {at}");
                bytes[at] = b'a';
                bytes[len - 1] = b'a';
            }
        }
    }
}
