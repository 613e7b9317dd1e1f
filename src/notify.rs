//! systemd's notify protocol, both ways: herd's `NOTIFY_SOCKET` for its
//! children (the datagrams read, parsed and handed to the loop), `herd
//! notify` for shell children, and herd's own notifications to the manager
//! that started it.

use crate::error::Failure;
use crate::supervisor::{Event, Inbox};
use crate::sys::datagram::{self, Address};
use crate::sys::{fd, Pid};
use std::os::fd::{AsFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

/// The variable that names a notify socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The longest datagram herd reads (systemd's limit too); a longer one is
/// truncated by the kernel and ignored.
pub const MAX_DATAGRAM: usize = 4096;

/// The longest `STATUS=` text kept, in bytes; the rest is cut off.
pub const MAX_STATUS: usize = 200;

/// The longest extension of a deadline one `EXTEND_TIMEOUT_USEC=` asks for
/// that herd grants: one hour. A process that needs more asks again.
pub const MAX_EXTENSION: Duration = Duration::from_secs(3600);

/// How often malformed datagrams are noted with `-v`, at most.
const NOTE_INTERVAL: Duration = Duration::from_secs(1);

/// What one datagram says, of what herd understands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub ready: bool,
    pub reloading: bool,
    pub stopping: bool,
    pub watchdog: bool,
    /// `STATUS=`: the text, cleaned of control characters and cut short.
    pub status: Option<String>,
    /// `MAINPID=`: the process that speaks for the instance from now on.
    pub main_pid: Option<Pid>,
    /// `EXTEND_TIMEOUT_USEC=`, at most `MAX_EXTENSION`.
    pub extend: Option<Duration>,
}

impl Notice {
    /// It says nothing herd acts on (only unknown keys, a `BARRIER=1`).
    pub fn is_empty(&self) -> bool {
        *self == Notice::default()
    }
}

/// Reads a datagram: `KEY=VALUE` lines. Unknown keys, lines without `=`
/// and values herd cannot read are ignored; a datagram that is not UTF-8 or
/// holds a NUL is refused whole, with the reason.
pub fn parse(bytes: &[u8]) -> Result<Notice, &'static str> {
    if bytes.contains(&0) {
        return Err("it holds a NUL byte");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8")?;
    let mut notice = Notice::default();
    for line in text.split('\n') {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match (key, value) {
            ("READY", "1") => notice.ready = true,
            ("RELOADING", "1") => notice.reloading = true,
            ("STOPPING", "1") => notice.stopping = true,
            ("WATCHDOG", "1") => notice.watchdog = true,
            ("STATUS", text) => notice.status = Some(clean_status(text)),
            ("MAINPID", pid) => {
                notice.main_pid = digits(pid)
                    .and_then(|pid| Pid::try_from(pid).ok())
                    .filter(|pid| *pid > 0)
            }
            ("EXTEND_TIMEOUT_USEC", usec) => {
                notice.extend =
                    digits(usec).map(|usec| Duration::from_micros(usec).min(MAX_EXTENSION))
            }
            _ => {}
        }
    }
    Ok(notice)
}

/// A decimal number of digits only (`parse` would take a `+`); `None` when
/// it is not one or does not fit.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A status text fit for one cell of `herd status`: control characters
/// become spaces, and it is cut at `MAX_STATUS` bytes on a char boundary.
fn clean_status(text: &str) -> String {
    let mut clean = String::with_capacity(text.len().min(MAX_STATUS));
    for c in text.chars() {
        if clean.len() + c.len_utf8() > MAX_STATUS {
            break;
        }
        clean.push(if c.is_control() { ' ' } else { c });
    }
    clean
}

/// `@NAME` or `/path`, as `NOTIFY_SOCKET` writes an address; `None` for
/// anything else (systemd's `vsock:` among them, which herd does not speak).
pub fn parse_address(text: &str) -> Option<Address> {
    if let Some(name) = text.strip_prefix('@') {
        (!name.is_empty()).then(|| Address::Abstract(name.as_bytes().to_vec()))
    } else if text.starts_with('/') {
        Some(Address::Path(text.as_bytes().to_vec()))
    } else {
        None
    }
}

/// herd's own notify socket: its `NOTIFY_SOCKET` value for the children.
pub struct Receiver {
    pub address: String,
}

