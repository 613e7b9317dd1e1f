//! Liveness checks (`--live`): what a check is, its settings, and the
//! thread that runs one instance's check every interval and hands each
//! result to the loop, which alone decides (core: `Input::Live`).

use crate::spec::{self, TcpCheck, TcpPort};
use crate::sys::check;
use crate::sys::process::WaitStatus;
use crate::sys::signal::SignalSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The most failures in a row `--live-failures` takes: past it a check
/// could as well be absent.
pub const MAX_FAILURES: u32 = 1_000_000;

/// The shortest interval: checks more often than this cost herd more than
/// they tell.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest answer an `http:` check reads: its status line is enough.
const MAX_STATUS_LINE: usize = 1024;

/// What tells that a process is alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveCheck {
    /// A TCP connection to HOST:PORT is accepted (HOST: 127.0.0.1 unless
    /// given).
    Tcp(TcpCheck),
    /// PATH exists.
    File(String),
    /// `GET PATH` on HOST:PORT answers 2xx.
    Http { address: TcpCheck, path: String },
    /// `/bin/sh -c CMD` exits 0.
    Exec(String),
}

/// A process's liveness settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    pub check: Option<LiveCheck>,
    /// From the end of one check to the start of the next; a check that
    /// takes longer than this fails.
    pub interval: Duration,
    /// This many failed checks in a row fail the process.
    pub failures: u32,
    /// How long after getting ready the process gets before a failed check
    /// counts.
    pub grace: Duration,
}

impl Default for Liveness {
    /// As Kubernetes' liveness probes: every 10 s, failed after 3 in a row.
    fn default() -> Liveness {
        Liveness {
            check: None,
            interval: Duration::from_secs(10),
            failures: 3,
            grace: Duration::ZERO,
        }
    }
}

impl Liveness {
    /// Applies `live`, `live-interval`, `live-failures` or `live-grace`.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "live" => self.check = Some(parse(value)?),
            "live-interval" => {
                let interval = spec::parse_seconds(value)?;
                if interval < MIN_INTERVAL {
                    return Err(format!(
                        "'{value}' is less than {} s between checks",
                        MIN_INTERVAL.as_secs_f64()
                    ));
                }
                self.interval = interval;
            }
            "live-failures" => self.failures = parse_failures(value)?,
            "live-grace" => self.grace = spec::parse_seconds(value)?,
            other => return Err(format!("unknown setting '{other}'")),
        }
        Ok(())
    }
}

fn parse_failures(text: &str) -> Result<u32, String> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u32>() {
        Ok(count) if digits && (1..=MAX_FAILURES).contains(&count) => Ok(count),
        _ => Err(format!(
            "'{text}' is not a number of failures (1 to {MAX_FAILURES})"
        )),
    }
}

/// `tcp:[HOST:]PORT`, `file:PATH`, `http:HOST:PORT/PATH` or `exec:CMD`.
pub fn parse(text: &str) -> Result<LiveCheck, String> {
    let kinds = "tcp:[HOST:]PORT, file:PATH, http:HOST:PORT/PATH, exec:CMD";
    if let Some(address) = text.strip_prefix("tcp:") {
        return spec::parse_tcp(address).map(LiveCheck::Tcp);
    }
    if let Some(target) = text.strip_prefix("http:") {
        let target = target.strip_prefix("//").unwrap_or(target);
        let (address, path) = match target.find('/') {
            Some(at) => target.split_at(at),
            None => (target, "/"),
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "'{path}': an HTTP path has no blanks or control characters"
            ));
        }
        return Ok(LiveCheck::Http {
            address: spec::parse_tcp(address)?,
            path: path.to_string(),
        });
    }
    if let Some(path) = text.strip_prefix("file:").filter(|p| !p.is_empty()) {
        return Ok(LiveCheck::File(path.to_string()));
    }
    if let Some(command) = text.strip_prefix("exec:").filter(|c| !c.trim().is_empty()) {
        if command.contains('\0') {
            return Err("an exec: command cannot hold a NUL byte".to_string());
        }
        return Ok(LiveCheck::Exec(command.to_string()));
    }
    Err(format!("'{text}' is not a liveness check ({kinds})"))
}

/// `tcp:$PORT` and `http:...:$PORT` as the process's own PORT.
pub fn resolve_port(
    check: &mut LiveCheck,
    port: impl FnOnce() -> Result<u16, String>,
) -> Result<(), String> {
    let address = match check {
        LiveCheck::Tcp(address) | LiveCheck::Http { address, .. } => address,
        LiveCheck::File(_) | LiveCheck::Exec(_) => return Ok(()),
    };
    if address.port == TcpPort::FromEnv {
        address.port = TcpPort::Number(port()?);
    }
    Ok(())
}

