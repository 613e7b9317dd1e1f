//! The `--health` responder: a tiny HTTP/1.0 server on a thread of its own
//! that answers `GET /ready` from the readiness the supervisor loop
//! publishes and `GET /live` once the loop has taken a ping, so that no
//! probe, however slow or malformed, makes the loop wait or waits on it.

use crate::error::Failure;
use crate::listen::{self, Address, Listen};
use crate::supervisor::{Closed, Event, Inbox};
use crate::sys::events::WakeFd;
use crate::sys::socket;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest request read: its request line and headers. A probe sends
/// a few dozen bytes (the kubelet about 150); a longer one is refused.
const MAX_REQUEST: usize = 1024;

/// How long a connection may stay open, from accept to answer.
const CONNECTION_TIME: Duration = Duration::from_secs(2);

/// How long `/live` waits for the loop to take its ping.
const LIVE_PATIENCE: Duration = Duration::from_secs(1);

/// Connections served at once; each new one beyond takes the place of
/// the oldest, so that slow clients cannot lock a probe out.
const MAX_CONNECTIONS: usize = 64;

/// How long accepting waits after running out of fds or memory: the
/// pending connection stays, and so would the failure.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How soon a ping is tried again when the loop's queue is full.
const PING_RETRY: Duration = Duration::from_millis(10);

/// At most this many connections are accepted between two reads, so that
/// a flood of new ones cannot push out a probe before its request is read.
const ACCEPTS_PER_ROUND: usize = MAX_CONNECTIONS / 4;

/// Hands the loop ping number N without waiting: `Ok(false)` when its
/// queue is full, `Err` once it has ended.
type Ping = Box<dyn FnMut(u64) -> Result<bool, Closed> + Send>;

/// Reads `--health`: an address of `--listen`'s TCP forms, without a name.
/// Port 0 is refused: nobody could probe a port the kernel picked.
pub fn parse(text: &str) -> Result<Listen, String> {
    let listen = listen::parse(text)?;
    let port = match listen.address {
        Address::Tcp(address) => address.port(),
        Address::TcpAnyHost(port) => port,
        Address::Unix(_) => {
            return Err(format!(
                "'{text}' is not tcp:HOST:PORT or tcp:PORT (probes speak HTTP over TCP)"
            ))
        }
    };
    if listen.named {
        return Err(format!("'{text}': a health address takes no NAME="));
    }
    if port == 0 {
        return Err(format!("'{text}': port 0 would be one no probe knows"));
    }
    Ok(listen)
}

/// What the loop publishes for the responder, and how the loop answers
/// its pings. The loop only ever stores and wakes: nothing here waits.
pub struct Published {
    ready: AtomicBool,
    /// The number of the latest ping the loop has taken.
    answered: AtomicU64,
    /// Wakes the responder when the loop has taken a ping.
    wake: WakeFd,
}

impl Published {
    /// Whether the group is ready now (`Table::is_ready`), after each step.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The loop has taken ping `number`.
    pub fn answer(&self, number: u64) {
        self.answered.fetch_max(number, Ordering::Relaxed);
        self.wake.wake();
    }
}

/// Binds the `--health` listener (close-on-exec) and starts the responder
/// on a thread of its own; returns what the loop publishes to it.
pub fn serve(health: &Listen, inbox: Inbox) -> Result<Arc<Published>, Failure> {
    let doing = format!("listening on --health {}", health.text);
    let bound = match health.address {
        Address::Tcp(address) => socket::listen_tcp(address, false),
        Address::TcpAnyHost(port) => listen::listen_tcp_any_host(port),
        Address::Unix(_) => Err(io::ErrorKind::InvalidInput.into()),
    };
    let listener = TcpListener::from(bound.map_err(|e| Failure::io(&doing, &e))?);
    let ping: Ping = Box::new(move |number| inbox.try_send(Event::Alive(number)));
    start(listener, ping).map_err(|e| Failure::io(&doing, &e))
}

/// Starts the responder on `listener`, its pings going to `ping`.
fn start(listener: TcpListener, ping: Ping) -> io::Result<Arc<Published>> {
    listener.set_nonblocking(true)?;
    let published = Arc::new(Published {
        ready: AtomicBool::new(false),
        answered: AtomicU64::new(0),
        wake: WakeFd::new()?,
    });
    let mut responder = Responder {
        listener,
        published: Arc::clone(&published),
        send_ping: ping,
        connections: Vec::new(),
        accept_paused_until: None,
        ping: None,
        pings_sent: 0,
        loop_gone: false,
    };
    thread::Builder::new()
        .name("health".into())
        .stack_size(64 * 1024)
        .spawn(move || responder.run())?;
    Ok(published)
}