/// Opens herd's socket (an abstract name the kernel picks) and starts the
/// thread that reads it, which hands each datagram that says something to
/// the loop with its sender's pid and process group.
pub fn serve(inbox: Inbox) -> Result<Receiver, Failure> {
    let doing = "opening the notify socket";
    let (socket, name) = datagram::bind_receiver().map_err(|e| Failure::io(doing, &e))?;
    let address = format!("@{}", String::from_utf8_lossy(&name));
    thread::Builder::new()
        .name("notify".into())
        .stack_size(64 * 1024)
        .spawn(move || receive_forever(&socket, &inbox))
        .map_err(|e| Failure::io(doing, &e))?;
    Ok(Receiver { address })
}

fn receive_forever(socket: &OwnedFd, inbox: &Inbox) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_note: Option<Instant> = None;
    let mut ignored = |why: String, inbox: &Inbox| {
        let now = Instant::now();
        if last_note.is_none_or(|at| now.saturating_duration_since(at) >= NOTE_INTERVAL) {
            last_note = Some(now);
            let _ = inbox.send(Event::NotifyIgnored(why));
        }
    };
    loop {
        let received = match datagram::receive(socket.as_fd(), &mut buf) {
            Ok(received) => received,
            Err(_) => {
                // Out of memory or fds for the ancillary data: the datagram
                // is gone either way, and trying again at once fails alike.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // Looked up while the sender still waits for its fds to be closed
        // (`herd notify`'s barrier), so that a sender that exits right
        // after is still found in its process group.
        let pgid = received.pid.and_then(datagram::process_group_of);
        drop(received.fds);
        let Some(pid) = received.pid else {
            ignored(
                "notify: ignored a datagram from a process of another pid namespace".into(),
                inbox,
            );
            continue;
        };
        if received.truncated {
            ignored(
                format!("notify: ignored an oversized datagram from pid {pid}"),
                inbox,
            );
            continue;
        }
        let notice = match parse(buf.get(..received.len).unwrap_or_default()) {
            Ok(notice) => notice,
            Err(why) => {
                ignored(
                    format!("notify: ignored a datagram from pid {pid}: {why}"),
                    inbox,
                );
                continue;
            }
        };
        if notice.is_empty() {
            continue;
        }
        if inbox.send(Event::Notify { pid, pgid, notice }).is_err() {
            return;
        }
    }
}

/// How long a start, reload or stop of herd's may run before herd asks the
/// manager that started it for more time, and how often it asks again.
pub const EXTEND_EVERY: Duration = Duration::from_secs(2);
/// How much more time each asking is for: a few askings' worth, so that
/// one lost datagram costs nothing.
pub const EXTEND_BY: Duration = Duration::from_secs(10);

/// How long `herd notify` waits for herd (or systemd) to have read its
/// datagram before it exits: systemd-notify's wait.
const BARRIER_WAIT: Duration = Duration::from_secs(5);

/// herd's own notifications to the manager that started it with
/// `NOTIFY_SOCKET` (systemd, or another herd). Every send is one datagram
/// that never waits: a full or missing receiver is not herd's failure.
pub struct Upward {
    socket: OwnedFd,
    to: Address,
    ready_sent: bool,
    stopping_sent: bool,
    status: String,
    /// When to ask for more time next, while a start, reload or stop of
    /// herd's is under way.
    next_extension: Option<Instant>,
}

impl Upward {
    /// herd's own `NOTIFY_SOCKET`, read once at start; `Err` says why an
    /// address given is not used.
    pub fn from_value(value: Option<&str>, now: Instant) -> Result<Option<Upward>, String> {
        let Some(value) = value.filter(|value| !value.is_empty()) else {
            return Ok(None);
        };
        let to = parse_address(value).ok_or_else(|| {
            format!("{NOTIFY_SOCKET}={value}: not a path or @name; not notifying")
        })?;
        let socket = datagram::socket()
            .map_err(|e| format!("{NOTIFY_SOCKET}: {}", crate::error::describe(&e)))?;
        Ok(Some(Upward {
            socket,
            to,
            ready_sent: false,
            stopping_sent: false,
            status: String::new(),
            next_extension: Some(crate::core::deadline(now, EXTEND_EVERY)),
        }))
    }

    fn send(&self, text: &str) -> std::io::Result<()> {
        datagram::send(self.socket.as_fd(), &self.to, text.as_bytes(), None, true)
    }

    /// The whole group is ready: `READY=1`, once.
    pub fn ready(&mut self, status: &str) -> std::io::Result<()> {
        if self.ready_sent || self.stopping_sent {
            return Ok(());
        }
        self.ready_sent = true;
        self.next_extension = None;
        self.status = status.to_string();
        self.send(&format!("READY=1\nSTATUS={status}"))
    }

    /// `STATUS=`, when it says something new.
    pub fn status(&mut self, status: &str) -> std::io::Result<()> {
        if self.status == status || self.stopping_sent {
            return Ok(());
        }
        self.status = status.to_string();
        self.send(&format!("STATUS={status}"))
    }

    /// herd is stopping: `STOPPING=1`, once.
    pub fn stopping(&mut self, now: Instant) -> std::io::Result<()> {
        if self.stopping_sent {
            return Ok(());
        }
        self.stopping_sent = true;
        self.next_extension = Some(crate::core::deadline(now, EXTEND_EVERY));
        self.status = "stopping".to_string();
        self.send("STOPPING=1\nSTATUS=stopping")
    }

    /// A reload begins: `RELOADING=1` with the time it began, as
    /// `Type=notify-reload` requires.
    pub fn reloading(&mut self, now: Instant) -> std::io::Result<()> {
        if self.stopping_sent {
            return Ok(());
        }
        self.next_extension = Some(crate::core::deadline(now, EXTEND_EVERY));
        self.status = "reloading".to_string();
        let usec = datagram::monotonic_now().as_micros();
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading"
        ))
    }

    /// A reload ended, well or not (the old generation serves on): `READY=1`
    /// again, which ends the manager's reload.
    pub fn reloaded(&mut self, status: &str) -> std::io::Result<()> {
        if self.stopping_sent {
            return Ok(());
        }
        self.next_extension = None;
        self.status = status.to_string();
        self.send(&format!("READY=1\nSTATUS={status}"))
    }

    /// When `tick` has something to send.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_extension
    }

    /// `EXTEND_TIMEOUT_USEC=`, when a start, reload or stop has taken
    /// `EXTEND_EVERY` since it began or since the last asking.
    pub fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        match self.next_extension {
            Some(at) if at <= now => {
                self.next_extension = Some(crate::core::deadline(now, EXTEND_EVERY));
                self.send(&format!("EXTEND_TIMEOUT_USEC={}", EXTEND_BY.as_micros()))
            }
            _ => Ok(()),
        }
    }
}

