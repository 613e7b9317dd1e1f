//! Pipes, and writes that survive EINTR, EAGAIN and a closed reader.

use super::{check, retry_eintr};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{io, mem};

/// The most slices one writev(2) takes on Linux (the kernel's UIO_MAXIOV).
pub const MAX_SLICES: usize = 1024;

/// A pipe as (read end, write end), both close-on-exec so that a child only
/// gets the end it is explicitly given.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe_with_flags(libc::O_CLOEXEC)
}

fn pipe_with_flags(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the two-element array it is given.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    // SAFETY: pipe2 succeeded: both fds are open and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes reads from `fd` (and writes to it) fail with EAGAIN instead of
/// waiting. Only for an fd herd alone uses: the flag belongs to the open file,
/// which every process holding a copy of the fd shares.
pub fn set_nonblocking(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL only read and set the flags of an open fd.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Lets the pipe of `fd` hold `bytes` (rounded up to a power of two pages)
/// instead of 64 KiB. Fails (EPERM) for an unprivileged user whose pipes
/// already hold more than /proc/sys/fs/pipe-user-pages-soft.
pub fn set_pipe_size(fd: BorrowedFd, bytes: usize) -> io::Result<()> {
    let bytes =
        libc::c_int::try_from(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: F_SETPIPE_SZ only changes the capacity of an open pipe.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) })?;
    Ok(())
}

/// Reads once into the spare capacity of `buf` and appends what came;
/// returns how many bytes that was, 0 at end of file (or when `buf` has no
/// spare capacity). Retries EINTR.
///
/// Reading into spare capacity, rather than a zeroed slice, means a large
/// buffer only costs memory for the pages data actually reached.
pub fn read_appending(fd: BorrowedFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let count = retry_eintr(|| {
        // SAFETY: the pointer and length describe the Vec's spare capacity,
        // which is writable; read(2) only writes into it.
        check_size(unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) })
    })?;
    // SAFETY: read(2) initialised the first `count` bytes of the spare
    // capacity, and `count` is at most its length.
    unsafe { buf.set_len(buf.len() + count) };
    Ok(count)
}

/// Writes all of `bytes`. EINTR is retried; EAGAIN (an fd left O_NONBLOCK,
/// e.g. by the program that started herd, sharing its stdout) waits until
/// the fd is writable and retries. Any other error, EPIPE included (herd
/// ignores SIGPIPE), is returned; some bytes may have been written by then.
pub fn write_all(fd: BorrowedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe `bytes`, readable memory.
        let written =
            check_size(unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) });
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => bytes = &bytes[count..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                poll_one(fd, libc::POLLOUT, None)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes once from `slices` (the first `MAX_SLICES` of them) with writev(2)
/// and returns how many bytes went, which may be fewer than they hold. EINTR
/// is retried, and EAGAIN waits until the fd is writable, as in `write_all`.
pub fn write_vectored(fd: BorrowedFd, slices: &[IoSlice]) -> io::Result<usize> {
    let slices = &slices[..slices.len().min(MAX_SLICES)];
    // At most MAX_SLICES, so it fits.
    let count = slices.len() as libc::c_int;
    loop {
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix, and the
        // pointer and count describe `slices`, each of readable memory.
        let written = check_size(unsafe {
            libc::writev(fd.as_raw_fd(), slices.as_ptr().cast::<libc::iovec>(), count)
        });
        match written {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                poll_one(fd, libc::POLLOUT, None)?;
            }
            other => return other,
        }
    }
}

/// Writes all of `bytes` to a non-blocking `fd` before `deadline`, waiting
/// while it is full. Returns how many bytes went: all of them, or fewer when
/// the deadline passed first. EINTR is retried; other errors are returned.
pub fn write_all_until(
    fd: BorrowedFd,
    bytes: &[u8],
    deadline: std::time::Instant,
) -> io::Result<usize> {
    let mut written = 0;
    while let Some(rest) = bytes.get(written..).filter(|rest| !rest.is_empty()) {
        // SAFETY: the pointer and length describe `rest`, readable memory.
        let result =
            check_size(unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) });
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => written += count,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() || !poll_one(fd, libc::POLLOUT, Some(left))? {
                    return Ok(written);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Waits until `fd` has data or is at end of file, for at most `timeout`
/// (`None`: however long it takes). Returns false when the time ran out.
pub fn wait_readable(fd: BorrowedFd, timeout: Option<Duration>) -> io::Result<bool> {
    poll_one(fd, libc::POLLIN, timeout)
}

/// poll(2) on one fd. An error or hang-up on the fd also ends the wait: the
/// read or write that follows reports it.
fn poll_one(fd: BorrowedFd, events: libc::c_short, timeout: Option<Duration>) -> io::Result<bool> {
    let millis = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
    });
    let mut entry = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `entry` is one valid pollfd and the count says 1.
    let ready = retry_eintr(|| check(unsafe { libc::poll(&mut entry, 1, millis) }))?;
    Ok(ready > 0)
}

