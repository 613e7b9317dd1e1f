//! The control socket: a thread per connection on the server side that turns
//! whole requests into events for the supervisor loop, and the client that
//! the other subcommands use.

use crate::daemon::StatePaths;
use crate::error::Failure;
use crate::signals;
use crate::supervisor::{Event, Inbox};
use crate::sys::daemon as sys;
use crate::sys::fd;
use crate::wire::{self, kind, Decoder, Frame};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The protocol version `hello` carries.
pub const VERSION: &str = "1";

/// A client that sends nothing for this long, or takes no reply bytes for
/// this long, is disconnected. Its thread is its own, so until then it holds
/// up nobody else.
const IDLE_CLIENT: Duration = Duration::from_secs(10);

/// At most this many connections are served at once, each with a thread
/// and an fd; one more is told so and closed at once. With herd's other fds
/// this stays far below the usual limit of 1024 fds, so clients can never
/// take the fds that starting a process needs.
const MAX_CLIENTS: usize = 64;

/// How long `herd send` may wait for a process to take its bytes.
const SEND_PATIENCE: Duration = Duration::from_secs(30);

/// How long accepting waits after a failure other than an interruption:
/// out of fds, the pending connection stays, and so would the failure.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a client says when the supervisor closed the connection unasked.
pub const CLOSED: &str = "it closed the connection";

/// What a client says when the supervisor did not answer in time.
pub const NO_ANSWER: &str = "it did not answer in time";

/// What a client asks the supervisor loop to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    Status,
    /// The whole group, as SIGTERM does.
    Stop,
    StopProcess(String),
    StartProcess(String),
    Restart(String),
    Signal(String, i32),
    /// The loop answers with the process's stdin pipe; the connection's
    /// thread writes the bytes, so a full pipe never blocks the loop.
    Send(String),
    /// A zero-downtime reload of one process (its name, or every instance
    /// of it) or of all; answered when it ends.
    Reload(Option<String>),
}

/// The loop's answer.
pub enum Reply {
    Ok(Vec<(String, String)>),
    Error(String),
    Stdin(File),
}

impl Command {
    fn from_fields(fields: &[(String, String)]) -> Result<Command, String> {
        let process = || {
            wire::field(fields, "process")
                .map(str::to_string)
                .ok_or_else(|| "this command needs process=NAME".to_string())
        };
        match wire::field(fields, "command") {
            Some("status") => Ok(Command::Status),
            Some("stop") => match wire::field(fields, "process") {
                Some(name) => Ok(Command::StopProcess(name.to_string())),
                None => Ok(Command::Stop),
            },
            Some("start") => Ok(Command::StartProcess(process()?)),
            Some("restart") => Ok(Command::Restart(process()?)),
            Some("signal") => {
                let signal = wire::field(fields, "signal").ok_or("signal needs signal=SIG")?;
                Ok(Command::Signal(process()?, signals::parse(signal)?))
            }
            Some("reload") => Ok(Command::Reload(
                wire::field(fields, "process").map(str::to_string),
            )),
            Some(other) => Err(format!("unknown command '{other}'")),
            None => Err("a request needs command=...".to_string()),
        }
    }
}

/// Listens on the state directory's socket (mode 0600) and serves every
/// connection on a thread of its own, [`MAX_CLIENTS`] at most.
pub fn serve(paths: &StatePaths, events: Inbox) -> Result<(), Failure> {
    let doing = || format!("listening on {}", paths.socket.display());
    let _ = fs::remove_file(&paths.socket);
    let listener = UnixListener::bind(&paths.socket).map_err(|e| Failure::io(doing(), &e))?;
    fs::set_permissions(&paths.socket, fs::Permissions::from_mode(0o600))
        .map_err(|e| Failure::io(doing(), &e))?;
    let hello = wire::encode_fields(&[
        ("version", VERSION),
        ("pid", &std::process::id().to_string()),
        ("name", &paths.name),
    ]);
    thread::Builder::new()
        .name("control".into())
        .stack_size(64 * 1024)
        .spawn(move || accept_forever(&listener, &events, &hello))
        .map_err(|e| Failure::io(doing(), &e))?;
    Ok(())
}