/// `herd notify`: what the flags ask, as one datagram's lines.
pub fn message(ready: bool, status: Option<&str>, stopping: bool, reloading: bool) -> String {
    let mut lines = Vec::new();
    if reloading {
        lines.push("RELOADING=1".to_string());
        lines.push(format!(
            "MONOTONIC_USEC={}",
            datagram::monotonic_now().as_micros()
        ));
    }
    if stopping {
        lines.push("STOPPING=1".to_string());
    }
    if let Some(status) = status {
        lines.push(format!("STATUS={}", status.replace('\n', " ")));
    }
    if ready {
        lines.push("READY=1".to_string());
    }
    lines.join("\n")
}

/// `herd notify --heartbeat`: one atomic add to the caller's scoreboard
/// slot (`HERD_SCOREBOARD`, `HERD_SLOT`), or `WATCHDOG=1` on
/// `$NOTIFY_SOCKET` for a supervisor without a scoreboard (systemd's).
pub fn send_heartbeat() -> Result<u8, Failure> {
    let var = |key| std::env::var(key).ok().filter(|value| !value.is_empty());
    let (Some(path), Some(slot)) = (var("HERD_SCOREBOARD"), var("HERD_SLOT")) else {
        if var(NOTIFY_SOCKET).is_none() {
            return Err(Failure::new(
                "sending a heartbeat",
                format!("neither HERD_SCOREBOARD and HERD_SLOT nor {NOTIFY_SOCKET} is set"),
            ));
        }
        return send_from_child("WATCHDOG=1");
    };
    let doing = format!("sending a heartbeat to slot {slot} of {path}");
    let index = slot
        .parse::<usize>()
        .map_err(|_| Failure::new(&doing, format!("HERD_SLOT={slot} is not a slot number")))?;
    crate::scoreboard::bump_heartbeat(std::path::Path::new(&path), index)
        .map_err(|why| Failure::new(&doing, why.to_string()))?;
    Ok(0)
}

