//! Unix datagram sockets for the notify protocol: herd's receiving socket
//! (abstract, autobound, `SO_PASSCRED`), one datagram with its sender's pid,
//! and sends to a path or abstract address, with an fd or without waiting.

use super::{check, retry_eintr, Pid};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;
use std::{io, mem, ptr};

/// Where a datagram goes: a socket file, or a name in the abstract
/// namespace (written `@NAME`; the name without its leading NUL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Path(Vec<u8>),
    Abstract(Vec<u8>),
}

/// The most fds one SCM_RIGHTS message may carry (the kernel's SCM_MAX_FD).
const MAX_PASSED_FDS: usize = 253;

/// One datagram as it arrived.
pub struct Received {
    /// How many bytes of the buffer it filled.
    pub len: usize,
    /// The sender's pid, as the kernel vouches for it; `None` when it is
    /// not known in herd's pid namespace.
    pub pid: Option<Pid>,
    /// It was longer than the buffer, or its fds did not all fit.
    pub truncated: bool,
    /// The fds it carried, to be closed by the caller (CLOEXEC meanwhile).
    pub fds: Vec<OwnedFd>,
}

/// A datagram socket, close-on-exec.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory arguments.
    let fd =
        check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket returned a new open fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A socket bound to a fresh abstract name the kernel picks (autobind: no
/// other program can have taken it, and there is no file to remove),
/// with the senders' credentials attached to each datagram. Returns the
/// socket and its name (without the leading NUL).
pub fn bind_receiver() -> io::Result<(OwnedFd, Vec<u8>)> {
    let fd = socket()?;
    let on: libc::c_int = 1;
    // SAFETY: SO_PASSCRED reads one c_int, which `on` is.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    // SAFETY: sockaddr_un is plain integers; all zeroes is valid.
    let mut address: libc::sockaddr_un = unsafe { mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // A length of only the family asks for autobind.
    let family_only = mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
    // SAFETY: `address` is a valid sockaddr_un at least `family_only` long.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_un).cast(),
            family_only,
        )
    })?;
    let mut length = mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `address` is writable and `length` says how big it is.
    check(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut address as *mut libc::sockaddr_un).cast(),
            &mut length,
        )
    })?;
    let path_bytes = usize::try_from(length)
        .unwrap_or(0)
        .saturating_sub(mem::size_of::<libc::sa_family_t>());
    let name: Vec<u8> = address
        .sun_path
        .iter()
        .take(path_bytes)
        .skip(1)
        .map(|&c| c as u8)
        .collect();
    if name.is_empty() || address.sun_path[0] != 0 {
        return Err(io::Error::other("the kernel gave no abstract name"));
    }
    Ok((fd, name))
}