fn accept_forever(listener: &UnixListener, events: &Inbox, hello: &[u8]) {
    let clients = Arc::new(Clients::default());
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED)) => {
                continue
            }
            // Out of fds (EMFILE, ENFILE) or memory: the connection stays in
            // the backlog, and accepting again at once would fail the same
            // way, forever, at full speed. Clients that end free fds.
            Err(_) => {
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some(slot) = Clients::admit(&clients, &stream) else {
            refuse(stream, &format!("too many connections ({MAX_CLIENTS})"));
            continue;
        };
        let events = events.clone();
        let hello = hello.to_vec();
        let mut stream = stream;
        // A thread that cannot be started drops the connection and the slot.
        let _ = thread::Builder::new()
            .name("connection".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                serve_connection(&mut stream, &slot, &events, &hello);
                // The slot goes first: while it is listed, its fd is open
                // and cannot be another connection's.
                drop(slot);
                drop(stream);
            });
    }
}

/// The connections being served, [`MAX_CLIENTS`] at most. When all are
/// taken, a new one takes the place of the one that has waited longest for
/// its next request: idle clients cannot lock out one with a request, and
/// only when every one is in the middle of a request is a new one refused.
#[derive(Default)]
struct Clients {
    served: Mutex<Vec<Served>>,
    next_id: AtomicU64,
}

struct Served {
    id: u64,
    /// Its socket, to shut down when it must go; open while it is listed.
    socket: RawFd,
    /// Since when it waits for a request; `None` while it is answered.
    idle_since: Option<Instant>,
}

/// One connection's place among the [`Clients`], given back on drop.
struct Slot {
    clients: Arc<Clients>,
    id: u64,
}

