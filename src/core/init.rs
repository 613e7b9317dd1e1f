//! What a single command's container-init options change in the table's
//! decisions: signals rewritten or dropped, exit codes reported as 0, the
//! stop that follows the child's, and warnings about reaped orphans.

/// The options of `herd run` that tini and dumb-init have (`--rewrite-signal`,
/// `--exit-ok`, `--setsid`/`--no-setsid`, `--warn-zombies`); the default
/// changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitOptions {
    /// (received, forwarded instead), in the order given; 0 drops it.
    rewrite: Vec<(i32, i32)>,
    /// Exit codes herd reports as 0 (tini's `-e`).
    exit_ok: Vec<u8>,
    /// dumb-init's modes: after forwarding TSTP, TTIN or TTOU herd stops
    /// itself, so that whoever sent it sees herd stopped too; `fg` (a
    /// SIGCONT) resumes herd, which forwards it.
    pub stops_with_tty_signals: bool,
    /// Reaping an orphan is said on stderr, not only noted with `-v`.
    pub warn_zombies: bool,
}

/// The terminal's stop signals, which dumb-init's setsid mode forwards as
/// SIGSTOP: the child leads a session of its own, where a terminal stop
/// signal would stop nothing (an orphaned process group ignores them).
const TTY_STOPS: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

impl InitOptions {
    /// `session`: `Some(true)` for `--setsid`, `Some(false)` for
    /// `--no-setsid`, `None` for herd's own way (neither of dumb-init's).
    pub fn new(
        rewrite: &[(i32, i32)],
        exit_ok: &[u8],
        session: Option<bool>,
        warn_zombies: bool,
    ) -> InitOptions {
        let mut rewrite = rewrite.to_vec();
        if session == Some(true) {
            for signal in TTY_STOPS {
                if !rewrite.iter().any(|(from, _)| *from == signal) {
                    rewrite.push((signal, libc::SIGSTOP));
                }
            }
        }
        InitOptions {
            rewrite,
            exit_ok: exit_ok.to_vec(),
            stops_with_tty_signals: session.is_some(),
            warn_zombies,
        }
    }

    /// What a received signal is forwarded as; `None`: it is dropped. The
    /// last rewrite given for a signal counts, as with dumb-init's `-r`.
    pub fn forwarded_as(&self, received: i32) -> Option<i32> {
        let to = self
            .rewrite
            .iter()
            .rev()
            .find(|(from, _)| *from == received)
            .map_or(received, |(_, to)| *to);
        (to != 0).then_some(to)
    }

    /// Whether herd stops itself once it has forwarded `received`.
    pub fn stops_self_after(&self, received: i32) -> bool {
        self.stops_with_tty_signals && TTY_STOPS.contains(&received)
    }

    /// The exit code herd reports for the child's `code`.
    pub fn exit_code(&self, code: u8) -> u8 {
        if self.exit_ok.contains(&code) {
            0
        } else {
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_nothing_by_default() {
        let options = InitOptions::default();
        for signal in 1..=31 {
            assert_eq!(options.forwarded_as(signal), Some(signal));
            assert!(!options.stops_self_after(signal));
        }
        for code in 0..=255 {
            assert_eq!(options.exit_code(code), code);
        }
    }

    #[test]
    fn rewrites_and_drops_the_last_rewrite_given_winning() {
        let rewrite = [
            (libc::SIGTERM, libc::SIGQUIT),
            (libc::SIGUSR1, 0),
            (libc::SIGHUP, libc::SIGINT),
            (libc::SIGHUP, libc::SIGUSR2),
        ];
        let options = InitOptions::new(&rewrite, &[], None, false);
        assert_eq!(options.forwarded_as(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(options.forwarded_as(libc::SIGUSR1), None);
        assert_eq!(options.forwarded_as(libc::SIGHUP), Some(libc::SIGUSR2));
        assert_eq!(options.forwarded_as(libc::SIGINT), Some(libc::SIGINT));
        assert_eq!(options.forwarded_as(libc::SIGTSTP), Some(libc::SIGTSTP));
    }

    #[test]
    fn setsid_turns_terminal_stops_into_sigstop_unless_rewritten() {
        let options = InitOptions::new(&[(libc::SIGTTIN, 0)], &[], Some(true), false);
        assert_eq!(options.forwarded_as(libc::SIGTSTP), Some(libc::SIGSTOP));
        assert_eq!(options.forwarded_as(libc::SIGTTOU), Some(libc::SIGSTOP));
        assert_eq!(options.forwarded_as(libc::SIGTTIN), None);
        for signal in TTY_STOPS {
            assert!(options.stops_self_after(signal), "{signal}");
        }
        assert!(!options.stops_self_after(libc::SIGSTOP));
        assert!(!options.stops_self_after(libc::SIGTERM));
    }

    #[test]
    fn no_setsid_forwards_terminal_stops_as_they_are_and_still_stops_herd() {
        let options = InitOptions::new(&[], &[], Some(false), false);
        assert_eq!(options.forwarded_as(libc::SIGTSTP), Some(libc::SIGTSTP));
        assert!(options.stops_self_after(libc::SIGTSTP));
    }

    #[test]
    fn reports_the_ok_codes_as_zero() {
        let options = InitOptions::new(&[], &[3, 143], None, false);
        assert_eq!(options.exit_code(3), 0);
        assert_eq!(options.exit_code(143), 0);
        assert_eq!(options.exit_code(4), 4);
        assert_eq!(options.exit_code(0), 0);
    }
}