/// Waits for one datagram into `buf`. Fds it carries come back as owned
/// fds (close-on-exec from the start), however many there were room for;
/// the kernel closes those that did not fit.
pub fn receive(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<Received> {
    // Room for the credentials and the most fds a message can carry,
    // aligned as cmsghdr needs.
    const CONTROL_WORDS: usize = (64 + MAX_PASSED_FDS * 4) / 8 + 8;
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain integers and pointers; all zeroes is valid.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = mem::size_of_val(&control);
    let len = retry_eintr(|| {
        // SAFETY: `message` points at `iov` (which describes `buf`) and at
        // `control`, all alive and writable for the call.
        let count = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut message,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC,
            )
        };
        usize::try_from(count).map_err(|_| io::Error::last_os_error())
    })?;
    let mut received = Received {
        len: len.min(buf.len()),
        pid: None,
        truncated: message.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
        fds: Vec::new(),
    };
    // SAFETY: the CMSG_* macros walk the control data recvmsg filled in,
    // within `msg_controllen`; each header they return lies inside it.
    let mut header = unsafe { libc::CMSG_FIRSTHDR(&message) };
    while !header.is_null() {
        // SAFETY: `header` is non-null and points into `control`.
        let (level, kind, length) = unsafe {
            (
                (*header).cmsg_level,
                (*header).cmsg_type,
                (*header).cmsg_len,
            )
        };
        // SAFETY: CMSG_LEN only computes a length.
        let data_length = length.saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
        // SAFETY: the data of a header recvmsg wrote follows it.
        let data = unsafe { libc::CMSG_DATA(header) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            for at in 0..data_length / mem::size_of::<libc::c_int>() {
                // SAFETY: `at` is within the data, which holds c_ints
                // (possibly unaligned, hence read_unaligned).
                let raw = unsafe { ptr::read_unaligned(data.cast::<libc::c_int>().add(at)) };
                if raw >= 0 {
                    // SAFETY: the kernel installed this fd for herd just now;
                    // nothing else owns it.
                    received.fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        } else if level == libc::SOL_SOCKET
            && kind == libc::SCM_CREDENTIALS
            && data_length >= mem::size_of::<libc::ucred>()
        {
            // SAFETY: the data holds a ucred (checked length), maybe unaligned.
            let credentials = unsafe { ptr::read_unaligned(data.cast::<libc::ucred>()) };
            received.pid = (credentials.pid > 0).then_some(credentials.pid);
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        header = unsafe { libc::CMSG_NXTHDR(&message, header) };
    }
    Ok(received)
}

/// Sends `bytes` as one datagram to `to` from `fd`, with `pass` as an
/// SCM_RIGHTS fd if given. With `dont_wait`, a full receiver is an
/// EAGAIN error rather than a wait.
pub fn send(
    fd: BorrowedFd,
    to: &Address,
    bytes: &[u8],
    pass: Option<BorrowedFd>,
    dont_wait: bool,
) -> io::Result<()> {
    let (mut address, length) = socket_address(to)?;
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain integers and pointers; all zeroes is valid.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_name = (&mut address as *mut libc::sockaddr_un).cast();
    message.msg_namelen = length;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    if let Some(pass) = pass {
        message.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a length.
        message.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
        // SAFETY: the control buffer is 32 bytes, more than CMSG_SPACE(4),
        // so the first header and its 4 data bytes lie inside it.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(4) as usize;
            ptr::write_unaligned(
                libc::CMSG_DATA(header).cast::<libc::c_int>(),
                pass.as_raw_fd(),
            );
        }
    }
    let flags = libc::MSG_NOSIGNAL | if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    retry_eintr(|| {
        // SAFETY: `message` points at `address`, `iov` (describing
        // `bytes`, only read) and `control`, all alive for the call.
        let sent = unsafe { libc::sendmsg(fd.as_raw_fd(), &message, flags) };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    })?;
    Ok(())
}

fn socket_address(to: &Address) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain integers; all zeroes is valid.
    let mut address: libc::sockaddr_un = unsafe { mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (skip, name) = match to {
        Address::Path(path) => (0, path),
        Address::Abstract(name) => (1, name),
    };
    // A path needs its terminating NUL to fit; an abstract name has none.
    let room = address.sun_path.len().saturating_sub(1 - skip);
    if name.is_empty() || skip + name.len() > room || name.contains(&0) && skip == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (slot, byte) in address.sun_path.iter_mut().skip(skip).zip(name) {
        *slot = *byte as libc::c_char;
    }
    let length = mem::size_of::<libc::sa_family_t>() + skip + name.len() + (1 - skip);
    Ok((address, length as libc::socklen_t))
}

/// The process group of `pid`, while it exists (a zombie has one too).
pub fn process_group_of(pid: Pid) -> Option<Pid> {
    // SAFETY: getpgid has no memory arguments.
    let group = unsafe { libc::getpgid(pid) };
    (group > 0).then_some(group)
}

/// CLOCK_MONOTONIC, as systemd's `MONOTONIC_USEC` wants it.
pub fn monotonic_now() -> Duration {
    // SAFETY: timespec is plain integers; all zeroes is valid.
    let mut now: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_datagram_arrives_with_its_senders_pid_and_its_fds() {
        let (receiver, name) = bind_receiver().unwrap();
        assert_eq!(name.len(), 5, "autobind names are five hex digits");
        let sender = socket().unwrap();
        let to = Address::Abstract(name);
        let (read_end, _write_end) = super::super::fd::pipe().unwrap();
        send(
            sender.as_fd(),
            &to,
            b"READY=1",
            Some(read_end.as_fd()),
            true,
        )
        .unwrap();
        let mut buf = [0u8; 16];
        let got = receive(receiver.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"READY=1");
        assert_eq!(got.pid, Some(std::process::id() as Pid));
        assert!(!got.truncated);
        assert_eq!(got.fds.len(), 1);
        send(sender.as_fd(), &to, &[b'x'; 40], None, true).unwrap();
        let got = receive(receiver.as_fd(), &mut buf).unwrap();
        assert!(got.truncated);
        assert_eq!(got.len, 16);
    }

    #[test]
    fn refuses_an_address_that_does_not_fit() {
        assert!(socket_address(&Address::Path(vec![b'a'; 108])).is_err());
        assert!(socket_address(&Address::Path(vec![b'a'; 107])).is_ok());
        assert!(socket_address(&Address::Abstract(vec![b'a'; 107])).is_ok());
        assert!(socket_address(&Address::Abstract(vec![b'a'; 108])).is_err());
        assert!(socket_address(&Address::Path(Vec::new())).is_err());
    }
}
