//! Sockets herd owns for its children (`--listen`): their addresses and
//! names, binding them once before the first child (or adopting the ones
//! systemd passed to herd), which process gets which, and removing the unix
//! socket files herd made when it exits.

use crate::error::Failure;
use crate::spec::{self, ProcessSpec};
use crate::sys::process;
use crate::sys::socket::{self, UnixPath};
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What a socket without a name is called in `LISTEN_FDNAMES`: systemd's
/// name for a socket it has no name for.
pub const DEFAULT_NAME: &str = "unknown";

/// The longest unix socket path: `sun_path` holds 108 bytes with its NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// Where a `--listen` socket is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    /// `tcp:PORT`: every address, IPv6 and IPv4 (`[::]` dual-stack), or
    /// every IPv4 address where the system has no IPv6.
    TcpAnyHost(u16),
    Unix(PathBuf),
}

/// One `--listen [NAME=]ADDR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub name: String,
    /// A NAME was given: only then may a socket from systemd stand in.
    pub named: bool,
    pub address: Address,
    /// As the user wrote it, for messages.
    pub text: String,
}

/// Reads `[NAME=]tcp:PORT`, `tcp:HOST:PORT`, `tcp:[IPV6]:PORT` or
/// `unix:PATH`. HOST is an address, never a name to look up. PORT 0 lets
/// the kernel choose one (the child finds it with getsockname).
pub fn parse(text: &str) -> Result<Listen, String> {
    let is_address = text.starts_with("tcp:") || text.starts_with("unix:");
    let (name, address) = match text.split_once('=') {
        Some((name, address)) if !is_address => {
            check_name(name)?;
            (Some(name), address)
        }
        _ => (None, text),
    };
    Ok(Listen {
        name: name.unwrap_or(DEFAULT_NAME).to_string(),
        named: name.is_some(),
        address: parse_address(address)?,
        text: text.to_string(),
    })
}

/// A socket's name goes into `LISTEN_FDNAMES`, which separates names with
/// ':', and into `sockets=A,B` lists: process-name characters only.
fn check_name(name: &str) -> Result<(), String> {
    if name.contains(':') {
        return Err(format!(
            "'{name}': a socket name may not contain ':' (LISTEN_FDNAMES separates names with it)"
        ));
    }
    if !spec::valid_name(name) || name.len() > 255 {
        return Err(format!(
            "'{name}' is not a socket name (letters, digits, '_', '.', '-'; at most 255)"
        ));
    }
    Ok(())
}

fn parse_address(text: &str) -> Result<Address, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() || path.contains('\0') {
            return Err(format!("'{text}' is not unix:PATH"));
        }
        if path.len() > MAX_UNIX_PATH {
            return Err(format!(
                "the path of '{text}' is {} bytes long; a unix socket's path has at most {MAX_UNIX_PATH}",
                path.len()
            ));
        }
        return Ok(Address::Unix(PathBuf::from(path)));
    }
    let Some(rest) = text.strip_prefix("tcp:") else {
        return Err(format!(
            "'{text}' is not an address (tcp:PORT, tcp:HOST:PORT, tcp:[IPV6]:PORT, unix:PATH)"
        ));
    };
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("'{text}' lacks the ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("'{text}' needs ':PORT' after ']'"))?;
        let host = inside
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("'{inside}' is not an IPv6 address"))?;
        let port = parse_port(port)?;
        return Ok(Address::Tcp(SocketAddr::V6(SocketAddrV6::new(
            host, port, 0, 0,
        ))));
    }
    match rest.split_once(':') {
        None => Ok(Address::TcpAnyHost(parse_port(rest)?)),
        Some((host, port)) => {
            if port.contains(':') || host.parse::<Ipv6Addr>().is_ok() {
                return Err(format!(
                    "'{text}': write an IPv6 address in brackets, as in tcp:[::1]:8080"
                ));
            }
            let host = host.parse::<Ipv4Addr>().map_err(|_| {
                format!("'{host}' is not an IP address (herd looks up no host names)")
            })?;
            Ok(Address::Tcp(SocketAddr::V4(SocketAddrV4::new(
                host,
                parse_port(port)?,
            ))))
        }
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(number) if digits => Ok(number),
        _ => Err(format!("'{port}' is not a TCP port (0 to 65535)")),
    }
}

/// A TCP listener on `port` at every address: IPv6 and IPv4 (`[::]`
/// dual-stack), or every IPv4 address where the system has no IPv6.
pub fn listen_tcp_any_host(port: u16) -> std::io::Result<OwnedFd> {
    let any = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    match socket::listen_tcp(any, true) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
            ) =>
        {
            let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
            socket::listen_tcp(any, false)
        }
        other => other,
    }
}

/// Sockets herd was started with by systemd (`LISTEN_FDS`, with
/// `LISTEN_PID` herd's pid), taken before herd opens any fd of its own.
#[derive(Debug, Default)]
pub struct Inherited(Vec<(String, OwnedFd)>);