/// The local time of day of `now` as (hour, minute, second, millisecond),
/// for output timestamps. Should the C library fail to convert it (a time
/// beyond its range), the UTC time of day is given instead.
pub fn local_time_of_day(now: SystemTime) -> (u8, u8, u8, u32) {
    // A clock set before 1970 shows as 1970's first second rather than failing.
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = since_epoch.subsec_millis();
    let seconds = libc::time_t::try_from(since_epoch.as_secs()).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` holds only integers and a pointer that may be null, so
    // all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // thread-safe form, writing only into `tm`.
    let converted = !unsafe { libc::localtime_r(&seconds, &mut tm) }.is_null();
    if !converted {
        let of_day = since_epoch.as_secs() % 86_400;
        return (
            (of_day / 3600) as u8,
            (of_day / 60 % 60) as u8,
            (of_day % 60) as u8,
            millis,
        );
    }
    // tm_sec can be 60 in a leap second; all three fit in a u8.
    (tm.tm_hour as u8, tm.tm_min as u8, tm.tm_sec as u8, millis)
}

/// `check` for the calls that return a byte count.
fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::thread;

    /// Reads until end of file, from a blocking or a non-blocking fd.
    fn read_to_end(fd: &OwnedFd) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            all.reserve(4096);
            wait_readable(fd.as_fd(), None).unwrap();
            if read_appending(fd.as_fd(), &mut all).unwrap() == 0 {
                return all;
            }
        }
    }

    #[test]
    fn write_all_until_stops_at_its_deadline_on_a_full_pipe() {
        let (read, write) = pipe().unwrap();
        set_nonblocking(write.as_fd()).unwrap();
        let bytes = vec![b'x'; 1 << 20];
        let deadline = std::time::Instant::now() + Duration::from_millis(20);
        let written = write_all_until(write.as_fd(), &bytes, deadline).unwrap();
        assert!(written > 0 && written < bytes.len(), "{written}");
        drop(read);
    }

    #[test]
    fn pipe_ends_are_close_on_exec() {
        let (read, write) = pipe().unwrap();
        for end in [&read, &write] {
            // SAFETY: F_GETFD only reads the flags of an open fd.
            let flags = unsafe { libc::fcntl(end.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
    }

    #[test]
    fn write_all_goes_through_a_pipe() {
        let (read, write) = pipe().unwrap();
        write_all(write.as_fd(), b"hello\nworld\n").unwrap();
        drop(write);
        assert_eq!(read_to_end(&read), b"hello\nworld\n");
    }

    #[test]
    fn write_all_waits_on_a_full_non_blocking_pipe() {
        let (read, write) = pipe_with_flags(libc::O_CLOEXEC | libc::O_NONBLOCK).unwrap();
        // Four times a pipe's default capacity, so the writer must hit EAGAIN.
        let sent: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let drainer = thread::spawn(move || read_to_end(&read));
        write_all(write.as_fd(), &sent).unwrap();
        drop(write);
        assert_eq!(drainer.join().unwrap(), sent);
    }

    #[test]
    fn write_vectored_writes_the_slices_in_order_and_waits_when_full() {
        let (read, write) = pipe_with_flags(libc::O_CLOEXEC | libc::O_NONBLOCK).unwrap();
        let pieces: Vec<Vec<u8>> = (0..2000)
            .map(|i| vec![(i % 251) as u8; 1 + i % 700])
            .collect();
        let expected = pieces.concat();
        let drainer = thread::spawn(move || read_to_end(&read));
        let mut slices: Vec<IoSlice> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let written = write_vectored(write.as_fd(), slices).unwrap();
            assert!(written > 0);
            IoSlice::advance_slices(&mut slices, written);
        }
        drop(write);
        assert_eq!(drainer.join().unwrap(), expected);
    }

    #[test]
    fn write_all_reports_a_closed_reader() {
        let (read, write) = pipe().unwrap();
        drop(read);
        // The test harness, like herd, ignores SIGPIPE, so this is EPIPE.
        let error = write_all(write.as_fd(), b"lost\n").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_pipe_can_be_made_larger() {
        let (read, write) = pipe().unwrap();
        set_pipe_size(read.as_fd(), 256 * 1024).unwrap();
        set_nonblocking(write.as_fd()).unwrap();
        // Fills without blocking only if the pipe grew.
        write_all(write.as_fd(), &[b'x'; 200 * 1024]).unwrap();
        // SAFETY: F_GETPIPE_SZ only reads the capacity of an open pipe.
        let size = unsafe { libc::fcntl(read.as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert_eq!(size, 256 * 1024);
    }

    #[test]
    fn read_appending_keeps_what_is_there_and_stops_at_capacity() {
        let (read, write) = pipe().unwrap();
        write_all(write.as_fd(), b"abcdef").unwrap();
        let mut buf = Vec::with_capacity(4);
        buf.extend_from_slice(b"xy");
        let room = buf.capacity() - 2;
        let count = read_appending(read.as_fd(), &mut buf).unwrap();
        assert_eq!(count, room.min(6));
        assert_eq!(buf, b"xyabcdef"[..2 + count]);
    }

    #[test]
    fn wait_readable_times_out_on_a_quiet_pipe_and_sees_data_and_eof() {
        let (read, write) = pipe().unwrap();
        assert!(!wait_readable(read.as_fd(), Some(Duration::from_millis(10))).unwrap());
        write_all(write.as_fd(), b"x").unwrap();
        assert!(wait_readable(read.as_fd(), Some(Duration::ZERO)).unwrap());
        let mut buf = Vec::with_capacity(1);
        read_appending(read.as_fd(), &mut buf).unwrap();
        drop(write);
        assert!(wait_readable(read.as_fd(), None).unwrap());
    }

    #[test]
    fn local_time_of_day_is_in_range() {
        let (hour, minute, second, millis) = local_time_of_day(SystemTime::now());
        assert!(hour < 24 && minute < 60 && second <= 60 && millis < 1000);
        let epoch_plus = UNIX_EPOCH + Duration::from_millis(1234);
        assert_eq!(local_time_of_day(epoch_plus).3, 234);
    }
}
