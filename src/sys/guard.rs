//! The guard: a clone of herd, made before its first process starts, that
//! outlives a herd killed with SIGKILL just long enough to stop that herd's
//! process groups (stop signal, grace, SIGKILL), as herd itself would.
//! A parent-death signal reaches a process alone; the guard reaches its
//! whole group, `sh -c` lines' children included.
//!
//! herd tells it each group it starts and each one that ends over a pipe,
//! in fixed records (below); the end of file without a `CLEAN` record first
//! means herd died. The guard never execs: it runs async-signal-safe calls
//! on memory made before the clone, like the clone of `check.rs`, and its
//! exit raises no SIGCHLD, so herd's reaping never sees it.

use super::datagram::monotonic_now;
use super::{check, Pid};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr;
use std::time::{Duration, Instant};

/// One record, little-endian: kind (u32), process group (i32), stop signal
/// (i32), 4 bytes of zero, grace in microseconds (u64).
pub const RECORD_BYTES: usize = 24;

/// Record kinds.
const STARTED: u32 = 1;
const ENDED: u32 = 2;
const CLEAN: u32 = 3;

/// The longest herd waits at its clean end for its guard to end.
const CLEAN_END_WAIT: Duration = Duration::from_secs(1);

/// Groups the guard can hold; more are not guarded (each process's
/// parent-death signal still is).
const CAPACITY: usize = 16_384;

/// How often the guard looks at the groups it stops.
const LOOK_EVERY_NANOS: libc::c_long = 10_000_000;

#[derive(Clone, Copy)]
struct Entry {
    pgid: Pid,
    signal: libc::c_int,
    grace: Duration,
    /// Set once the group is gone or has had SIGKILL.
    done: bool,
}

/// What the guard works on: made before the clone, its own copy after.
struct Plan {
    read_end: libc::c_int,
    entries: Vec<Entry>,
}

/// The guard is gone: it was killed.
#[derive(Debug)]
pub struct Lost;

/// herd's side: the pipe's write end, non-blocking so that a guard that
/// does not read (stopped) never holds herd up.
pub struct Guard {
    write_end: OwnedFd,
    pid: Pid,
}

fn record(kind: u32, pgid: Pid, signal: i32, grace_micros: u64) -> [u8; RECORD_BYTES] {
    let mut bytes = [0u8; RECORD_BYTES];
    bytes[0..4].copy_from_slice(&kind.to_le_bytes());
    bytes[4..8].copy_from_slice(&pgid.to_le_bytes());
    bytes[8..12].copy_from_slice(&signal.to_le_bytes());
    bytes[16..24].copy_from_slice(&grace_micros.to_le_bytes());
    bytes
}

impl Guard {
    /// Starts the guard.
    pub fn start() -> io::Result<Guard> {
        let (read_end, write_end) = super::fd::pipe()?;
        super::fd::set_nonblocking(write_end.as_fd())?;
        let plan = Plan {
            read_end: read_end.as_raw_fd(),
            entries: Vec::with_capacity(CAPACITY),
        };
        // SAFETY: the child runs only `guard_main`, async-signal-safe calls
        // on its copy of the plan. Nothing waits for it: the kernel reaps it
        // once herd is gone, and at herd's end it is herd's zombie until
        // herd exits.
        let Some(pid) = (unsafe { super::clone_silent() })? else {
            // SAFETY: this is the child; `plan` is its copy.
            unsafe { guard_main(plan) }
        };
        drop(read_end);
        Ok(Guard { write_end, pid })
    }

    /// Sends one record; `Err`: the guard is gone (someone killed it). A
    /// full pipe (a stopped guard) drops the record rather than wait.
    fn send(&self, bytes: &[u8; RECORD_BYTES]) -> Result<(), Lost> {
        // A record is shorter than PIPE_BUF: it goes whole or not at all.
        let sent = super::retry_eintr(|| {
            // SAFETY: the pointer and length describe `bytes`.
            let count = unsafe {
                libc::write(
                    self.write_end.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                )
            };
            check(i32::try_from(count).unwrap_or(-1))
        });
        match sent {
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                // The write raised SIGPIPE at this thread, blocked and so
                // pending, where the supervisor's signalfd would take it
                // for a signal to forward: it is herd's own, and goes.
                super::signal::discard_pending(libc::SIGPIPE);
                Err(Lost)
            }
            _ => Ok(()),
        }
    }

    /// A process group started: stopped with `signal`, then SIGKILL after
    /// `grace_micros`, if herd dies.
    pub fn started(&self, pgid: Pid, signal: i32, grace_micros: u64) -> Result<(), Lost> {
        self.send(&record(STARTED, pgid, signal, grace_micros))
    }

    /// The group has no member left: its id may go to another process.
    pub fn ended(&self, pgid: Pid) -> Result<(), Lost> {
        self.send(&record(ENDED, pgid, 0, 0))
    }

    /// herd ends as it meant to: the guard has nothing to do, and ends
    /// (at once: herd waits for that, a second at most, and reaps it, so
    /// that no process of herd's outlives it).
    pub fn clean(self) {
        let _ = self.send(&record(CLEAN, 0, 0, 0));
        drop(self.write_end);
        let Some(deadline) = Instant::now().checked_add(CLEAN_END_WAIT) else {
            return;
        };
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid c_int for waitpid to write; the
            // guard is this process's clone child, not reaped before.
            let reaped =
                unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG | libc::__WCLONE) };
            if reaped != 0 || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Applies one record to the table, which never grows past its capacity;
