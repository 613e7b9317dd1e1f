//! Signal masks, dispositions, and the synchronous wait for a signal.

use std::{io, mem::MaybeUninit};

/// A set of signals (`sigset_t`).
#[derive(Clone, Copy)]
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// Every signal.
    pub fn full() -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises the whole set it is given; it cannot
        // fail for a valid pointer.
        unsafe {
            libc::sigfillset(set.as_mut_ptr());
            SignalSet(set.assume_init())
        }
    }

    /// No signal.
    #[cfg(test)]
    pub fn empty() -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set it is given.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            SignalSet(set.assume_init())
        }
    }

    pub(super) fn as_raw(&self) -> &libc::sigset_t {
        &self.0
    }
}

/// The highest signal number (SIGRTMAX).
pub fn max_signal() -> i32 {
    libc::SIGRTMAX()
}

/// The lowest real-time signal number usable by programs (SIGRTMIN).
pub fn min_realtime_signal() -> i32 {
    libc::SIGRTMIN()
}

/// Blocks every signal for the calling thread (and the threads it creates
/// afterwards) and returns the mask it had before.
///
/// It also sets SIGCHLD back to its default action: a caller that ignores it
/// would make the kernel reap herd's children before herd could see how they
/// ended. Other ignored signals need nothing: a blocked signal is queued for
/// `wait_for` even when its action is to ignore it.
pub fn block_all() -> io::Result<SignalSet> {
    let full = SignalSet::full();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: both pointers are valid sigset_t storage; pthread_sigmask writes
    // the previous mask into `old` before returning 0.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &full.0, old.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: installing SIG_DFL runs no code of ours.
    if unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pthread_sigmask returned 0, so `old` was written.
    Ok(SignalSet(unsafe { old.assume_init() }))
}