/// How herd writes a check in its lines: as it was given.
pub fn describe(check: &LiveCheck) -> String {
    let address = |address: &TcpCheck| {
        let port = match address.port {
            TcpPort::Number(port) => port.to_string(),
            TcpPort::FromEnv => "$PORT".to_string(),
        };
        match address.host {
            None => port,
            Some(IpAddr::V6(host)) => format!("[{host}]:{port}"),
            Some(host) => format!("{host}:{port}"),
        }
    };
    match check {
        LiveCheck::Tcp(at) => format!("tcp:{}", address(at)),
        LiveCheck::File(path) => format!("file:{path}"),
        LiveCheck::Http { address: at, path } => format!("http:{}{path}", address(at)),
        LiveCheck::Exec(command) => format!("exec:{command}"),
    }
}

/// Runs `live`'s check every interval, from `grace` on, until `stop` is
/// set, and hands every result to `report`; stops when `report` says the
/// loop has gone.
pub fn watch(
    live: &Liveness,
    mask: &SignalSet,
    stop: &AtomicBool,
    mut report: impl FnMut(Result<(), String>) -> bool,
) {
    let Some(check) = &live.check else { return };
    if !pause(live.grace, stop) {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let result = run(check, live.interval, mask);
        if stop.load(Ordering::Relaxed) || !report(result) {
            return;
        }
        if !pause(live.interval, stop) {
            return;
        }
    }
}

/// Sleeps `wait`, looking at `stop` every so often so that a stopped
/// instance's thread ends soon; `false` once stopped.
fn pause(wait: Duration, stop: &AtomicBool) -> bool {
    const LOOK: Duration = Duration::from_millis(100);
    let until = Instant::now().checked_add(wait);
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.map_or(LOOK, |at| at.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(LOOK));
    }
}

/// One check, taking at most `timeout`: `Err` says why it failed.
pub fn run(check: &LiveCheck, timeout: Duration, mask: &SignalSet) -> Result<(), String> {
    match check {
        LiveCheck::Tcp(address) => connect(address, timeout).map(drop),
        LiveCheck::File(path) => {
            if crate::probe::file_exists(path) {
                Ok(())
            } else {
                Err(format!("{path} does not exist"))
            }
        }
        LiveCheck::Http { address, path } => http_get(address, path, timeout),
        LiveCheck::Exec(command) => match check::run_shell(command, mask, timeout) {
            Ok(Some(WaitStatus::Exited(0))) => Ok(()),
            Ok(Some(status)) => Err(crate::core::describe(status)),
            Ok(None) => Err(format!(
                "still running after {}",
                crate::core::seconds(timeout)
            )),
            Err(e) => Err(format!("running it: {}", crate::error::describe(&e))),
        },
    }
}

fn socket_address(address: &TcpCheck) -> Result<SocketAddr, String> {
    let TcpPort::Number(port) = address.port else {
        return Err("no PORT to connect to".to_string());
    };
    let host = address.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Ok(SocketAddr::new(host, port))
}

fn connect(address: &TcpCheck, timeout: Duration) -> Result<TcpStream, String> {
    let at = socket_address(address)?;
    TcpStream::connect_timeout(&at, timeout.max(Duration::from_millis(1)))
        .map_err(|e| format!("connecting to {at}: {}", crate::error::describe(&e)))
}

