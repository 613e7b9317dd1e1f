//! herd's own messages on stderr: one whole line each, never failing.

use std::fmt;
use std::io::{self, Write};

/// Writes `herd: <message>` as one line. A closed or broken stderr is not
/// herd's failure: the message is dropped rather than killing herd.
pub fn line(message: fmt::Arguments) {
    let text = format!("herd: {message}\n");
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// The `-v` switch: decisions are logged only when it is on.
#[derive(Clone, Copy)]
pub struct Verbose(pub bool);

impl Verbose {
    pub fn note(self, message: fmt::Arguments) {
        if self.0 {
            line(message);
        }
    }
}
