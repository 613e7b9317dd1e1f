//! herd's process entry point, called by the C runtime in place of Rust's own
//! start-up.
//!
//! Rust's start-up reads `/proc/self/maps` to find the main thread's stack
//! guard and installs SIGSEGV/SIGBUS handlers on an alternate stack: a dozen
//! system calls that cost a `herd run` of a short command more than all of its
//! own work. herd keeps the two parts it relies on (fds 0-2 are open, SIGPIPE
//! is ignored) and does them here. A stack overflow is then a plain SIGSEGV
//! rather than a message.
//!
//! Before either, every signal is blocked: a TERM sent the moment herd was
//! exec'd (a container stopped as it starts) must wait for the supervisor's
//! signalfd and reach the child, not kill herd with its default action.

use std::ffi::{c_char, c_int};

// SAFETY: no other symbol of the program is called `main`: the crate is
// `#![no_main]`, so Rust emits none, and the C runtime calls this one with
// the arguments it was started with (std reads them on its own from glibc).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    super::signal::block_all_at_start();
    open_missing_standard_fds();
    ignore_sigpipe();
    c_int::from(crate::run())
}

/// Opens `/dev/null` on whichever of fds 0, 1, 2 is closed, so that no file
/// herd opens later lands there and gets written to as stdout or stderr.
fn open_missing_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd that poll only writes
    // `revents` of; a zero timeout makes it return at once.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled <= 0 {
        return;
    }
    for pollfd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: the path is a NUL-terminated literal; open returns the
        // lowest free fd, which is this closed one since the lower ones are
        // open by now.
        let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if opened != pollfd.fd {
            // A closed standard fd that cannot be filled: herd would write
            // its output into whatever it opens next, so it must not go on.
            // SAFETY: _exit ends the process at once; nothing else runs.
            unsafe { libc::_exit(125) };
        }
    }
}

/// herd writes to pipes whose reader may be gone (`herd status | head -1`,
/// a control client that hung up): that must be EPIPE, not death.
fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; children get the
    // default back through posix_spawn's SETSIGDEF.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