impl Inherited {
    /// Adopts fds 3.. as `LISTEN_FDS` counts them (making them
    /// close-on-exec), named from `LISTEN_FDNAMES`. Variables meant for
    /// another process (another `LISTEN_PID`, or none) are ignored.
    pub fn take() -> Result<Inherited, Failure> {
        let var = |key: &str| std::env::var(key).ok();
        let for_herd = var("LISTEN_PID")
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| pid == process::own_pid());
        if !for_herd {
            return Ok(Inherited::default());
        }
        let doing = "adopting the sockets systemd passed (LISTEN_FDS)";
        let given = var("LISTEN_FDS").unwrap_or_default();
        let count = given
            .parse::<usize>()
            .map_err(|_| Failure::new(doing, format!("LISTEN_FDS='{given}' is not a count")))?;
        let names = var("LISTEN_FDNAMES").unwrap_or_default();
        let mut names = names.split(':');
        let mut adopted = Vec::new();
        for fd in (3..).take(count) {
            let socket = socket::adopt_inherited(fd).map_err(|e| {
                Failure::new(
                    doing,
                    format!(
                        "LISTEN_FDS={count}, but fd {fd}: {}",
                        crate::error::describe(&e)
                    ),
                )
            })?;
            let name = names
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_NAME);
            adopted.push((name.to_string(), socket));
        }
        Ok(Inherited(adopted))
    }
}

/// A socket herd holds for its whole life.
struct Socket {
    name: String,
    fd: OwnedFd,
}

/// The sockets, in `--listen` order, then the adopted ones no `--listen`
/// named; and the unix socket files to remove at the end.
pub struct Sockets {
    list: Vec<Socket>,
    /// Path, device and inode of each socket file herd created.
    made_files: Vec<(PathBuf, u64, u64)>,
}

impl Sockets {
    /// Binds every `--listen` (or takes an adopted socket of its NAME), in
    /// order; adopted sockets no `--listen` named come last.
    pub fn open(listens: &[Listen], inherited: Inherited) -> Result<Sockets, Failure> {
        let mut adopted: Vec<Option<(String, OwnedFd)>> =
            inherited.0.into_iter().map(Some).collect();
        let mut sockets = Sockets {
            list: Vec::with_capacity(listens.len().saturating_add(adopted.len())),
            made_files: Vec::new(),
        };
        for listen in listens {
            let stand_in = adopted.iter_mut().find(|slot| {
                listen.named && slot.as_ref().is_some_and(|(name, _)| *name == listen.name)
            });
            let fd = match stand_in.and_then(Option::take) {
                Some((_, fd)) => fd,
                None => sockets.bind(listen)?,
            };
            sockets.list.push(Socket {
                name: listen.name.clone(),
                fd,
            });
        }
        sockets.list.extend(
            adopted
                .into_iter()
                .flatten()
                .map(|(name, fd)| Socket { name, fd }),
        );
        Ok(sockets)
    }