/// Sends `message` to `$NOTIFY_SOCKET`, then waits (a little) until the
/// receiver has read it: a second datagram carries the write end of a
/// pipe, which the receiver closes once it has read both (systemd's
/// `BARRIER=1`). So the sender is still alive while herd looks up whose
/// it is, and `herd notify --ready; exec ./server` cannot race it.
pub fn send_from_child(message: &str) -> Result<u8, Failure> {
    let doing = "notifying";
    let value = std::env::var(NOTIFY_SOCKET)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Failure::new(doing, format!("{NOTIFY_SOCKET} is not set")))?;
    let to = parse_address(&value).ok_or_else(|| {
        Failure::new(
            doing,
            format!("{NOTIFY_SOCKET}={value} is not a path or @name"),
        )
    })?;
    let doing = format!("notifying {value}");
    let socket = datagram::socket().map_err(|e| Failure::io(&doing, &e))?;
    datagram::send(socket.as_fd(), &to, message.as_bytes(), None, false)
        .map_err(|e| Failure::io(&doing, &e))?;
    let (read_end, write_end) = fd::pipe().map_err(|e| Failure::io(&doing, &e))?;
    datagram::send(
        socket.as_fd(),
        &to,
        b"BARRIER=1",
        Some(write_end.as_fd()),
        false,
    )
    .map_err(|e| Failure::io(&doing, &e))?;
    drop(write_end);
    // The datagram went: a receiver that is slow to read it is not an error.
    let _ = fd::wait_readable(read_end.as_fd(), Some(BARRIER_WAIT));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key_herd_knows() {
        let notice = parse(
            b"READY=1\nRELOADING=1\nSTOPPING=1\nWATCHDOG=1\nSTATUS=serving 3 clients\n\
              MAINPID=4242\nEXTEND_TIMEOUT_USEC=2500000\nMONOTONIC_USEC=17\nX_OTHER=yes",
        )
        .unwrap();
        assert_eq!(
            notice,
            Notice {
                ready: true,
                reloading: true,
                stopping: true,
                watchdog: true,
                status: Some("serving 3 clients".into()),
                main_pid: Some(4242),
                extend: Some(Duration::from_millis(2500)),
            }
        );
    }

    #[test]
    fn ignores_what_it_cannot_read() {
        for text in [
            &b""[..],
            b"\n\n",
            b"READY=0",
            b"READY=yes",
            b"READY",
            b"ready=1",
            b"MAINPID=0",
            b"MAINPID=-5",
            b"MAINPID=+5",
            b"MAINPID=99999999999",
            b"EXTEND_TIMEOUT_USEC=",
            b"EXTEND_TIMEOUT_USEC=-1",
            b"EXTEND_TIMEOUT_USEC=1e6",
            b"EXTEND_TIMEOUT_USEC=99999999999999999999999",
            b"BARRIER=1",
            b"=1",
        ] {
            assert_eq!(parse(text), Ok(Notice::default()), "{text:?}");
        }
        assert_eq!(parse(b"READY=1\0"), Err("it holds a NUL byte"));
        assert_eq!(parse(b"STATUS=\xff\xfe"), Err("it is not UTF-8"));
    }

    #[test]
    fn bounds_what_a_process_may_ask() {
        let notice = parse(b"EXTEND_TIMEOUT_USEC=18446744073709551615").unwrap();
        assert_eq!(notice.extend, Some(MAX_EXTENSION));
        let long = format!("STATUS={}", "é".repeat(300));
        let status = parse(long.as_bytes()).unwrap().status.unwrap();
        assert_eq!(status.len(), MAX_STATUS);
        let status = parse("STATUS=a\tb\rc\u{1b}[31m".as_bytes()).unwrap().status;
        assert_eq!(status.as_deref(), Some("a b c [31m"));
        assert_eq!(parse(b"STATUS=").unwrap().status.as_deref(), Some(""));
    }

    #[test]
    fn reads_both_kinds_of_address() {
        assert_eq!(
            parse_address("@herd/x"),
            Some(Address::Abstract(b"herd/x".to_vec()))
        );
        assert_eq!(
            parse_address("/run/notify"),
            Some(Address::Path(b"/run/notify".to_vec()))
        );
        for bad in ["", "@", "relative/path", "vsock:2:1234"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn herd_notify_puts_ready_last() {
        assert_eq!(
            message(true, Some("up\nnow"), false, false),
            "STATUS=up now\nREADY=1"
        );
        let reloading = message(false, None, true, true);
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading}"
        );
        assert!(reloading.ends_with("\nSTOPPING=1"), "{reloading}");
    }
}
