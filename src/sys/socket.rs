//! Listening sockets herd holds for its children: binding TCP and unix
//! stream listeners, taking over the fds systemd passed to herd, and
//! waiting on many sockets at once.

use super::check;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// The listen queue herd asks for; the kernel caps it at
/// /proc/sys/net/core/somaxconn (4096 since Linux 5.4).
pub const BACKLOG: libc::c_int = 4096;

/// A TCP listener on `address`: close-on-exec, SO_REUSEADDR (a restarted
/// herd can bind while old connections linger in TIME_WAIT) and never
/// SO_REUSEPORT (a second program must not be able to share the port).
/// `dual_stack`: an IPv6 socket that takes IPv4 connections too, whatever
/// the system's default (net.ipv6.bindv6only).
pub fn listen_tcp(address: SocketAddr, dual_stack: bool) -> io::Result<OwnedFd> {
    let domain = match address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket has no memory arguments.
    let fd = check(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket returned a new fd that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    set_flag(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
    if let SocketAddr::V6(_) = address {
        set_flag(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, !dual_stack)?;
    }
    let rc = match address {
        SocketAddr::V4(v4) => {
            let raw = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: the pointer and length describe `raw`, a sockaddr_in.
            unsafe {
                libc::bind(
                    socket.as_raw_fd(),
                    (&raw as *const libc::sockaddr_in).cast(),
                    mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(v6) => {
            let raw = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: the pointer and length describe `raw`, a sockaddr_in6.
            unsafe {
                libc::bind(
                    socket.as_raw_fd(),
                    (&raw as *const libc::sockaddr_in6).cast(),
                    mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    check(rc)?;
    set_backlog(&socket)?;
    Ok(socket)
}

/// A unix stream listener at `path` (which must not exist), close-on-exec.
pub fn listen_unix(path: &Path) -> io::Result<OwnedFd> {
    let socket = OwnedFd::from(UnixListener::bind(path)?);
    set_backlog(&socket)?;
    Ok(socket)
}

/// What is at the path a unix listener is to be bound to.
#[derive(Debug, PartialEq, Eq)]
pub enum UnixPath {
    Free,
    /// A socket nobody accepts on: left by a program that died.
    StaleSocket,
    /// A socket some program accepts connections on.
    LiveSocket,
    /// A file, directory or anything else that is not a socket.
    NotASocket,
}

/// Looks at what is at `path`. A socket counts as live unless connecting to
/// it is refused; a connection made only to look is closed at once.
pub fn unix_path_state(path: &Path) -> io::Result<UnixPath> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UnixPath::Free),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Ok(UnixPath::NotASocket);
    }
    match UnixStream::connect(path) {
        Ok(_) => Ok(UnixPath::LiveSocket),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(UnixPath::StaleSocket),
        // A full listen queue (EAGAIN) means a listener.
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(UnixPath::LiveSocket),
        Err(e) => Err(e),
    }
}

/// Asks for a listen queue of `BACKLOG` (listen(2) again on a listening
/// socket only changes its queue length).
fn set_backlog(socket: &OwnedFd) -> io::Result<()> {
    // SAFETY: listen has no memory arguments.
    check(unsafe { libc::listen(socket.as_raw_fd(), BACKLOG) }).map(drop)
}

fn set_flag(socket: &OwnedFd, level: libc::c_int, name: libc::c_int, on: bool) -> io::Result<()> {
    let value = libc::c_int::from(on);
    // SAFETY: the pointer and length describe `value`, a c_int.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Takes ownership of fd `fd`, inherited from the process that started
/// herd, and makes it close-on-exec so that a child only gets it when herd
/// hands it over. Fails (EBADF) when it is not open.
pub fn adopt_inherited(fd: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the flags of an fd, open or not.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above; F_SETFD sets them.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: the fd is open (F_GETFD succeeded); it was passed to herd for
    // herd to own, and nothing else in herd has claimed fds above stdio yet.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until one of `fds` can be read from (data, end of file or an
/// error, which the read reports), for at most `timeout` (`None`: however
/// long it takes), rounded up to a millisecond; says which, in order. An
/// interruption by a signal ends the wait with none.
pub fn wait_any_readable(fds: &[BorrowedFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let millis = timeout.map_or(-1, |t| {
        let micros = t.as_micros().saturating_add(999);
        libc::c_int::try_from(micros / 1000).unwrap_or(libc::c_int::MAX)
    });
    let mut entries: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(entries.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `entries` is a valid array of `count` pollfd that poll only
    // writes the `revents` of.
    match check(unsafe { libc::poll(entries.as_mut_ptr(), count, millis) }) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(vec![false; entries.len()]),
        Err(e) => Err(e),
        Ok(_) => Ok(entries.iter().map(|entry| entry.revents != 0).collect()),
    }
}

/// The port a TCP socket is bound to (for `tcp:...:0`, which the kernel picks).
#[cfg(test)]
pub(crate) fn local_port(socket: std::os::fd::BorrowedFd) -> io::Result<u16> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut length = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the pointers describe `storage` and its length, which
    // getsockname writes at most.
    check(unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut length,
        )
    })?;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits.
            let v4: libc::sockaddr_in = unsafe { mem::transmute_copy(&storage) };
            Ok(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits.
            let v6: libc::sockaddr_in6 = unsafe { mem::transmute_copy(&storage) };
            Ok(u16::from_be(v6.sin6_port))
        }
        _ => Err(io::ErrorKind::InvalidInput.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6, TcpStream};
    use std::os::fd::AsFd;

    fn is_cloexec(fd: &OwnedFd) -> bool {
        // SAFETY: F_GETFD only reads the flags of an open fd.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        flags & libc::FD_CLOEXEC != 0
    }

    fn option(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut length = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the pointers describe `value` and its length.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut length,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn a_tcp_listener_is_cloexec_reuseaddr_and_not_reuseport() {
        let socket = listen_tcp((Ipv4Addr::LOCALHOST, 0).into(), false).unwrap();
        assert!(is_cloexec(&socket));
        assert_eq!(option(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR), 1);
        assert_eq!(option(&socket, libc::SOL_SOCKET, libc::SO_REUSEPORT), 0);
        assert_eq!(option(&socket, libc::SOL_SOCKET, libc::SO_ACCEPTCONN), 1);
        let port = local_port(socket.as_fd()).unwrap();
        assert_ne!(port, 0);
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn an_ipv6_wildcard_listener_can_take_ipv4_too() {
        let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0);
        let Ok(socket) = listen_tcp(any.into(), true) else {
            return; // No IPv6 on this machine.
        };
        assert_eq!(option(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY), 0);
        let port = local_port(socket.as_fd()).unwrap();
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn tells_free_stale_live_and_foreign_paths_apart() {
        let dir = std::env::temp_dir().join(format!("herd-socket-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        assert_eq!(unix_path_state(&path).unwrap(), UnixPath::Free);
        let live = listen_unix(&path).unwrap();
        assert!(is_cloexec(&live));
        assert_eq!(unix_path_state(&path).unwrap(), UnixPath::LiveSocket);
        drop(live);
        assert_eq!(unix_path_state(&path).unwrap(), UnixPath::StaleSocket);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "x").unwrap();
        assert_eq!(unix_path_state(&path).unwrap(), UnixPath::NotASocket);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adopting_a_closed_fd_fails() {
        let error = adopt_inherited(1_000_000).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
    }
}