/// `true` for `CLEAN`.
fn apply(entries: &mut Vec<Entry>, bytes: &[u8; RECORD_BYTES]) -> bool {
    let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    let mut grace = [0u8; 8];
    grace.copy_from_slice(&bytes[16..24]);
    let (kind, pgid, signal) = (
        u32::from_le_bytes(word(0)),
        i32::from_le_bytes(word(4)),
        i32::from_le_bytes(word(8)),
    );
    match kind {
        STARTED if pgid > 1 && entries.len() < entries.capacity() => entries.push(Entry {
            pgid,
            signal,
            grace: Duration::from_micros(u64::from_le_bytes(grace)),
            done: false,
        }),
        ENDED => {
            if let Some(at) = entries.iter().position(|entry| entry.pgid == pgid) {
                entries.swap_remove(at);
            }
        }
        CLEAN => return true,
        _ => {}
    }
    false
}

/// The guard's life: it reads herd's records until the end of file, and
/// then, unless herd said it ends cleanly, stops every group it was told
/// of. Never returns.
///
/// # Safety
/// Only in the child of the clone, with its copy of the plan.
unsafe fn guard_main(mut plan: Plan) -> ! {
    // Out of herd's session and process group: a terminal's hang-up or a
    // signal to herd's group is not for the guard. Every signal stays
    // blocked (herd's mask), and every fd but the pipe goes, listening
    // sockets above all, so that none stays open because of the guard.
    libc::setsid();
    // Told apart from herd in ps(1) and /proc/PID/comm.
    libc::prctl(libc::PR_SET_NAME, c"herd-guard".as_ptr(), 0, 0, 0);
    if libc::dup2(plan.read_end, 0) == -1 {
        libc::_exit(1);
    }
    libc::syscall(
        libc::SYS_close_range,
        1 as libc::c_uint,
        libc::c_uint::MAX,
        0,
    );
    let mut buffer = [0u8; RECORD_BYTES * 64];
    let mut held = 0usize;
    let mut clean = false;
    loop {
        let room = buffer.len() - held;
        let count = libc::read(0, buffer.as_mut_ptr().add(held).cast(), room);
        if count == 0 {
            break;
        }
        if count < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            break;
        }
        held += count as usize;
        let whole = held - held % RECORD_BYTES;
        for one in buffer[..whole].chunks_exact(RECORD_BYTES) {
            if let Ok(one) = one.try_into() {
                clean |= apply(&mut plan.entries, one);
            }
        }
        buffer.copy_within(whole..held, 0);
        held -= whole;
    }
    if clean {
        libc::_exit(0);
    }
    let began = monotonic_now();
    for entry in plan.entries.iter() {
        libc::kill(-entry.pgid, entry.signal);
        libc::kill(-entry.pgid, libc::SIGCONT);
    }
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: LOOK_EVERY_NANOS,
    };
    loop {
        let elapsed = monotonic_now().saturating_sub(began);
        let mut waiting = false;
        for entry in plan.entries.iter_mut().filter(|entry| !entry.done) {
            if libc::kill(-entry.pgid, 0) == -1 {
                entry.done = true;
            } else if elapsed >= entry.grace {
                libc::kill(-entry.pgid, libc::SIGKILL);
                entry.done = true;
            } else {
                waiting = true;
            }
        }
        if !waiting {
            break;
        }
        libc::nanosleep(&pause, ptr::null_mut());
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_start_end_and_clean_the_table() {
        let mut entries = Vec::with_capacity(2);
        assert!(!apply(&mut entries, &record(STARTED, 40, 15, 2_000_000)));
        assert!(!apply(&mut entries, &record(STARTED, 41, 2, 0)));
        assert!(
            !apply(&mut entries, &record(STARTED, 42, 2, 0)),
            "over capacity"
        );
        assert!(
            !apply(&mut entries, &record(STARTED, 1, 2, 0)),
            "never init"
        );
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].pgid, entries[0].signal), (40, 15));
        assert_eq!(entries[0].grace, Duration::from_micros(2_000_000));
        assert!(!apply(&mut entries, &record(ENDED, 40, 0, 0)));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].pgid, 41);
        assert!(!apply(&mut entries, &[0xff; RECORD_BYTES]), "garbage");
        assert!(apply(&mut entries, &record(CLEAN, 0, 0, 0)));
    }
}
