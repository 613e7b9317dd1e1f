//! Ready probes: whether a process group listens on a TCP port, whether a file exists.

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// What a `tcp:` ready check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpProbe {
    /// A process of the group listens on the port.
    Ready,
    NotListening,
    /// Something listens on the port, but no process of the group: the
    /// process would be reported ready while another server answers for it.
    TakenByAnother,
}

/// The kernel's TCP_LISTEN, as /proc/net/tcp writes a socket's state.
const LISTEN: u8 = 0x0A;

/// Whether a process of process group `pgid` holds a socket listening on
/// `port` at `host` (or at a wildcard address, which covers `host`); with
/// `host` `None`, at any address. Reads /proc/net/tcp and tcp6, which show
/// the sockets of herd's network namespace, and the fds of the group's
/// processes under /proc.
pub fn tcp_listener(pgid: i32, host: Option<IpAddr>, port: u16) -> TcpProbe {
    let listeners: HashSet<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .filter_map(parse_socket)
                .filter(|socket| {
                    socket.state == LISTEN
                        && socket.port == port
                        && socket.inode != 0
                        && covers(socket.address, host)
                })
                .map(|socket| socket.inode)
                .collect::<Vec<_>>()
        })
        .collect();
    if listeners.is_empty() {
        TcpProbe::NotListening
    } else if !proc_shows_our_processes() || group_holds(pgid, &listeners) {
        // A /proc of another pid namespace (`unshare --pid` without a new
        // /proc) numbers processes otherwise: whose a socket is cannot be
        // told there, so any listener passes.
        TcpProbe::Ready
    } else {
        TcpProbe::TakenByAnother
    }
}

/// Whether `path` exists (relative to the working directory).
pub fn file_exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// One line of /proc/net/tcp or /proc/net/tcp6.
#[derive(Debug, PartialEq, Eq)]
struct Socket {
    address: IpAddr,
    port: u16,
    state: u8,
    inode: u64,
}

/// Reads `sl local_address rem_address st ... uid timeout inode`; `None`
/// for the heading and for any line that is not what the kernel writes.
fn parse_socket(line: &str) -> Option<Socket> {
    let mut fields = line.split_whitespace();
    let (slot, local, _remote, state) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    // After tx_queue:rx_queue, tr:tm->when, retrnsmt, uid and timeout.
    let inode = fields.nth(5)?;
    slot.strip_suffix(':')?;
    let (address, port) = local.split_once(':')?;
    Some(Socket {
        address: parse_address(address)?,
        port: parse_hex(port).and_then(|port| u16::try_from(port).ok())?,
        state: parse_hex(state).and_then(|state| u8::try_from(state).ok())?,
        inode: inode.parse().ok()?,
    })
}

/// The kernel writes an address as 32-bit words in hex, each the word's
/// value in the machine's byte order: 127.0.0.1 is `0100007F` on x86.
fn parse_address(hex: &str) -> Option<IpAddr> {
    let word = |at: usize| {
        hex.get(at * 8..at * 8 + 8)
            .and_then(parse_hex)
            .map(u32::to_ne_bytes)
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for (at, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(at)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Hex digits only: `from_str_radix` would also take a sign.
fn parse_hex(hex: &str) -> Option<u32> {
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Whether a listener bound to `bound` accepts connections for `host`. A
/// v4-mapped address is its IPv4 address; `::` is taken for dual-stack, as
/// Linux makes it unless the program asks for IPv6 only, which
/// /proc/net/tcp6 does not show; `0.0.0.0` covers IPv4 only.
fn covers(bound: IpAddr, host: Option<IpAddr>) -> bool {
    let Some(host) = host.map(|host| host.to_canonical()) else {
        return true;
    };
    let bound = bound.to_canonical();
    bound == host
        || match bound {
            IpAddr::V4(bound) => bound.is_unspecified() && host.is_ipv4(),
            IpAddr::V6(bound) => bound.is_unspecified(),
        }
}

/// Whether a process of group `pgid` has one of `sockets` open. The
/// leader, usually the one that listens, is looked at first.
fn group_holds(pgid: i32, sockets: &HashSet<u64>) -> bool {
    let holds = |pid: &str| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| process_group(&stat))
            == Some(pgid)
            && has_socket(pid, sockets)
    };
    let leader = pgid.to_string();
    if holds(&leader) {
        return true;
    }
    let Ok(processes) = fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str() else {
            return false;
        };
        pid != leader && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && holds(pid)
    })
}

