//! A tiny HTTP server for herd's reload tests: it serves on the listener herd
//! hands it (fd 3, `LISTEN_FDS`) or on a port of its own, answers every
//! request with its pid after a configurable delay, says when it is ready,
//! and on SIGTERM stops accepting, finishes what it serves and exits 0.
//!
//! Environment: `SERVER_STARTUP_MS` (delay before it is ready),
//! `SERVER_REQUEST_MS` (delay of each answer), `SERVER_PORT` (bind this port
//! itself instead of taking fd 3: the naive way, for the test that must see
//! failures), `SERVER_READY_FD` (write a newline there when ready), and
//! `NOTIFY_SOCKET` (send `READY=1` there when ready), and `SERVER_FAIL_IF`
//! (a path: when it holds `crash` at start-up, exit 3 before getting
//! ready; when it holds `hang`, never get ready and wait for SIGTERM, as a
//! generation stuck in its start-up does).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::{env, fs, process, thread};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn millis(key: &str) -> Duration {
    Duration::from_millis(env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn listener() -> TcpListener {
    if let Ok(port) = env::var("SERVER_PORT") {
        return TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("SERVER_PORT")))
            .expect("binding SERVER_PORT");
    }
    let pid = process::id().to_string();
    assert_eq!(
        env::var("LISTEN_PID").ok(),
        Some(pid),
        "LISTEN_PID is not my pid"
    );
    assert_eq!(
        env::var("LISTEN_FDS").ok().as_deref(),
        Some("1"),
        "LISTEN_FDS"
    );
    // SAFETY: herd hands this process its listener as fd 3 (LISTEN_FDS=1,
    // LISTEN_PID checked above), and nothing else here owns fd 3.
    TcpListener::from(unsafe { OwnedFd::from_raw_fd(3) })
}

fn say_ready() {
    if let Ok(fd) = env::var("SERVER_READY_FD") {
        let path = format!("/proc/self/fd/{fd}");
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"\n"))
            .expect("writing the ready fd");
    }
    if let Ok(socket) = env::var("NOTIFY_SOCKET") {
        let sender = UnixDatagram::unbound().expect("a datagram socket");
        let address = match socket.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&socket),
        }
        .expect("NOTIFY_SOCKET");
        sender
            .send_to_addr(b"READY=1\n", &address)
            .expect("sending READY=1");
    }
}

fn serve(mut stream: TcpStream, delay: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    thread::sleep(delay);
    let body = format!("{}\n", process::id());
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
}

fn main() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    thread::sleep(millis("SERVER_STARTUP_MS"));
    let failure = env::var_os("SERVER_FAIL_IF").and_then(|path| fs::read_to_string(path).ok());
    match failure.as_deref().map(str::trim) {
        Some("crash") => process::exit(3),
        Some("hang") => {
            while !STOP.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(5));
            }
            return;
        }
        _ => {}
    }
    let listener = listener();
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let delay = millis("SERVER_REQUEST_MS");
    let in_flight = Arc::new(AtomicUsize::new(0));
    say_ready();
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                in_flight.fetch_add(1, Ordering::SeqCst);
                let count = Arc::clone(&in_flight);
                thread::spawn(move || {
                    serve(stream, delay);
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut entry = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; the count says 1.
                unsafe { libc::poll(&mut entry, 1, 20) };
            }
            Err(_) => {}
        }
    }
    // close(), never shutdown(): the socket is shared with herd and the
    // next generation, whose queue must live on.
    drop(listener);
    while in_flight.load(Ordering::SeqCst) > 0 {
        thread::sleep(Duration::from_millis(5));
    }
}