    fn bind(&mut self, listen: &Listen) -> Result<OwnedFd, Failure> {
        let doing = format!("binding --listen {}", listen.text);
        let failed = |e: std::io::Error| Failure::io(&doing, &e);
        match &listen.address {
            Address::Tcp(address) => socket::listen_tcp(*address, false).map_err(failed),
            Address::TcpAnyHost(port) => listen_tcp_any_host(*port).map_err(failed),
            Address::Unix(path) => {
                match socket::unix_path_state(path).map_err(failed)? {
                    UnixPath::Free => {}
                    UnixPath::StaleSocket => fs::remove_file(path).map_err(failed)?,
                    UnixPath::LiveSocket => {
                        return Err(Failure::new(doing, "another program listens on it"))
                    }
                    UnixPath::NotASocket => {
                        return Err(Failure::new(
                            doing,
                            "it exists and is not a socket (herd replaces only a dead socket)",
                        ))
                    }
                }
                let fd = socket::listen_unix(path).map_err(failed)?;
                let meta = fs::symlink_metadata(path).map_err(failed)?;
                self.made_files.push((path.clone(), meta.dev(), meta.ino()));
                Ok(fd)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Which sockets (indices, in order) a process gets: all, or those its
    /// `sockets=` names. An unknown name is an error.
    pub fn for_process(&self, spec: &ProcessSpec) -> Result<Vec<usize>, Failure> {
        let Some(wanted) = &spec.sockets else {
            return Ok((0..self.list.len()).collect());
        };
        if let Some(unknown) = wanted
            .iter()
            .find(|name| !self.list.iter().any(|s| s.name == **name))
        {
            return Err(Failure::new(
                "reading arguments",
                format!(
                    "--sockets {}: no --listen socket is named '{unknown}'",
                    spec.name
                ),
            ));
        }
        Ok(self
            .list
            .iter()
            .enumerate()
            .filter(|(_, socket)| wanted.contains(&socket.name))
            .map(|(index, _)| index)
            .collect())
    }

    pub fn fds(&self, indices: &[usize]) -> Vec<BorrowedFd<'_>> {
        indices
            .iter()
            .filter_map(|i| self.list.get(*i))
            .map(|socket| socket.fd.as_fd())
            .collect()
    }

    /// `LISTEN_FDNAMES` for these sockets.
    pub fn names(&self, indices: &[usize]) -> String {
        let names: Vec<&str> = indices
            .iter()
            .filter_map(|i| self.list.get(*i))
            .map(|socket| socket.name.as_str())
            .collect();
        names.join(":")
    }
}

impl Drop for Sockets {
    /// Removes the socket files herd made, unless another program has put
    /// its own at the path since.
    fn drop(&mut self) {
        for (path, dev, ino) in &self.made_files {
            let same = fs::symlink_metadata(path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino);
            if same {
                let _ = fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Address {
        parse(text).unwrap().address
    }

    #[test]
    fn reads_every_kind_of_address() {
        assert_eq!(address("tcp:8080"), Address::TcpAnyHost(8080));
        assert_eq!(address("tcp:0"), Address::TcpAnyHost(0));
        assert_eq!(
            address("tcp:127.0.0.1:80"),
            Address::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            address("tcp:[::1]:65535"),
            Address::Tcp("[::1]:65535".parse().unwrap())
        );
        assert_eq!(
            address("unix:/run/app.sock"),
            Address::Unix("/run/app.sock".into())
        );
        assert_eq!(address("unix:rel/a=b"), Address::Unix("rel/a=b".into()));
    }

    #[test]
    fn a_name_comes_before_the_equals_sign_and_defaults_to_unknown() {
        let named = parse("http=tcp:80").unwrap();
        assert_eq!((named.name.as_str(), named.named), ("http", true));
        let plain = parse("tcp:80").unwrap();
        assert_eq!((plain.name.as_str(), plain.named), ("unknown", false));
        let path_with_equals = parse("unix:/tmp/x=y").unwrap();
        assert!(!path_with_equals.named);
        assert_eq!(parse("a.b-c_9=unix:/s").unwrap().name, "a.b-c_9");
    }

    #[test]
    fn refuses_bad_addresses_and_names_with_a_reason() {
        let long = format!("unix:/{}", "x".repeat(MAX_UNIX_PATH));
        for (text, why) in [
            ("tcp:70000", "'70000' is not a TCP port (0 to 65535)"),
            ("tcp:-1", "not a TCP port"),
            ("tcp:+80", "not a TCP port"),
            ("tcp:", "not a TCP port"),
            ("tcp:0080000", "not a TCP port"),
            ("tcp:example.com:80", "herd looks up no host names"),
            ("tcp:::1:80", "write an IPv6 address in brackets"),
            ("tcp:[::1]", "needs ':PORT'"),
            ("tcp:[::1:80", "lacks the ']'"),
            ("tcp:[1.2.3.4]:80", "not an IPv6 address"),
            ("udp:53", "is not an address"),
            ("8080", "is not an address"),
            ("unix:", "is not unix:PATH"),
            (&long, "a unix socket's path has at most 107"),
            ("a:b=tcp:80", "may not contain ':'"),
            ("we b=tcp:80", "is not a socket name"),
            ("=tcp:80", "is not a socket name"),
            ("web=", "is not an address"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
        let longest = format!("unix:/{}", "x".repeat(MAX_UNIX_PATH - 1));
        assert!(parse(&longest).is_ok());
    }

    fn sockets(names: &[&str]) -> Sockets {
        let listens: Vec<Listen> = names
            .iter()
            .map(|name| parse(&format!("{name}=tcp:127.0.0.1:0")).unwrap())
            .collect();
        Sockets::open(&listens, Inherited::default()).unwrap()
    }

    #[test]
    fn a_process_gets_every_socket_or_those_it_names_in_listen_order() {
        let sockets = sockets(&["http", "admin", "metrics"]);
        let mut web = ProcessSpec::new("web".into(), "x".into(), &Default::default());
        assert_eq!(sockets.for_process(&web).unwrap(), [0, 1, 2]);
        web.sockets = Some(vec!["metrics".into(), "http".into()]);
        let chosen = sockets.for_process(&web).unwrap();
        assert_eq!(chosen, [0, 2]);
        assert_eq!(sockets.names(&chosen), "http:metrics");
        assert_eq!(sockets.fds(&chosen).len(), 2);
        web.sockets = Some(vec![]);
        assert!(sockets.for_process(&web).unwrap().is_empty());
        web.sockets = Some(vec!["nope".into()]);
        let error = sockets.for_process(&web).unwrap_err().to_string();
        assert_eq!(
            error,
            "reading arguments: --sockets web: no --listen socket is named 'nope'"
        );
    }

    #[test]
    fn a_bind_failure_names_the_flag() {
        let taken = sockets(&["a"]);
        let port = socket::local_port(taken.fds(&[0])[0]).unwrap();
        let again = parse(&format!("tcp:127.0.0.1:{port}")).unwrap();
        let error = Sockets::open(&[again], Inherited::default())
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            format!("binding --listen tcp:127.0.0.1:{port}: address already in use")
        );
    }
}