/// The process group in a /proc/PID/stat line: `pid (comm) state ppid pgrp
/// ...`, where comm may hold blanks and parentheses, so the fields after it
/// are counted from its last `)`.
fn process_group(stat: &str) -> Option<i32> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    after_comm.split_whitespace().nth(2)?.parse().ok()
}

/// Whether process `pid` has one of `sockets` open: its fd links read
/// `socket:[INODE]`.
fn has_socket(pid: &str, sockets: &HashSet<u64>) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).ok().is_some_and(|target| {
            target
                .to_str()
                .and_then(|target| target.strip_prefix("socket:["))
                .and_then(|inode| inode.strip_suffix(']'))
                .and_then(|inode| inode.parse::<u64>().ok())
                .is_some_and(|inode| sockets.contains(&inode))
        })
    })
}

/// Whether /proc numbers processes as herd's pid namespace does:
/// /proc/self names herd by the pid it has there.
fn proc_shows_our_processes() -> bool {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str()?.parse::<u32>().ok())
        == Some(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    const V4_LISTENER: &str = "   1: 0100007F:1F92 00000000:0000 0A 00000000:00000000 00:00000000 \
                               00000000     0        0 31277 1 00000000543a5c3e 100 0 0 10 0";
    const V6_HEADING: &str =
        "  sl  local_address                         remote_address                \
                              st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    #[test]
    fn reads_a_socket_line_of_either_table() {
        let parsed = |line| parse_socket(line).unwrap();
        assert_eq!(
            parsed(V4_LISTENER),
            Socket {
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 8082,
                state: LISTEN,
                inode: 31277
            }
        );
        let wildcard_v4 =
            "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000 \
                              0        0 1606 1 00000000b701323c 100 0 0 10 0";
        assert_eq!(
            parsed(wildcard_v4).address,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(parsed(wildcard_v4).port, 2024);
        let established =
            "  12: 0100007F:D3A2 0100007F:1F90 01 00000000:00000000 02:000A7D8B 00000000 \
                              1000        0 4421907 2 0000000000000000 20 4 30 10 -1";
        assert_eq!(parsed(established).state, 1);
        assert_eq!(parsed(established).port, 54178);
        let loopback_v6 = "   0: 00000000000000000000000001000000:8B27 \
                              00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 \
                              00000000     0        0 31236 1 0000000097965d4b 100 0 0 10 0";
        assert_eq!(
            parsed(loopback_v6),
            Socket {
                address: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: 35623,
                state: LISTEN,
                inode: 31236
            }
        );
        let mapped_v6 = "   1: 0000000000000000FFFF00000100007F:1F90 \
                            00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 \
                            00000000     0        0 31275 1 0000000097965d4b 100 0 0 10 0";
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(parsed(mapped_v6).address, IpAddr::V6(mapped));
        assert_eq!(parsed(mapped_v6).port, 8080);
    }

    #[test]
    fn skips_what_is_not_a_socket_line() {
        let v4_heading = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                          retrnsmt   uid  timeout inode";
        for line in [
            v4_heading,
            V6_HEADING,
            "",
            "   1: 0100007F:1F92",
            &V4_LISTENER.replace("0100007F:", "0100007:"),
            &V4_LISTENER.replace("0100007F:", "0100007G:"),
            &V4_LISTENER.replace("0100007F:", "+100007F:"),
            &V4_LISTENER.replace("0100007F:", "010000\u{e9}F:"),
            &V4_LISTENER.replace(":1F92", ":1F9200"),
            &V4_LISTENER.replace(":1F92", ":"),
            &V4_LISTENER.replace(":1F92", ""),
            &V4_LISTENER.replace(" 0A ", " 10A "),
            &V4_LISTENER.replace("31277", "x"),
            &V4_LISTENER.replace("   1:", "   1"),
        ] {
            assert_eq!(parse_socket(line), None, "{line:?}");
        }
    }

    #[test]
    fn reads_the_process_group_after_the_last_parenthesis() {
        let stat = "18843 (cat) R 18800 18800 6171 0 -1 4194304 104 0 0 0";
        assert_eq!(process_group(stat), Some(18800));
        let odd = "4242 (a) b) (c 9 9) S 1 4240 4240 0 -1 4194560 0 0";
        assert_eq!(process_group(odd), Some(4240));
        assert_eq!(process_group("4242 (sh) S 1"), None);
        assert_eq!(process_group("4242 sh S 1 4240"), None);
        assert_eq!(process_group("4242 (sh) S 1 x"), None);
    }

    #[test]
    fn a_wildcard_listener_covers_its_family() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for (bound, host) in [
            ("127.0.0.1", None),
            ("::1", None),
            ("127.0.0.1", Some("127.0.0.1")),
            ("0.0.0.0", Some("127.0.0.1")),
            ("0.0.0.0", Some("0.0.0.0")),
            ("::", Some("127.0.0.1")),
            ("::", Some("::1")),
            ("::ffff:127.0.0.1", Some("127.0.0.1")),
            ("127.0.0.1", Some("::ffff:127.0.0.1")),
            ("::1", Some("::1")),
        ] {
            assert!(covers(ip(bound), host.map(ip)), "{bound} for {host:?}");
        }
        for (bound, host) in [
            ("127.0.0.1", "10.0.0.1"),
            ("127.0.0.1", "::1"),
            ("0.0.0.0", "::1"),
            ("::1", "127.0.0.1"),
            ("127.0.0.1", "0.0.0.0"),
        ] {
            assert!(!covers(ip(bound), Some(ip(host))), "{bound} for {host}");
        }
    }

    fn own_process_group() -> i32 {
        let stat = fs::read_to_string("/proc/self/stat").unwrap();
        process_group(&stat).unwrap()
    }

    /// A `sleep` in a process group of its own, killed on drop.
    struct OtherGroup(Child);

    impl OtherGroup {
        fn start() -> OtherGroup {
            OtherGroup(
                Command::new("sleep")
                    .arg("60")
                    .process_group(0)
                    .spawn()
                    .unwrap(),
            )
        }

        fn pgid(&self) -> i32 {
            i32::try_from(self.0.id()).unwrap()
        }
    }

    impl Drop for OtherGroup {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_listener_is_ready_only_for_the_group_that_holds_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let other = OtherGroup::start();
        let own = own_process_group();
        assert_eq!(tcp_listener(own, None, port), TcpProbe::Ready);
        let loopback = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(tcp_listener(own, loopback, port), TcpProbe::Ready);
        assert_eq!(
            tcp_listener(other.pgid(), None, port),
            TcpProbe::TakenByAnother
        );
        assert_eq!(
            tcp_listener(other.pgid(), loopback, port),
            TcpProbe::TakenByAnother
        );
        let elsewhere = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(tcp_listener(own, elsewhere, port), TcpProbe::NotListening);
        let v6 = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(tcp_listener(own, v6, port), TcpProbe::NotListening);
        drop(listener);
        assert_eq!(tcp_listener(own, None, port), TcpProbe::NotListening);
    }

    #[test]
    fn a_dual_stack_listener_is_found_for_an_ipv4_host() {
        let listener = TcpListener::bind("[::]:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let own = own_process_group();
        for host in [
            None,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ] {
            assert_eq!(tcp_listener(own, host, port), TcpProbe::Ready, "{host:?}");
        }
    }

    #[test]
    fn a_connected_socket_is_not_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(address).unwrap();
        let (served, _) = listener.accept().unwrap();
        drop(listener);
        let own = own_process_group();
        assert_eq!(
            tcp_listener(own, None, address.port()),
            TcpProbe::NotListening
        );
        drop((client, served));
    }

    #[test]
    fn this_proc_is_our_pid_namespace() {
        assert!(proc_shows_our_processes());
    }

    #[test]
    fn a_file_exists_once_made() {
        let path = std::env::temp_dir().join(format!("herd-probe-{}", std::process::id()));
        let path = path.to_str().unwrap();
        let _ = fs::remove_file(path);
        assert!(!file_exists(path));
        fs::write(path, "").unwrap();
        assert!(file_exists(path));
        fs::remove_file(path).unwrap();
        assert!(!file_exists(path));
    }
}
