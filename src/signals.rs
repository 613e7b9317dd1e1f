//! Signal names and numbers: parsing what a user types, naming what herd logs.

use crate::sys::signal::{max_signal, min_realtime_signal};

const NAMED: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses `TERM`, `SIGTERM`, `term`, `15`, `RTMIN+2` or `SIGRTMAX-1`.
pub fn parse(text: &str) -> Result<i32, String> {
    let invalid = || format!("'{text}' is not a signal name or number");
    if let Ok(number) = text.parse::<i32>() {
        return if (1..=max_signal()).contains(&number) {
            Ok(number)
        } else {
            Err(invalid())
        };
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, number)) = NAMED.iter().find(|(name, _)| *name == bare) {
        return Ok(number);
    }
    let realtime = |base: i32, rest: &str| -> Option<i32> {
        let number = match rest.as_bytes().first() {
            None => base,
            Some(b'+') => base + rest[1..].parse::<i32>().ok()?,
            Some(b'-') => base - rest[1..].parse::<i32>().ok()?,
            Some(_) => return None,
        };
        (min_realtime_signal()..=max_signal())
            .contains(&number)
            .then_some(number)
    };
    let parsed = if let Some(rest) = bare.strip_prefix("RTMIN") {
        realtime(min_realtime_signal(), rest)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        realtime(max_signal(), rest)
    } else {
        None
    };
    parsed.ok_or_else(invalid)
}

/// `FROM:TO` of `--rewrite-signal` and dumb-init's `-r`: a signal herd
/// receives and the one it forwards instead; TO `0` drops it.
pub fn parse_rewrite(text: &str) -> Result<(i32, i32), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not FROM:TO (signal names or numbers; TO 0 drops)"))?;
    let to = if to == "0" { 0 } else { parse(to)? };
    Ok((parse(from)?, to))
}

/// `SIGTERM`, `SIGRTMIN+3`, or `signal 33` for one libc keeps to itself.
pub fn name(signal: i32) -> String {
    if let Some((name, _)) = NAMED.iter().find(|(_, number)| *number == signal) {
        return format!("SIG{name}");
    }
    if (min_realtime_signal()..=max_signal()).contains(&signal) {
        return format!("SIGRTMIN+{}", signal - min_realtime_signal());
    }
    format!("signal {signal}")
}

/// The signals that ask herd to stop what it supervises.
pub fn is_stop_request(signal: i32) -> bool {
    matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_in_every_spelling() {
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("term"), Ok(libc::SIGTERM));
        assert_eq!(parse("sigusr1"), Ok(libc::SIGUSR1));
        assert_eq!(parse("9"), Ok(libc::SIGKILL));
        assert_eq!(parse("RTMIN"), Ok(min_realtime_signal()));
        assert_eq!(parse("SIGRTMIN+2"), Ok(min_realtime_signal() + 2));
        assert_eq!(parse("RTMAX-1"), Ok(max_signal() - 1));
    }

    #[test]
    fn refuses_what_is_not_a_signal() {
        for bad in [
            "", "0", "-1", "65", "TERMS", "SIG", "RTMIN+99", "RTMAX+1", "RTMINx",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reads_a_rewrite_and_refuses_a_bad_one() {
        assert_eq!(parse_rewrite("15:3"), Ok((libc::SIGTERM, libc::SIGQUIT)));
        assert_eq!(
            parse_rewrite("TERM:QUIT"),
            Ok((libc::SIGTERM, libc::SIGQUIT))
        );
        assert_eq!(parse_rewrite("SIGUSR1:0"), Ok((libc::SIGUSR1, 0)));
        for bad in [
            "",
            "15",
            "15:",
            ":3",
            "0:3",
            "99:1",
            "15:99",
            "15:-1",
            "TERM:NOPE",
            "1:2:3",
        ] {
            assert!(parse_rewrite(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_round_trip() {
        for signal in 1..=max_signal() {
            let name = name(signal);
            if !name.starts_with("signal ") {
                assert_eq!(parse(&name), Ok(signal), "{name}");
            }
        }
    }
}
