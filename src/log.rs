//! herd's own messages on stderr: one whole line each, never failing.

use std::fmt;
use std::io::{self, Write};

/// Writes `herd: <message>` as one line. A closed or broken stderr is not
/// herd's failure: the message is dropped rather than killing herd.
pub fn line(message: fmt::Arguments) {
    let text = format!("herd: {message}\n");
    let _ = io::stderr().lock().write_all(text.as_bytes());
}