impl Clients {
    fn admit(clients: &Arc<Clients>, stream: &UnixStream) -> Option<Slot> {
        let mut served = clients.lock();
        if served.len() >= MAX_CLIENTS {
            let longest_idle = served
                .iter()
                .enumerate()
                .filter_map(|(at, client)| Some((at, client.idle_since?)))
                .min_by_key(|(_, since)| *since)
                .map(|(at, _)| at)?;
            // Its thread reads the end of the connection and goes.
            sys::shut_down(served.swap_remove(longest_idle).socket);
        }
        let id = clients.next_id.fetch_add(1, Ordering::Relaxed);
        served.push(Served {
            id,
            socket: stream.as_raw_fd(),
            idle_since: Some(Instant::now()),
        });
        Some(Slot {
            clients: Arc::clone(clients),
            id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Served>> {
        self.served.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slot {
    /// Whether the connection waits for a request (and may be let go for a
    /// new one) or is being answered.
    fn set_idle(&self, idle: bool) {
        if let Some(client) = self.clients.lock().iter_mut().find(|c| c.id == self.id) {
            client.idle_since = idle.then(Instant::now);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.clients.lock().retain(|client| client.id != self.id);
    }
}

/// Tells a client why it is not served and closes the connection, on the
/// accept thread: the frame is small enough for the new socket's empty
/// buffer, and non-blocking makes sure a write never waits.
fn refuse(mut stream: UnixStream, why: &str) {
    if stream.set_nonblocking(true).is_ok() {
        let _ = write_frame(&mut stream, kind::ERROR, &error_body(why));
    }
}

fn serve_connection(stream: &mut UnixStream, slot: &Slot, events: &Inbox, hello: &[u8]) {
    let own = sys::own_uid();
    match sys::peer_uid(stream) {
        Ok(uid) if uid == own || uid == 0 => {}
        _ => {
            let _ = stream.set_write_timeout(Some(IDLE_CLIENT));
            let _ = write_frame(stream, kind::ERROR, &error_body("permission denied"));
            return;
        }
    }
    // A client that stops reading its replies must not keep its thread, and
    // its slot, forever.
    let _ = stream.set_write_timeout(Some(IDLE_CLIENT));
    let _ = stream.set_read_timeout(Some(IDLE_CLIENT));
    let mut decoder = Decoder::new();
    let mut greeted = false;
    let mut replying = true;
    let mut buffer = [0u8; 8192];
    loop {
        let frame = match decoder.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => match read_retrying(stream, &mut buffer) {
                // The end, an error, or IDLE_CLIENT without a byte.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    decoder.feed(&buffer[..n]);
                    continue;
                }
            },
            Err(error) => {
                let _ = write_frame(stream, kind::ERROR, &error_body(&error.to_string()));
                return;
            }
        };
        slot.set_idle(false);
        let (reply_kind, body) = if !greeted {
            match check_hello(&frame) {
                Ok(()) => {
                    greeted = true;
                    (kind::HELLO, hello.to_vec())
                }
                Err(why) => (kind::ERROR, error_body(&why)),
            }
        } else {
            answer(frame, events)
        };
        if replying && write_frame(stream, reply_kind, &body).is_err() {
            // The client has gone (or stopped reading, and a reply may be cut
            // short): what it sent is still carried out, unanswered, so
            // that a stop sent on the way out (`herd stop --timeout 0`)
            // stops.
            replying = false;
        }
        if !greeted {
            return;
        }
        slot.set_idle(true);
    }
}

/// `read`, again after EINTR: a read with a timeout is interrupted (not
/// restarted) when the process is stopped and continued, Ctrl-Z and `fg`.
fn read_retrying(stream: &mut UnixStream, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn check_hello(frame: &Frame) -> Result<(), String> {
    if frame.kind != kind::HELLO {
        return Err("the first frame must be hello".to_string());
    }
    let fields = wire::parse_fields(frame.body)?;
    match wire::field(&fields, "version") {
        Some(VERSION) => Ok(()),
        other => Err(format!(
            "protocol version {} is not supported (herd speaks {VERSION})",
            other.unwrap_or("(none given)")
        )),
    }
}

/// One request in, one reply out.
fn answer(frame: Frame, events: &Inbox) -> (u8, Vec<u8>) {
    let (command, input) = match frame.kind {
        kind::REQUEST => {
            match wire::parse_fields(frame.body).and_then(|f| Command::from_fields(&f)) {
                Ok(command) => (command, Vec::new()),
                Err(why) => return (kind::ERROR, error_body(&why)),
            }
        }
        kind::SEND => {
            let Some(at) = frame.body.iter().position(|&b| b == b'\n') else {
                return (
                    kind::ERROR,
                    error_body("send needs NAME, a newline, then the bytes"),
                );
            };
            let name = String::from_utf8_lossy(&frame.body[..at]).into_owned();
            (Command::Send(name), frame.body[at + 1..].to_vec())
        }
        other => {
            return (
                kind::ERROR,
                error_body(&format!("unknown frame kind {other}")),
            )
        }
    };
    let (reply_to, reply) = mpsc::channel();
    if events.send(Event::Control(command, reply_to)).is_err() {
        return (kind::ERROR, error_body("the supervisor is shutting down"));
    }
    match reply.recv() {
        Ok(Reply::Ok(fields)) => (kind::OK, owned_fields(&fields)),
        Ok(Reply::Error(why)) => (kind::ERROR, error_body(&why)),
        Ok(Reply::Stdin(pipe)) => write_stdin(&pipe, &input),
        Err(_) => (kind::ERROR, error_body("the supervisor is shutting down")),
    }
}

/// Writes what `herd send` sent into a process's stdin pipe, waiting at
/// most `SEND_PATIENCE` for a process that does not read it: a connection
/// in the middle of a request keeps its slot, so it must not wait forever.
fn write_stdin(pipe: &File, input: &[u8]) -> (u8, Vec<u8>) {
    let failed = |why: String| {
        (
            kind::ERROR,
            error_body(&format!("writing to the process: {why}")),
        )
    };
    if let Err(e) = fd::set_nonblocking(pipe.as_fd()) {
        return failed(crate::error::describe(&e));
    }
    let deadline = Instant::now()
        .checked_add(SEND_PATIENCE)
        .unwrap_or_else(Instant::now);
    match fd::write_all_until(pipe.as_fd(), input, deadline) {
        Ok(written) if written == input.len() => (kind::OK, Vec::new()),
        Ok(written) => failed(format!(
            "it took {written} of {} bytes and read no more for {}s",
            input.len(),
            SEND_PATIENCE.as_secs()
        )),
        Err(e) => failed(crate::error::describe(&e)),
    }
}

fn owned_fields(fields: &[(String, String)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    wire::encode_fields(&borrowed)
}

fn error_body(message: &str) -> Vec<u8> {
    wire::encode_fields(&[("error", message)])
}

fn write_frame(stream: &mut UnixStream, kind: u8, body: &[u8]) -> io::Result<()> {
    let frame = wire::encode(kind, body).map_err(io::Error::other)?;
    stream.write_all(&frame)
}

/// One process as `herd status` shows it.
#[derive(Debug, PartialEq)]
pub struct ProcessStatus {
    pub name: String,
    pub state: &'static str,
    /// Its pid, or `-` when it has none.
    pub pid: String,
    /// Which run of the process this is, from 1 (0: never started).
    pub generation: u32,
    pub uptime: Duration,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// A reload's progress or its last failure.
    pub reload: Option<String>,
    /// What the process last said with `STATUS=` on the notify socket.
    pub status_text: Option<String>,
    /// How long ago it last said `WATCHDOG=1`.
    pub watchdog: Option<Duration>,
}

/// A status reply: `processes=N`, then `process.I.KEY=VALUE` for each.
pub fn status_fields(processes: &[ProcessStatus]) -> Vec<(String, String)> {
    let mut fields = vec![("processes".to_string(), processes.len().to_string())];
    for (index, process) in processes.iter().enumerate() {
        let key = |name: &str| format!("process.{index}.{name}");
        fields.extend([
            (key("name"), process.name.clone()),
            (key("state"), process.state.to_string()),
            (key("pid"), process.pid.clone()),
            (key("generation"), process.generation.to_string()),
            (
                key("uptime"),
                format!("{:.3}", process.uptime.as_secs_f64()),
            ),
            (key("restarts"), process.restarts.to_string()),
            (
                key("last_exit"),
                process.last_exit.clone().unwrap_or_else(|| "-".into()),
            ),
        ]);
        if let Some(reload) = &process.reload {
            fields.push((key("reload"), reload.clone()));
        }
        if let Some(text) = &process.status_text {
            fields.push((key("status"), text.clone()));
        }
        if let Some(age) = process.watchdog {
            fields.push((key("watchdog"), format!("{:.3}", age.as_secs_f64())));
        }
    }
    fields
}

/// A connection to a running supervisor. Every exchange on it ends by the
/// deadline given to `connect`.
pub struct Client {
    stream: UnixStream,
    decoder: Decoder,
    /// When the supervisor's time to answer is up; `None`: never.
    until: Option<Instant>,
    /// Whether the supervisor's hello has been read.
    greeted: bool,
    /// The pid its hello gave.
    pid: Option<i32>,
}

impl Client {
    /// Connects, giving the supervisor `patience` for this connection and
    /// everything said on it. `Ok(None)`: nothing listens there. The hello
    /// goes out with the first request, which so reaches the supervisor
    /// even when no time is left to read its answer.
    pub fn connect(paths: &StatePaths, patience: Duration) -> Result<Option<Client>, Failure> {
        let until = Instant::now().checked_add(patience);
        let doing = || format!("connecting to {}", paths.socket.display());
        let stream = match sys::connect_with_timeout(&paths.socket, time_left(until)) {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(Failure::new(doing(), NO_ANSWER))
            }
            Err(e) => return Err(Failure::io(doing(), &e)),
        };
        Ok(Some(Client {
            stream,
            decoder: Decoder::new(),
            until,
            greeted: false,
            pid: None,
        }))
    }

    /// The supervisor's pid, once a request has been answered.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Sends a request; returns the fields of an OK reply.
    pub fn request(&mut self, fields: &[(&str, &str)]) -> Result<Vec<(String, String)>, Failure> {
        self.exchange(kind::REQUEST, &wire::encode_fields(fields))
    }

    /// Sends bytes to a process's stdin.
    pub fn send(&mut self, process: &str, bytes: &[u8]) -> Result<(), Failure> {
        let mut body = process.as_bytes().to_vec();
        body.push(b'\n');
        body.extend_from_slice(bytes);
        self.exchange(kind::SEND, &body).map(drop)
    }

    fn exchange(&mut self, kind: u8, body: &[u8]) -> Result<Vec<(String, String)>, Failure> {
        let encoding =
            |e: wire::WireError| Failure::new("talking to the supervisor", e.to_string());
        let mut frames = Vec::new();
        if !self.greeted {
            let hello = wire::encode_fields(&[("version", VERSION)]);
            frames = wire::encode(kind::HELLO, &hello).map_err(encoding)?;
        }
        frames.extend(wire::encode(kind, body).map_err(encoding)?);
        // A supervisor that refuses a client answers and closes at once: the
        // write may then fail, but its answer is waiting to be read.
        let written = self.write_all(&frames);
        if !self.greeted {
            let hello = self.reply(&written)?;
            self.pid = wire::field(&hello, "pid").and_then(|pid| pid.parse().ok());
            self.greeted = true;
        }
        self.reply(&written)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.set_write_timeout(Some(time_left(self.until)))?;
        // write_all retries EINTR.
        self.stream.write_all(bytes)
    }

    /// Reads the next reply: its fields if it is OK (or HELLO), its message
    /// as the failure if it is an ERROR.
    fn reply(&mut self, written: &io::Result<()>) -> Result<Vec<(String, String)>, Failure> {
        let talking = "talking to the supervisor";
        let mut buffer = [0u8; 8192];
        let frame = loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(error) => return Err(Failure::new(talking, error.to_string())),
            }
            let read = self
                .stream
                .set_read_timeout(Some(time_left(self.until)))
                .and_then(|()| self.stream.read(&mut buffer));
            match (read, written) {
                (Ok(0), Err(e)) => return Err(failure_of(talking, e)),
                (Ok(0), Ok(())) => return Err(Failure::new(talking, CLOSED)),
                (Ok(n), _) => self.decoder.feed(&buffer[..n]),
                (Err(e), _) if e.kind() == io::ErrorKind::Interrupted => {}
                (Err(e), Err(first)) if e.kind() != io::ErrorKind::WouldBlock => {
                    return Err(failure_of(talking, first))
                }
                (Err(e), _) => return Err(failure_of(talking, &e)),
            }
        };
        let fields = wire::parse_fields(frame.body)
            .map_err(|why| Failure::new("reading the supervisor's reply", why))?;
        match frame.kind {
            kind::OK | kind::HELLO => Ok(fields),
            _ => Err(Failure::message(
                wire::field(&fields, "error")
                    .unwrap_or("the supervisor refused the request")
                    .to_string(),
            )),
        }
    }
}

/// A socket timeout from a deadline: what is left of it, but never zero,
/// which a socket would take for no timeout at all.
fn time_left(until: Option<Instant>) -> Duration {
    until.map_or(Duration::MAX, |until| {
        until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(1))
    })
}

/// A socket timeout is the supervisor not answering in time.
fn failure_of(doing: &str, error: &io::Error) -> Failure {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::new(doing, NO_ANSWER),
        _ => Failure::io(doing, error),
    }
}
