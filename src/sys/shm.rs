//! Shared memory over a file: a mapping that herd and the programs that read
//! it see at once, touched only through atomics, and a SIGBUS guard so that
//! someone truncating the file never kills the process that maps it.
//!
//! A store or load in a `MAP_SHARED` mapping past the end of its file raises
//! SIGBUS, and a same-uid `truncate` of the file is enough for that. The
//! guard's handler puts private zero pages where the file's were and marks
//! the mapping lost: the access goes on into memory nobody else sees, and
//! the owner notices the loss after its next write and makes a new file.

use super::check;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// How many mappings the guard can watch at once: herd maps one scoreboard
/// (and, for a moment while it replaces it, a second); the unit tests of a
/// test binary map a few each, all at once.
const GUARDED: usize = 16;

struct Guarded {
    start: AtomicUsize,
    len: AtomicUsize,
    lost: AtomicBool,
}

static GUARDS: [Guarded; GUARDED] = [const {
    Guarded {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        lost: AtomicBool::new(false),
    }
}; GUARDED];

static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A file mapped `MAP_SHARED`, read and written for its whole length as
/// 64-bit words.
pub struct SharedWords {
    base: NonNull<u64>,
    words: usize,
    guard: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory shared with other processes and only
// ever touched through atomics, so any thread may use it; nothing in it
// belongs to a thread.
unsafe impl Send for SharedWords {}
// SAFETY: as above: every access is atomic.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Maps the first `words` 64-bit words of `file`, which must be at least
    /// that long; `writable` needs a file opened for writing.
    pub fn map(file: &File, words: usize, writable: bool) -> io::Result<SharedWords> {
        install_guard()?;
        let len = words
            .checked_mul(8)
            .filter(|&len| len > 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let guard = GUARDS
            .iter()
            .position(|g| {
                g.len
                    .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("too many shared mappings"))?;
        let protection = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a new mapping at an address the kernel picks, of a file
        // that stays open for the call; nothing of ours is overwritten.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                protection,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        let Some(base) = NonNull::new(base.cast::<u64>()).filter(|_| base != libc::MAP_FAILED)
        else {
            let error = io::Error::last_os_error();
            GUARDS[guard].len.store(0, Ordering::Release);
            return Err(error);
        };
        GUARDS[guard].lost.store(false, Ordering::Relaxed);
        GUARDS[guard]
            .start
            .store(base.as_ptr() as usize, Ordering::Release);
        GUARDS[guard].len.store(len, Ordering::Release);
        Ok(SharedWords {
            base,
            words,
            guard,
            writable,
        })
    }

    /// How many words are mapped.
    pub fn len(&self) -> usize {
        self.words
    }

    fn word(&self, index: usize) -> Option<&AtomicU64> {
        if index >= self.words {
            return None;
        }
        // SAFETY: `index` is inside the mapping, which is page-aligned (so
        // every word is 8-aligned) and lives as long as `self`; AtomicU64
        // has u64's layout, and all access to the words is atomic.
        Some(unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(index)) })
    }

    /// Word `index` (0 past the end).
    pub fn load(&self, index: usize, order: Ordering) -> u64 {
        self.word(index).map_or(0, |word| word.load(order))
    }

    /// Sets word `index`; nothing past the end or in a read-only mapping.
    pub fn store(&self, index: usize, value: u64, order: Ordering) {
        if let Some(word) = self.word(index).filter(|_| self.writable) {
            word.store(value, order);
        }
    }

    /// Adds to word `index` and returns what it held (0 past the end or in a
    /// read-only mapping, which it leaves alone).
    pub fn fetch_add(&self, index: usize, value: u64, order: Ordering) -> u64 {
        match self.word(index).filter(|_| self.writable) {
            Some(word) => word.fetch_add(value, order),
            None => 0,
        }
    }