/// What a request asks, once it is whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Ready {
        head: bool,
    },
    Live {
        head: bool,
    },
    /// A well-formed request for anything else.
    Other {
        head: bool,
    },
    /// Not an HTTP request line.
    Malformed,
}

/// Where reading a request is.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Incomplete,
    Whole(Request),
    TooLong,
}

/// Reads what a client has sent so far: whole once its headers end with
/// an empty line, or at the end of its request line when that names no
/// HTTP version (as `printf 'GET /ready\n' | nc` sends).
fn parse_request(bytes: &[u8]) -> Parsed {
    let Some(line_end) = bytes.iter().position(|&b| b == b'\n') else {
        return if bytes.len() >= MAX_REQUEST {
            Parsed::TooLong
        } else {
            Parsed::Incomplete
        };
    };
    let line = bytes.get(..line_end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let request = request_of(line);
    let versioned = line.split(|&b| b == b' ').nth(2).is_some();
    let rest = bytes.get(line_end..).unwrap_or_default();
    let headers_end =
        rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n");
    if !versioned || request == Request::Malformed || headers_end {
        Parsed::Whole(request)
    } else if bytes.len() >= MAX_REQUEST {
        Parsed::TooLong
    } else {
        Parsed::Incomplete
    }
}

/// `METHOD SP TARGET [SP HTTP/x.y]`: GET and HEAD of `/ready` and `/live`
/// (a query string aside) are answered; any other well-formed request is
/// not found.
fn request_of(line: &[u8]) -> Request {
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Malformed;
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let (method, target) = match parts.as_slice() {
        [method, target] => (*method, *target),
        [method, target, version] if version.starts_with("HTTP/") => (*method, *target),
        _ => return Request::Malformed,
    };
    let is_token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic());
    let is_target = target.starts_with('/') || target == "*" || target.contains("://");
    if !is_token || !is_target {
        return Request::Malformed;
    }
    let head = method == "HEAD";
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/ready") => Request::Ready { head },
        ("GET" | "HEAD", "/live") => Request::Live { head },
        _ => Request::Other { head },
    }
}

/// A whole HTTP/1.0 response; `head`: without its body.
fn response(status: u16, body: &str, head: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut text = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        text.push_str(body);
    }
    text.into_bytes()
}

struct Connection {
    stream: TcpStream,
    request: Vec<u8>,
    accepted: Instant,
    /// Its request was for `/live` (`head`: HEAD), at this time: it waits
    /// for the loop to take a ping sent since.
    live: Option<(Instant, bool)>,
}

/// What is read and thrown away after an answer, at most.
const DRAIN: usize = 64 * 1024;

impl Connection {
    /// Sends the answer and closes. The socket is new and its send buffer
    /// empty, so the few bytes go in one write that does not block. What
    /// the client sent beyond the request (the rest of one too long) is
    /// read first, as far as it has arrived: closing a socket with unread
    /// bytes resets the connection, and the client might lose the answer.
    fn answer(mut self, status: u16, body: &str, head: bool) {
        let _ = self.stream.write(&response(status, body, head));
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < DRAIN {
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }

    fn deadline(&self) -> Instant {
        crate::core::deadline(self.accepted, CONNECTION_TIME)
    }
}

struct Responder {
    listener: TcpListener,
    published: Arc<Published>,
    send_ping: Ping,
    connections: Vec<Connection>,
    accept_paused_until: Option<Instant>,
    /// The ping the loop has not taken yet: its number and when it went.
    ping: Option<(u64, Instant)>,
    pings_sent: u64,
    /// The loop has ended: nobody will take a ping again.
    loop_gone: bool,
}

impl Responder {
    fn run(&mut self) {
        loop {
            let now = Instant::now();
            self.answer_live(now);
            self.expire(now);
            let timeout = self.next_due().map(|at| at.saturating_duration_since(now));
            if self.accept_paused_until.is_some_and(|at| at <= now) {
                self.accept_paused_until = None;
            }
            let accepting = self.accept_paused_until.is_none();
            // The wake-up first, the listener last, the connections that
            // are still sending their request in between.
            let reading: Vec<usize> = (0..self.connections.len())
                .filter(|&i| self.connections.get(i).is_some_and(|c| c.live.is_none()))
                .collect();
            let readable = {
                let mut fds: Vec<BorrowedFd> = vec![self.published.wake.as_fd()];
                fds.extend(
                    reading
                        .iter()
                        .filter_map(|&i| self.connections.get(i))
                        .map(|c| c.stream.as_fd()),
                );
                if accepting {
                    fds.push(self.listener.as_fd());
                }
                match socket::wait_any_readable(&fds, timeout) {
                    Ok(readable) => readable,
                    // Only a lack of memory fails poll here: wait it out.
                    Err(_) => {
                        thread::sleep(ACCEPT_BACKOFF);
                        continue;
                    }
                }
            };
            if readable.first() == Some(&true) {
                self.published.wake.clear();
            }
            // From the last: closing one moves a later one into its place,
            // never one of those still to read.
            for (at, &index) in reading.iter().enumerate().rev() {
                if readable.get(at.saturating_add(1)) == Some(&true) {
                    self.read(index);
                }
            }
            if accepting && readable.last() == Some(&true) {
                self.accept();
            }
        }
    }

