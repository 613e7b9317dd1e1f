//! Signal masks, dispositions, and the synchronous wait for a signal.

use std::sync::OnceLock;
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

/// Takes `signal` off the calling thread's (and the process's) pending set
/// without handling it, if it is pending: one herd raised at itself.
pub fn discard_pending(signal: i32) {
    let mut set = SignalSet::empty();
    // SAFETY: `set` is an initialised sigset_t; sigaddset only fails for a
    // bad signal number, which leaves the set empty.
    unsafe { libc::sigaddset(&mut set.0, signal) };
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the set and the zero timeout are valid for the call; the
    // siginfo pointer may be null.
    unsafe { libc::sigtimedwait(&set.0, std::ptr::null_mut(), &now) };
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

/// The mask herd was started with, kept by `block_all_at_start`.
static STARTED_WITH: OnceLock<SignalSet> = OnceLock::new();

/// Blocks every signal before anything else runs, so that a signal sent to
/// a herd that has only just been exec'd waits for the supervisor (which
/// reads it from a signalfd and forwards it) instead of killing herd.
/// Remembers the mask herd was started with, for `caller_mask`.
#[cfg_attr(test, allow(dead_code))]
pub fn block_all_at_start() {
    // It cannot fail with a valid set; if it did, herd would run as it
    // was started, with the early window open.
    if let Ok(old) = block_all() {
        let _ = STARTED_WITH.set(old);
    }
}

/// The mask herd was started with, which its children get back: herd's own
/// blocking is none of theirs.
pub fn caller_mask() -> SignalSet {
    STARTED_WITH.get().copied().unwrap_or_else(SignalSet::empty)
}

/// Gives the calling thread the mask herd was started with again, for the
/// commands that are no supervisor: their signals (Ctrl-C, TERM) act as
/// they would on any program, and one that came early is delivered now.
pub fn restore_caller_mask() {
    let mask = caller_mask();
    // SAFETY: `mask` is a valid, initialised sigset_t; the old mask is not
    // asked for. It cannot fail with a valid `how`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) };
}
