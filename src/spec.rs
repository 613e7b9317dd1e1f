//! What to run and how to treat it: process and group settings as plain
//! data, and the `key=value` settings shared by flags and Procfile notes.

use crate::signals;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The longest duration herd takes, for any flag or setting: one year
/// (365 days), far past any grace period or timeout that makes sense, and
/// small enough that adding it to any instant cannot overflow.
pub const MAX_SECONDS: u64 = 31_536_000;

/// When a process that exited is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Never,
    OnFailure,
    Always,
}

/// When a started process counts as ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ready {
    /// As soon as it is started.
    Started,
    /// When the process itself listens on a TCP port (see `probe`).
    Tcp(TcpCheck),
    /// When PATH exists.
    File(String),
    /// When the process sends `READY=1` to herd's `NOTIFY_SOCKET`.
    Notify,
    /// When the process writes a newline on its fd N (s6's notification-fd).
    Fd(i32),
}

/// The fds `ready=fd:N` may name: past stdio, and below the 1024 that the
/// default soft limit on open files lets every process have.
pub const READY_FDS: std::ops::RangeInclusive<i32> = 3..=1023;

/// `tcp:[HOST:]PORT`: which listener makes a process ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpCheck {
    /// The address the listener must be bound to (or a wildcard address);
    /// `None` for any address, as `tcp:PORT` and `tcp:localhost:PORT` ask.
    pub host: Option<IpAddr>,
    pub port: TcpPort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpPort {
    Number(u16),
    /// `$PORT`: the PORT variable of the process's environment.
    FromEnv,
}

/// One process of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    pub name: String,
    /// Run with `/bin/sh -c`, as a Procfile line is.
    pub command: String,
    pub restart: Restart,
    pub stop_signal: i32,
    pub grace: Duration,
    pub ready: Ready,
    pub ready_timeout: Duration,
    /// May exit 0 without stopping the group.
    pub oneshot: bool,
    /// The Procfile (or `-c`) name it is an instance of: `web` for
    /// `web.2`; `name` itself when it is the only instance.
    pub family: String,
    /// How many instances of its family run (`instances=N`, then
    /// `--formation`).
    pub instances: u32,
    /// The names of the `--listen` sockets it gets; `None`: all of them.
    pub sockets: Option<Vec<String>>,
    /// Its liveness check, if it has one (`--live`).
    pub live: crate::live::Liveness,
    /// `--watchdog`: how long its heartbeat may stay still before it is
    /// stopped and goes through its restart policy.
    pub watchdog: Option<Duration>,
}

/// The settings every process starts from, before its own are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    pub restart: Restart,
    pub stop_signal: i32,
    pub grace: Duration,
    pub ready_timeout: Duration,
    pub live: crate::live::Liveness,
    pub watchdog: Option<Duration>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            restart: Restart::Never,
            stop_signal: libc::SIGTERM,
            grace: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(30),
            live: crate::live::Liveness::default(),
            watchdog: None,
        }
    }
}

impl ProcessSpec {
    pub fn new(name: String, command: String, defaults: &Defaults) -> ProcessSpec {
        ProcessSpec {
            family: name.clone(),
            name,
            command,
            restart: defaults.restart,
            stop_signal: defaults.stop_signal,
            grace: defaults.grace,
            ready: Ready::Started,
            ready_timeout: defaults.ready_timeout,
            oneshot: false,
            instances: 1,
            sockets: None,
            live: defaults.live.clone(),
            watchdog: defaults.watchdog,
        }
    }