    /// The earliest of: a connection's time running out, a ping's
    /// patience, accepting again, trying a ping again.
    fn next_due(&self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let mut earliest = |at: Instant| due = Some(due.map_or(at, |d| d.min(at)));
        for connection in &self.connections {
            earliest(connection.deadline());
            if let Some((asked, _)) = connection.live {
                earliest(crate::core::deadline(asked, LIVE_PATIENCE));
                if self.ping.is_none() {
                    earliest(crate::core::deadline(Instant::now(), PING_RETRY));
                }
            }
        }
        if let Some((_, sent)) = self.ping {
            earliest(crate::core::deadline(sent, LIVE_PATIENCE));
        }
        if let Some(at) = self.accept_paused_until {
            earliest(at);
        }
        due
    }

    /// Takes the connections waiting to be accepted, a round's worth.
    /// Beyond the cap, the oldest still sending its request goes (it had
    /// the most of its time); if every one waits for the loop instead, the
    /// new one goes.
    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_ROUND {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED)) => {
                    continue
                }
                Err(_) => {
                    self.accept_paused_until =
                        Some(crate::core::deadline(Instant::now(), ACCEPT_BACKOFF));
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.connections.len() >= MAX_CONNECTIONS {
                let oldest = (0..self.connections.len())
                    .filter(|&i| self.connections.get(i).is_some_and(|c| c.live.is_none()))
                    .min_by_key(|&i| self.connections.get(i).map(|c| c.accepted));
                match oldest {
                    Some(index) => drop(self.connections.swap_remove(index)),
                    None => continue,
                }
            }
            self.connections.push(Connection {
                stream,
                request: Vec::new(),
                accepted: Instant::now(),
                live: None,
            });
        }
    }

    /// Reads what connection `index` has sent; answers once its request
    /// is whole, closes it when it is too long or the client has gone.
    fn read(&mut self, index: usize) {
        let Some(connection) = self.connections.get_mut(index) else {
            return;
        };
        let mut chunk = [0u8; MAX_REQUEST];
        let room = MAX_REQUEST.saturating_sub(connection.request.len());
        let read = connection
            .stream
            .read(chunk.get_mut(..room).unwrap_or_default());
        match read {
            Ok(0) => {
                self.connections.swap_remove(index);
                return;
            }
            Ok(n) => connection
                .request
                .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return
            }
            Err(_) => {
                self.connections.swap_remove(index);
                return;
            }
        }
        let request = match parse_request(&connection.request) {
            Parsed::Incomplete => return,
            Parsed::TooLong => {
                let body = format!("request longer than {MAX_REQUEST} bytes\n");
                self.connections
                    .swap_remove(index)
                    .answer(431, &body, false);
                return;
            }
            Parsed::Whole(request) => request,
        };
        let ready = self.published.ready.load(Ordering::Relaxed);
        match request {
            Request::Live { head } => connection.live = Some((Instant::now(), head)),
            Request::Ready { head } => {
                let (status, body) = if ready {
                    (200, "ready\n")
                } else {
                    (503, "not ready\n")
                };
                self.connections
                    .swap_remove(index)
                    .answer(status, body, head);
            }
            Request::Other { head } => {
                let body = "not found: GET /ready or /live\n";
                self.connections.swap_remove(index).answer(404, body, head);
            }
            Request::Malformed => {
                let body = "not an HTTP request\n";
                self.connections.swap_remove(index).answer(400, body, false);
            }
        }
    }

    /// Answers the `/live` requests the loop has answered a ping for, or
    /// has not within `LIVE_PATIENCE`; sends a ping for those still waiting.
    fn answer_live(&mut self, now: Instant) {
        if let Some((number, sent)) = self.ping {
            let taken = self.published.answered.load(Ordering::Relaxed) >= number;
            if taken {
                self.ping = None;
                self.answer_waiting(|asked| asked <= sent, true);
            } else if crate::core::deadline(sent, LIVE_PATIENCE) <= now {
                self.ping = None;
                self.answer_waiting(|asked| asked <= sent, false);
            }
        }
        self.answer_waiting(
            |asked| crate::core::deadline(asked, LIVE_PATIENCE) <= now,
            false,
        );
        let waiting = self.connections.iter().any(|c| c.live.is_some());
        if !waiting || self.ping.is_some() {
            return;
        }
        if !self.loop_gone {
            let number = self.pings_sent.saturating_add(1);
            match (self.send_ping)(number) {
                Ok(true) => {
                    self.pings_sent = number;
                    self.ping = Some((number, now));
                }
                // The loop is far behind: tried again soon, within patience.
                Ok(false) => {}
                Err(_) => self.loop_gone = true,
            }
        }
        if self.loop_gone {
            self.answer_waiting(|_| true, false);
        }
    }

    /// Answers every `/live` request asked at a time that `covered` takes:
    /// live, or not.
    fn answer_waiting(&mut self, covered: impl Fn(Instant) -> bool, live: bool) {
        let mut index = self.connections.len();
        while index > 0 {
            index -= 1;
            let Some((asked, head)) = self.connections.get(index).and_then(|c| c.live) else {
                continue;
            };
            if covered(asked) {
                let connection = self.connections.swap_remove(index);
                if live {
                    connection.answer(200, "live\n", head);
                } else {
                    connection.answer(503, "the supervisor loop did not answer\n", head);
                }
            }
        }
    }

    /// Closes the connections whose time is up; one waiting for the loop
    /// hears that it did not answer.
    fn expire(&mut self, now: Instant) {
        let mut index = self.connections.len();
        while index > 0 {
            index -= 1;
            let Some(connection) = self.connections.get(index) else {
                continue;
            };
            if connection.deadline() > now {
                continue;
            }
            let connection = self.connections.swap_remove(index);
            match connection.live {
                Some((_, head)) => {
                    connection.answer(503, "the supervisor loop did not answer\n", head)
                }
                None => connection.answer(408, "request not received in time\n", false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A responder on a port of its own, its pings going to `ping`.
    fn responder(ping: Ping) -> (u16, Arc<Published>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (port, start(listener, ping).unwrap())
    }

    /// The whole response to `GET path`, and how long it took.
    fn get(port: u16, path: &str) -> (String, Duration) {
        let asked = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(CONNECTION_TIME * 3)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        (response, asked.elapsed())
    }

    fn status_of(response: &str) -> &str {
        response.get(9..12).unwrap_or(response)
    }

    #[test]
    fn ready_says_what_the_loop_published_last() {
        let (port, published) = responder(Box::new(|_| Ok(true)));
        assert_eq!(status_of(&get(port, "/ready").0), "503");
        published.set_ready(true);
        let (response, _) = get(port, "/ready");
        assert_eq!(status_of(&response), "200");
        assert!(response.ends_with("\r\n\r\nready\n"), "{response}");
        published.set_ready(false);
        assert_eq!(status_of(&get(port, "/ready").0), "503");
        assert_eq!(status_of(&get(port, "/elsewhere").0), "404");
    }

    #[test]
    fn live_is_200_once_the_loop_takes_a_ping_and_waiters_share_one() {
        let (pings, taken) = mpsc::channel();
        let (port, published) = responder(Box::new(move |number| {
            pings.send(number).map(|()| true).map_err(|_| Closed)
        }));
        let loop_thread = thread::spawn(move || {
            let mut count = 0;
            // As the loop does: take each ping, a little later.
            while let Ok(number) = taken.recv_timeout(Duration::from_secs(1)) {
                thread::sleep(Duration::from_millis(50));
                published.answer(number);
                count += 1;
            }
            count
        });
        let askers: Vec<_> = (0..8)
            .map(|_| thread::spawn(move || get(port, "/live")))
            .collect();
        for asker in askers {
            let (response, took) = asker.join().unwrap();
            assert_eq!(status_of(&response), "200", "{response}");
            assert!(took < LIVE_PATIENCE, "{took:?}");
        }
        let pings = loop_thread.join().unwrap();
        assert!(
            (1..8).contains(&pings),
            "{pings} pings for 8 requests at once"
        );
    }

    #[test]
    fn live_is_503_when_the_loop_does_not_take_the_ping_in_time() {
        let (port, _published) = responder(Box::new(|_| Ok(true)));
        let (response, took) = get(port, "/live");
        assert_eq!(status_of(&response), "503", "{response}");
        assert!(
            took >= LIVE_PATIENCE && took < CONNECTION_TIME,
            "answered after {took:?}"
        );
    }

    #[test]
    fn live_is_503_at_once_when_the_loop_has_ended_or_stays_full() {
        let (port, _published) = responder(Box::new(|_| Err(Closed)));
        let (response, took) = get(port, "/live");
        assert_eq!(status_of(&response), "503", "{response}");
        assert!(took < LIVE_PATIENCE, "answered after {took:?}");
        let (port, _published) = responder(Box::new(|_| Ok(false)));
        let (response, took) = get(port, "/live");
        assert_eq!(status_of(&response), "503", "{response}");
        assert!(
            took >= LIVE_PATIENCE,
            "a full queue is tried until patience runs out"
        );
    }

    #[test]
    fn a_request_is_whole_once_its_headers_end() {
        let kubelet =
            b"GET /ready HTTP/1.1\r\nHost: 10.0.0.7:8086\r\nUser-Agent: kube-probe/1.30\r\n\
                        Accept: */*\r\nConnection: close\r\n\r\n";
        assert_eq!(
            parse_request(kubelet),
            Parsed::Whole(Request::Ready { head: false })
        );
        for cut in 0..kubelet.len() {
            assert_eq!(
                parse_request(&kubelet[..cut]),
                Parsed::Incomplete,
                "{cut} bytes"
            );
        }
        assert_eq!(
            parse_request(b"HEAD /live HTTP/1.0\n\n"),
            Parsed::Whole(Request::Live { head: true })
        );
        assert_eq!(
            parse_request(b"GET /ready\n"),
            Parsed::Whole(Request::Ready { head: false }),
            "a request line without a version has no headers"
        );
    }

    #[test]
    fn only_get_and_head_of_ready_and_live_are_answered() {
        let whole = |line: &str| match parse_request(format!("{line}\r\n\r\n").as_bytes()) {
            Parsed::Whole(request) => request,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            whole("GET /ready?verbose=1 HTTP/1.1"),
            Request::Ready { head: false }
        );
        assert_eq!(whole("GET /live HTTP/1.1"), Request::Live { head: false });
        for other in [
            "POST /ready HTTP/1.1",
            "GET /ready/ HTTP/1.1",
            "GET /READY HTTP/1.1",
            "GET / HTTP/1.1",
            "get /ready HTTP/1.1",
            "GET http://host/ready HTTP/1.1",
        ] {
            assert_eq!(whole(other), Request::Other { head: false }, "{other}");
        }
        assert_eq!(whole("HEAD /x HTTP/1.0"), Request::Other { head: true });
        for garbage in [
            "",
            "GET",
            "GET  /ready HTTP/1.1",
            "GET /ready SPDY/3",
            "GET /ready HTTP/1.1 extra",
            "G\u{e9}T /ready HTTP/1.1",
            "GET ready HTTP/1.1",
            "\u{16}\u{3}\u{1}",
        ] {
            assert_eq!(whole(garbage), Request::Malformed, "{garbage:?}");
        }
        assert_eq!(
            parse_request(b"\xff\xfe /ready\n"),
            Parsed::Whole(Request::Malformed)
        );
    }

    #[test]
    fn a_request_longer_than_the_limit_is_refused() {
        let mut long = b"GET /ready HTTP/1.1\r\n".to_vec();
        while long.len() < MAX_REQUEST {
            long.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse_request(&long), Parsed::TooLong);
        assert_eq!(parse_request(&[b'a'; MAX_REQUEST]), Parsed::TooLong);
        assert_eq!(parse_request(&[b'a'; MAX_REQUEST - 1]), Parsed::Incomplete);
    }

    #[test]
    fn a_response_is_http_1_0_with_its_length_and_head_has_no_body() {
        let text = String::from_utf8(response(503, "not ready\n", false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
             Content-Length: 10\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nnot ready\n"
        );
        let head = String::from_utf8(response(200, "ready\n", true)).unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 6\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn an_address_is_tcp_with_a_port_and_no_name() {
        assert!(parse("tcp:127.0.0.1:8086").is_ok());
        assert!(parse("tcp:8086").is_ok());
        assert!(parse("tcp:[::1]:8086").is_ok());
        for (bad, why) in [
            ("unix:/run/h.sock", "probes speak HTTP over TCP"),
            ("probe=tcp:8086", "takes no NAME="),
            ("tcp:127.0.0.1:0", "port 0"),
            ("tcp:127.0.0.1:65536", "is not a TCP port"),
            ("tcp:localhost:80", "looks up no host names"),
            ("8086", "is not an address"),
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
