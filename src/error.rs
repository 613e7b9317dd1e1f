//! herd's own failure: one line saying what was being done and why it failed,
//! and the exit code that goes with it.

use std::fmt;
use std::io;

/// Exit code for herd's own failures, usage errors included (as `env` and
/// `timeout` do), so that they are never mistaken for the child's.
pub const EXIT_HERD_FAILED: u8 = 125;
/// The command was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// What herd was doing, e.g. "executing ./server".
    pub doing: String,
    /// Why it failed, lowercase, without "(os error N)".
    pub cause: String,
    pub exit_code: u8,
}

impl Failure {
    pub fn new(doing: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure {
            doing: doing.into(),
            cause: cause.into(),
            exit_code: EXIT_HERD_FAILED,
        }
    }

    /// A failure that reads as one sentence, without the `doing: ` part.
    pub fn message(text: impl Into<String>) -> Failure {
        Failure::new("", text)
    }

    pub fn io(doing: impl Into<String>, error: &io::Error) -> Failure {
        Failure::new(doing, describe(error))
    }

    pub fn with_exit_code(mut self, exit_code: u8) -> Failure {
        self.exit_code = exit_code;
        self
    }
}

/// `doing: cause`; `log::line` puts the `herd: ` prefix in front.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.doing.is_empty() {
            write!(f, "{}", self.cause)
        } else {
            write!(f, "{}: {}", self.doing, self.cause)
        }
    }
}

/// `No such file or directory (os error 2)` -> `no such file or directory`.
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_errno_in_lowercase_without_the_number() {
        let error = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe(&error), "no such file or directory");
        let error = io::Error::other("Custom text");
        assert_eq!(describe(&error), "custom text");
    }

    #[test]
    fn formats_as_one_line() {
        let failure = Failure::new("executing ./x", "permission denied").with_exit_code(126);
        assert_eq!(failure.to_string(), "executing ./x: permission denied");
        assert_eq!(failure.exit_code, EXIT_CANNOT_EXECUTE);
    }
}