    /// Applies one setting, as written after `# herd:` in a Procfile or as
    /// the value of a per-process flag: `restart=always`, `grace=5`,
    /// `stop-signal=INT`, `ready=tcp:8080`, `ready-timeout=60`, `oneshot`,
    /// `instances=3` (a Procfile note only), `live=tcp:8080`,
    /// `live-interval=5`, `live-failures=3`, `live-grace=10`, `watchdog=5`
    /// (0: none).
    pub fn apply(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        let value_of = |key: &str| value.ok_or_else(|| format!("'{key}' needs a value: {key}=..."));
        match key {
            "restart" => self.restart = parse_restart(value_of(key)?)?,
            "grace" => self.grace = parse_seconds(value_of(key)?)?,
            "stop-signal" => self.stop_signal = signals::parse(value_of(key)?)?,
            "ready" => self.ready = parse_ready(value_of(key)?)?,
            "ready-timeout" => self.ready_timeout = parse_seconds(value_of(key)?)?,
            "watchdog" => self.watchdog = parse_watchdog(value_of(key)?)?,
            "sockets" => self.sockets = Some(parse_socket_names(value_of(key)?)),
            "oneshot" => match value {
                None | Some("true" | "yes") => self.oneshot = true,
                Some("false" | "no") => self.oneshot = false,
                Some(other) => {
                    return Err(format!("oneshot takes no value or yes/no, not '{other}'"))
                }
            },
            "instances" => self.instances = crate::formation::parse_count(value_of(key)?)?,
            "live" | "live-interval" | "live-failures" | "live-grace" => {
                self.live.apply(key, value_of(key)?)?
            }
            other => return Err(format!("unknown setting '{other}'")),
        }
        Ok(())
    }
}

/// `Ok` for a valid name, or why it is not one, for an error message.
pub fn check_name(name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid name (letters, digits, '_', '.', '-'; not '.' or '..')"
        ))
    }
}

/// A Procfile, `-c` or `--name` name: `[A-Za-z0-9_.-]+`, but not `.` or
/// `..`, which as a path component would mean the directory itself or its
/// parent: `--name ..` would put the state files in the parent directory.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub fn parse_restart(text: &str) -> Result<Restart, String> {
    match text {
        "never" | "no" => Ok(Restart::Never),
        "on-failure" => Ok(Restart::OnFailure),
        "always" => Ok(Restart::Always),
        other => Err(format!(
            "'{other}' is not a restart policy (never, on-failure, always)"
        )),
    }
}

/// `sockets=NAME,NAME`: which `--listen` sockets a process gets; an empty
/// list gives it none. Whether the names exist is checked once the sockets
/// are known.
fn parse_socket_names(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// `tcp:PORT`, `tcp:HOST:PORT`, `file:PATH`, `notify` or `fd:N`. HOST is an IPv4
/// address, an IPv6 address in brackets or `localhost`; PORT is 1 to 65535
/// or `$PORT`.
pub fn parse_ready(text: &str) -> Result<Ready, String> {
    if text == "notify" {
        return Ok(Ready::Notify);
    }
    if let Some(address) = text.strip_prefix("tcp:") {
        return parse_tcp(address).map(Ready::Tcp);
    }
    if let Some(fd) = text.strip_prefix("fd:") {
        let digits = !fd.is_empty() && fd.bytes().all(|b| b.is_ascii_digit());
        return match fd.parse::<i32>() {
            Ok(fd) if digits && READY_FDS.contains(&fd) => Ok(Ready::Fd(fd)),
            _ => Err(format!(
                "'{fd}' is not an fd for ready=fd:N ({} to {})",
                READY_FDS.start(),
                READY_FDS.end()
            )),
        };
    }
    match text.strip_prefix("file:") {
        Some(path) if !path.is_empty() => Ok(Ready::File(path.to_string())),
        _ => Err(format!(
            "'{text}' is not a ready check (tcp:[HOST:]PORT, file:PATH, notify, fd:N)"
        )),
    }
}

pub fn parse_tcp(address: &str) -> Result<TcpCheck, String> {
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let (inside, rest) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("'{address}' lacks the ']' after the IPv6 address"))?;
        let port = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("'{address}' needs ':PORT' after ']'"))?;
        let host = inside
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("'{inside}' is not an IPv6 address"))?;
        (Some(IpAddr::V6(host)), port)
    } else {
        match address.split_once(':') {
            None => (None, address),
            Some((host, port)) => (parse_host(host, port)?, port),
        }
    };
    Ok(TcpCheck {
        host,
        port: parse_port(port)?,
    })
}

