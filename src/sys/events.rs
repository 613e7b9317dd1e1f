//! What wakes the supervisor loop: a signalfd for its signals and an eventfd
//! that the other threads write after queueing an input, polled together.

use super::signal::SignalSet;
use super::{check, retry_eintr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;
use std::{io, mem};

/// Signals, read as they arrive. Every signal must be blocked in every
/// thread (`signal::block_all` before any thread exists), or the kernel may
/// deliver one the ordinary way instead.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(set: &SignalSet) -> io::Result<SignalFd> {
        // SAFETY: the set is initialised; -1 asks for a new fd.
        let fd = check(unsafe {
            libc::signalfd(-1, set.as_raw(), libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        })?;
        // SAFETY: signalfd returned a new open fd that nothing else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The next pending signal, or `None` when none is pending.
    pub fn take(&self) -> io::Result<Option<i32>> {
        // SAFETY: signalfd_siginfo is plain integers; all zeroes is valid.
        let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::signalfd_siginfo>();
        let read = retry_eintr(|| {
            // SAFETY: `info` is writable and `size` bytes long.
            let count = unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            usize::try_from(count).map_err(|_| io::Error::last_os_error())
        });
        match read {
            Ok(count) if count == size => Ok(i32::try_from(info.ssi_signo).ok()),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A counter other threads bump to wake the loop.
pub struct WakeFd(OwnedFd);

impl WakeFd {
    pub fn new() -> io::Result<WakeFd> {
        // SAFETY: eventfd has no memory arguments.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: eventfd returned a new open fd that nothing else owns.
        Ok(WakeFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the loop. Cannot block: the counter only saturates after 2^64
    /// wake-ups nobody took, and then the loop is awake anyway.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 readable bytes; EAGAIN (a full counter) means
        // the loop already has a wake-up waiting.
        let _ = retry_eintr(|| {
            check_size(unsafe {
                libc::write(
                    self.0.as_raw_fd(),
                    (&one as *const u64).cast(),
                    mem::size_of::<u64>(),
                )
            })
        });
    }

    /// Takes the wake-ups waiting, so that the next poll waits again.
    pub fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into `count`; EAGAIN means there were none.
        let _ = retry_eintr(|| {
            check_size(unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    (&mut count as *mut u64).cast(),
                    mem::size_of::<u64>(),
                )
            })
        });
    }
}

/// For a thread other than the loop that waits on its own wake-ups.
impl AsFd for WakeFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What a wait found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Woken {
    pub signals: bool,
    pub inputs: bool,
}

/// Waits until a signal or a wake-up comes, or `timeout` passes (`None`:
/// however long it takes). Clears the wake-up it found.
pub fn wait(signals: &SignalFd, wake: &WakeFd, timeout: Option<Duration>) -> io::Result<Woken> {
    let millis = timeout.map_or(-1, |t| {
        // Rounded up, so that a deadline is never woken for just before it.
        let micros = t.as_micros().saturating_add(999);
        libc::c_int::try_from(micros / 1000).unwrap_or(libc::c_int::MAX)
    });
    let mut fds = [signals.0.as_raw_fd(), wake.0.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let count = fds.len() as libc::nfds_t;
    // SAFETY: `fds` is a valid array of `count` pollfd that poll only
    // writes `revents` of.
    let ready = check(unsafe { libc::poll(fds.as_mut_ptr(), count, millis) });
    match ready {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            return Ok(Woken {
                signals: true,
                inputs: true,
            })
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let [signal_fd, wake_fd] = fds;
    let inputs = wake_fd.revents != 0;
    if inputs {
        wake.clear();
    }
    Ok(Woken {
        signals: signal_fd.revents != 0,
        inputs,
    })
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_ends_the_wait_once() {
        let signals = SignalFd::new(&SignalSet::empty()).unwrap();
        let wake = WakeFd::new().unwrap();
        wake.wake();
        wake.wake();
        let woken = wait(&signals, &wake, Some(Duration::from_secs(5))).unwrap();
        assert!(woken.inputs && !woken.signals);
        let woken = wait(&signals, &wake, Some(Duration::from_millis(1))).unwrap();
        assert!(!woken.inputs, "the wake-ups were cleared");
    }
}