    /// Whether the file shrank under the mapping: it is then private zero
    /// pages, which nobody else sees.
    pub fn is_lost(&self) -> bool {
        GUARDS[self.guard].lost.load(Ordering::Acquire)
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        let guard = &GUARDS[self.guard];
        let len = guard.len.swap(usize::MAX, Ordering::AcqRel);
        guard.start.store(0, Ordering::Release);
        // SAFETY: the mapping made in `map`, of this length, which nothing
        // uses any more: the words borrowed from it cannot outlive `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), len) };
        guard.len.store(0, Ordering::Release);
    }
}

/// Installs the SIGBUS handler once, and lets SIGBUS reach the calling
/// thread (and the threads it starts later), whose other signals may all
/// be blocked: a blocked SIGBUS raised by a fault kills the process.
fn install_guard() -> io::Result<()> {
    INSTALL.call_once(|| {
        // SAFETY: an all-zero sigaction is valid storage that is filled in
        // below before it is used.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `action` is initialised, and its handler only makes
        // async-signal-safe system calls and atomic accesses.
        let installed = unsafe { libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) } == 0;
        INSTALLED.store(installed, Ordering::Release);
    });
    if !INSTALLED.load(Ordering::Acquire) {
        return Err(io::Error::other("installing the SIGBUS guard failed"));
    }
    let mut bus = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset fills the set in; sigaddset adds a valid signal.
    unsafe {
        check(libc::sigemptyset(bus.as_mut_ptr()))?;
        check(libc::sigaddset(bus.as_mut_ptr(), libc::SIGBUS))?;
    }
    // SAFETY: the set was filled in above; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, bus.as_ptr(), ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// A SIGBUS in a guarded mapping: private zero pages take the file's place
/// and the access goes on. One sent by a process (`kill -BUS`) is ignored:
/// herd keeps SIGBUS for this, as tini keeps the synchronous signals.
/// Any other fault gets the default action, as it would have without us.
extern "C" fn on_sigbus(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code <= 0 {
        return;
    }
    for guard in &GUARDS {
        let start = guard.start.load(Ordering::Acquire);
        let len = guard.len.load(Ordering::Acquire);
        if start == 0 || len == usize::MAX || address < start || address - start >= len {
            continue;
        }
        // SAFETY: replaces exactly the guarded mapping, at its own address
        // and length, with anonymous memory; mmap is a plain system call.
        let replaced = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if replaced != libc::MAP_FAILED {
            guard.lost.store(true, Ordering::Release);
            return;
        }
    }
    // SAFETY: restoring the default action runs no code; the faulting access
    // then raises SIGBUS again, which ends the process as it would have.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(words: usize) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("herd-shm-{}-{}", std::process::id(), rand_suffix()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.write_all(&vec![0u8; words * 8]).unwrap();
        (path, file)
    }

    fn rand_suffix() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn two_mappings_of_one_file_see_each_others_words() {
        let (path, file) = temp_file(16);
        let writer = SharedWords::map(&file, 16, true).unwrap();
        let reader = SharedWords::map(&File::open(&path).unwrap(), 16, false).unwrap();
        writer.store(3, 42, Ordering::Release);
        assert_eq!(reader.load(3, Ordering::Acquire), 42);
        assert_eq!(writer.fetch_add(3, 1, Ordering::AcqRel), 42);
        assert_eq!(reader.load(3, Ordering::Acquire), 43);
        // Past the end, and writes through a read-only mapping, do nothing.
        assert_eq!(reader.load(16, Ordering::Acquire), 0);
        reader.store(3, 7, Ordering::Release);
        assert_eq!(reader.fetch_add(3, 7, Ordering::AcqRel), 0);
        assert_eq!(writer.load(3, Ordering::Acquire), 43);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_truncated_file_loses_the_mapping_instead_of_killing_the_process() {
        let (path, file) = temp_file(1024);
        let words = SharedWords::map(&file, 1024, true).unwrap();
        words.store(1000, 5, Ordering::Release);
        assert!(!words.is_lost());
        file.set_len(0).unwrap();
        // Past the new end of the file: SIGBUS without the guard.
        words.store(1000, 6, Ordering::Release);
        assert!(words.is_lost());
        assert_eq!(words.load(1000, Ordering::Acquire), 6);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "nothing reached the file"
        );
        drop(words);
        std::fs::remove_file(path).unwrap();
    }
}