/// The HOST of `tcp:HOST:PORT`: an address, never a name to look up, as a
/// supervisor must not hang on DNS; `localhost` is the one name, and means
/// any address, as a server that "listens on localhost" may have bound
/// 127.0.0.1, ::1 or both.
fn parse_host(host: &str, port: &str) -> Result<Option<IpAddr>, String> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(None);
    }
    if port.contains(':') || host.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "'{host}:{port}': write an IPv6 address in brackets, as in tcp:[::1]:8080"
        ));
    }
    host.parse::<Ipv4Addr>()
        .map(|host| Some(IpAddr::V4(host)))
        .map_err(|_| {
            format!("'{host}' is not an IP address (herd looks up no host names; only 'localhost')")
        })
}

fn parse_port(port: &str) -> Result<TcpPort, String> {
    if port == "$PORT" {
        return Ok(TcpPort::FromEnv);
    }
    // Digits only: `parse` would take `+80` too.
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(number) if digits && number > 0 => Ok(TcpPort::Number(number)),
        _ => Err(format!("'{port}' is not a TCP port (1 to 65535, or $PORT)")),
    }
}

/// Seconds as a decimal number, at most `MAX_SECONDS`: `10`, `0.5`.
/// The shortest watchdog: herd looks at heartbeats ten times a period, and
/// a period shorter than this would have it do little else.
pub const MIN_WATCHDOG: Duration = Duration::from_millis(100);

/// A watchdog period; 0 turns the watchdog off, as systemd's `WatchdogSec=0`.
fn parse_watchdog(text: &str) -> Result<Option<Duration>, String> {
    let period = parse_seconds(text)?;
    if period.is_zero() {
        return Ok(None);
    }
    if period < MIN_WATCHDOG {
        return Err(format!(
            "'{text}' is shorter than the shortest watchdog ({}s)",
            MIN_WATCHDOG.as_secs_f64()
        ));
    }
    Ok(Some(period))
}

pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs = text
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))?;
    // The bound first, so that what is left fits a Duration.
    if secs > MAX_SECONDS as f64 {
        return Err(format!(
            "'{text}' is more than a year ({MAX_SECONDS} seconds)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{text}' is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProcessSpec {
        ProcessSpec::new("web".into(), "serve".into(), &Defaults::default())
    }

    #[test]
    fn applies_every_setting() {
        let mut web = spec();
        web.apply("restart", Some("on-failure")).unwrap();
        web.apply("grace", Some("2.5")).unwrap();
        web.apply("stop-signal", Some("INT")).unwrap();
        web.apply("ready", Some("tcp:8080")).unwrap();
        web.apply("ready-timeout", Some("60")).unwrap();
        web.apply("oneshot", None).unwrap();
        assert_eq!(web.restart, Restart::OnFailure);
        assert_eq!(web.grace, Duration::from_millis(2500));
        assert_eq!(web.stop_signal, libc::SIGINT);
        assert_eq!(
            web.ready,
            Ready::Tcp(TcpCheck {
                host: None,
                port: TcpPort::Number(8080)
            })
        );
        assert_eq!(web.ready_timeout, Duration::from_secs(60));
        assert!(web.oneshot);
        web.apply("instances", Some("3")).unwrap();
        assert_eq!(web.instances, 3);
        web.apply("ready", Some("file:/tmp/up")).unwrap();
        assert_eq!(web.ready, Ready::File("/tmp/up".into()));
        web.apply("ready", Some("notify")).unwrap();
        assert_eq!(web.ready, Ready::Notify);
        web.apply("ready", Some("fd:3")).unwrap();
        assert_eq!(web.ready, Ready::Fd(3));
        web.apply("ready", Some("fd:1023")).unwrap();
        assert_eq!(web.ready, Ready::Fd(1023));
    }

    #[test]
    fn a_watchdog_is_seconds_zero_turns_it_off_and_a_tiny_one_is_refused() {
        let mut web = spec();
        assert_eq!(web.watchdog, None);
        web.apply("watchdog", Some("2.5")).unwrap();
        assert_eq!(web.watchdog, Some(Duration::from_millis(2500)));
        web.apply("watchdog", Some("0")).unwrap();
        assert_eq!(web.watchdog, None);
        for (value, why) in [
            ("0.01", "shorter than the shortest watchdog (0.1s)"),
            ("-5", "not a number of seconds"),
            ("NaN", "not a number of seconds"),
            ("1e300", "more than a year"),
        ] {
            let error = web.apply("watchdog", Some(value)).unwrap_err();
            assert!(error.contains(why), "{value}: {error}");
        }
    }

    #[test]
    fn sockets_lists_names_and_an_empty_list_gives_none() {
        let mut web = spec();
        assert_eq!(web.sockets, None);
        web.apply("sockets", Some("http,admin")).unwrap();
        assert_eq!(web.sockets, Some(vec!["http".into(), "admin".into()]));
        web.apply("sockets", Some("")).unwrap();
        assert_eq!(web.sockets, Some(vec![]));
        web.apply("sockets", Some(",http,")).unwrap();
        assert_eq!(web.sockets, Some(vec!["http".into()]));
        assert!(web
            .apply("sockets", None)
            .unwrap_err()
            .contains("needs a value"));
    }

    #[test]
    fn refuses_bad_settings_with_a_reason() {
        let mut web = spec();
        for (key, value, why) in [
            ("restart", Some("sometimes"), "not a restart policy"),
            ("restart", None, "needs a value"),
            ("grace", Some("-1"), "not a number of seconds"),
            ("stop-signal", Some("NOPE"), "not a signal"),
            ("ready", Some("tcp:0"), "not a TCP port"),
            ("ready", Some("tcp:99999"), "not a TCP port"),
            ("grace", Some("1e19"), "more than a year"),
            ("ready-timeout", Some("31536001"), "more than a year"),
            ("ready", Some("http:80"), "not a ready check"),
            ("ready", Some("file:"), "not a ready check"),
            ("ready", Some("notify:1"), "not a ready check"),
            (
                "ready",
                Some("fd:2"),
                "'2' is not an fd for ready=fd:N (3 to 1023)",
            ),
            ("ready", Some("fd:1024"), "not an fd"),
            ("ready", Some("fd:-3"), "not an fd"),
            ("ready", Some("fd:+3"), "not an fd"),
            ("ready", Some("fd:"), "not an fd"),
            ("ready", Some("fd:99999999999"), "not an fd"),
            ("oneshot", Some("maybe"), "oneshot takes"),
            ("instances", Some("-1"), "not a number of instances"),
            ("instances", Some("101"), "more than 100 instances"),
            ("instances", None, "needs a value"),
            ("colour", Some("red"), "unknown setting 'colour'"),
        ] {
            let error = web.apply(key, value).unwrap_err();
            assert!(error.contains(why), "{key}={value:?}: {error}");
        }
    }

    fn tcp(host: Option<&str>, port: TcpPort) -> Result<Ready, String> {
        Ok(Ready::Tcp(TcpCheck {
            host: host.map(|host| host.parse().unwrap()),
            port,
        }))
    }

    #[test]
    fn reads_every_spelling_of_a_tcp_check() {
        use TcpPort::{FromEnv, Number};
        for (text, check) in [
            ("tcp:8080", tcp(None, Number(8080))),
            ("tcp:1", tcp(None, Number(1))),
            ("tcp:65535", tcp(None, Number(65535))),
            ("tcp:$PORT", tcp(None, FromEnv)),
            ("tcp:127.0.0.1:8080", tcp(Some("127.0.0.1"), Number(8080))),
            ("tcp:0.0.0.0:80", tcp(Some("0.0.0.0"), Number(80))),
            ("tcp:10.1.2.3:$PORT", tcp(Some("10.1.2.3"), FromEnv)),
            ("tcp:[::1]:8080", tcp(Some("::1"), Number(8080))),
            ("tcp:[::]:$PORT", tcp(Some("::"), FromEnv)),
            ("tcp:[fe80::1:2]:443", tcp(Some("fe80::1:2"), Number(443))),
            ("tcp:localhost:8080", tcp(None, Number(8080))),
            ("tcp:LocalHost:$PORT", tcp(None, FromEnv)),
        ] {
            assert_eq!(parse_ready(text), check, "{text}");
        }
    }

    #[test]
    fn refuses_a_bad_tcp_check_with_a_reason() {
        for (text, why) in [
            ("tcp:", "'' is not a TCP port"),
            ("tcp:0", "'0' is not a TCP port (1 to 65535, or $PORT)"),
            ("tcp:65536", "'65536' is not a TCP port"),
            ("tcp:-1", "'-1' is not a TCP port"),
            ("tcp:+80", "'+80' is not a TCP port"),
            ("tcp:$port", "'$port' is not a TCP port"),
            ("tcp:$PORTX", "'$PORTX' is not a TCP port"),
            ("tcp:127.0.0.1:0", "'0' is not a TCP port"),
            ("tcp:127.0.0.1:", "'' is not a TCP port"),
            ("tcp:example.com:80", "'example.com' is not an IP address"),
            ("tcp:web:80", "herd looks up no host names"),
            ("tcp:127.1:80", "'127.1' is not an IP address"),
            ("tcp::80", "'' is not an IP address"),
            ("tcp:::1:8080", "write an IPv6 address in brackets"),
            ("tcp:::1", "write an IPv6 address in brackets"),
            ("tcp:[::1]", "needs ':PORT' after ']'"),
            ("tcp:[::1]8080", "needs ':PORT' after ']'"),
            ("tcp:[::1:8080", "lacks the ']'"),
            ("tcp:[127.0.0.1]:80", "'127.0.0.1' is not an IPv6 address"),
            ("tcp:[localhost]:80", "'localhost' is not an IPv6 address"),
            ("tcp:[::1]:0", "'0' is not a TCP port"),
            ("tcp:[::1]:99999", "'99999' is not a TCP port"),
        ] {
            let error = parse_ready(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn takes_seconds_up_to_a_year() {
        for (text, secs) in [
            ("0", 0.0),
            ("10", 10.0),
            ("0.5", 0.5),
            ("1e3", 1000.0),
            ("31536000", 31_536_000.0),
        ] {
            assert_eq!(parse_seconds(text), Ok(Duration::from_secs_f64(secs)));
        }
        for text in [
            "31536000.5",
            "31536001",
            "1e19",
            "1e300",
            "18446744073709551616",
        ] {
            let error = parse_seconds(text).unwrap_err();
            assert_eq!(
                error,
                format!("'{text}' is more than a year (31536000 seconds)")
            );
        }
        for text in [
            "-1", "-0.5", "-1e19", "NaN", "nan", "inf", "-inf", "infinity", "", "5s", "1,5",
        ] {
            let error = parse_seconds(text).unwrap_err();
            assert_eq!(error, format!("'{text}' is not a number of seconds"));
        }
    }

    #[test]
    fn names_are_restricted() {
        for good in ["web", "web.1", "a_b-c", "X9"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "web 1", "web:", "wéb", "a/b", "a=b", ".", ".."] {
            assert!(!valid_name(bad), "{bad}");
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for dotted in ["...", ".web", "web.", "..a"] {
            assert!(valid_name(dotted), "{dotted}");
        }
    }
}