/// `GET path HTTP/1.0`; passes on a 2xx status line, read within `timeout`
/// of the start.
fn http_get(address: &TcpCheck, path: &str, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut stream = connect(address, timeout)?;
    let at = socket_address(address)?;
    let left = || {
        timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    let failed = |e: std::io::Error| format!("asking {at}{path}: {}", crate::error::describe(&e));
    stream.set_write_timeout(Some(left())).map_err(failed)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {at}\r\nUser-Agent: herd\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut answer = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < MAX_STATUS_LINE {
        stream.set_read_timeout(Some(left())).map_err(failed)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => answer.extend_from_slice(chunk.get(..count).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    match status_code(&answer) {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => Err(format!("{at}{path} answered {code}")),
        None => Err(format!("{at}{path} gave no HTTP status line")),
    }
}

/// The code of a status line `HTTP/1.x NNN ...`.
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn tcp(host: Option<&str>, port: u16) -> TcpCheck {
        TcpCheck {
            host: host.map(|h| h.parse().unwrap()),
            port: TcpPort::Number(port),
        }
    }

    #[test]
    fn parses_every_kind_of_check() {
        assert_eq!(parse("tcp:8080").unwrap(), LiveCheck::Tcp(tcp(None, 8080)));
        assert_eq!(
            parse("tcp:127.0.0.2:80").unwrap(),
            LiveCheck::Tcp(tcp(Some("127.0.0.2"), 80))
        );
        assert_eq!(
            parse("http:127.0.0.1:8080/healthz?full=1").unwrap(),
            LiveCheck::Http {
                address: tcp(Some("127.0.0.1"), 8080),
                path: "/healthz?full=1".into()
            }
        );
        assert_eq!(
            parse("http://[::1]:80").unwrap(),
            LiveCheck::Http {
                address: tcp(Some("::1"), 80),
                path: "/".into()
            }
        );
        assert_eq!(
            parse("file:/run/up").unwrap(),
            LiveCheck::File("/run/up".into())
        );
        assert_eq!(
            parse("exec:test -e /x && echo ok=1").unwrap(),
            LiveCheck::Exec("test -e /x && echo ok=1".into())
        );
        for text in ["http:localhost:8080/", "tcp:$PORT", "http:$PORT/x"] {
            assert!(parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_no_check() {
        for text in [
            "",
            "tcp:",
            "tcp:0",
            "tcp:70000",
            "tcp:-1",
            "tcp:example.com:80",
            "http:",
            "http:8080 /x",
            "http:1.2.3.4:80/a b",
            "http:1.2.3.4:80/a\r\nX: y",
            "file:",
            "exec:",
            "exec:   ",
            "exec:a\0b",
            "notify",
            "fd:3",
            "ftp:1.2.3.4:21",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn settings_take_sane_values_only() {
        let mut live = Liveness::default();
        live.apply("live-interval", "0.1").unwrap();
        assert_eq!(live.interval, Duration::from_millis(100));
        live.apply("live-failures", "1").unwrap();
        live.apply("live-grace", "2.5").unwrap();
        assert_eq!(
            (live.failures, live.grace),
            (1, Duration::from_millis(2500))
        );
        for (key, value) in [
            ("live-interval", "0"),
            ("live-interval", "0.001"),
            ("live-interval", "-1"),
            ("live-interval", "nan"),
            ("live-interval", "1e30"),
            ("live-failures", "0"),
            ("live-failures", "-3"),
            ("live-failures", "+3"),
            ("live-failures", "1000001"),
            ("live-failures", "99999999999999999999"),
            ("live-grace", "-1"),
            ("live-grace", "inf"),
        ] {
            assert!(live.apply(key, value).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn reads_the_status_code_of_a_status_line() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 503 x\r\n"), Some(503));
        assert_eq!(status_code(b"HTTP/1.0 200"), Some(200));
        for answer in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 2000 x",
            b"HTTP/1.1 +20 x",
            b"\xff\xfe",
        ] {
            assert_eq!(status_code(answer), None, "{answer:?}");
        }
    }

    /// A server that answers one connection with `answer`.
    fn serve_once(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut client, _) = listener.accept().unwrap();
            let mut request = [0u8; 512];
            let _ = client.read(&mut request);
            let _ = client.write_all(answer);
        });
        (port, server)
    }

    #[test]
    fn an_http_check_passes_on_2xx_only() {
        let mask = SignalSet::empty();
        let second = Duration::from_secs(5);
        let check = |port, path: &str| LiveCheck::Http {
            address: tcp(Some("127.0.0.1"), port),
            path: path.into(),
        };
        let (port, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(run(&check(port, "/live"), second, &mask), Ok(()));
        server.join().unwrap();
        let (port, server) = serve_once(b"HTTP/1.1 500 Oops\r\n\r\n");
        let failed = run(&check(port, "/live"), second, &mask).unwrap_err();
        assert!(failed.ends_with("/live answered 500"), "{failed}");
        server.join().unwrap();
        let (port, server) = serve_once(b"garbage");
        let failed = run(&check(port, "/"), second, &mask).unwrap_err();
        assert!(failed.contains("no HTTP status line"), "{failed}");
        server.join().unwrap();
    }

    #[test]
    fn an_http_check_that_gets_no_answer_fails_in_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let check = LiveCheck::Http {
            address: tcp(Some("127.0.0.1"), port),
            path: "/".into(),
        };
        let started = Instant::now();
        let failed = run(&check, Duration::from_millis(200), &SignalSet::empty()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(failed.starts_with("asking 127.0.0.1:"), "{failed}");
        drop(listener);
    }

    #[test]
    fn a_tcp_check_needs_a_listener() {
        let mask = SignalSet::empty();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let check = LiveCheck::Tcp(tcp(None, port));
        assert_eq!(run(&check, Duration::from_secs(5), &mask), Ok(()));
        drop(listener);
        let failed = run(&check, Duration::from_secs(5), &mask).unwrap_err();
        assert!(failed.contains("refused"), "{failed}");
    }

    #[test]
    fn an_exec_check_passes_on_exit_0() {
        let mask = SignalSet::empty();
        let second = Duration::from_secs(5);
        assert_eq!(run(&LiveCheck::Exec("true".into()), second, &mask), Ok(()));
        assert_eq!(
            run(&LiveCheck::Exec("exit 2".into()), second, &mask),
            Err("exit 2".to_string())
        );
        assert_eq!(
            run(
                &LiveCheck::Exec("sleep 5".into()),
                Duration::from_millis(50),
                &mask
            ),
            Err("still running after 0.05s".to_string())
        );
    }

    #[test]
    fn describes_a_check_as_given() {
        for text in [
            "tcp:8080",
            "tcp:127.0.0.1:80",
            "tcp:[::1]:80",
            "http:127.0.0.1:80/x",
            "file:/a",
            "exec:true",
        ] {
            assert_eq!(describe(&parse(text).unwrap()), text);
        }
    }
}
