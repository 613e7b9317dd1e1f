//! The termination log: the one line saying why herd stopped that a cluster
//! manager shows for the container (Kubernetes' `terminationMessagePath`).

use crate::error::Failure;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where Kubernetes reads a container's termination message by default.
pub const KUBERNETES_PATH: &str = "/dev/termination-log";

/// Kubernetes keeps at most this much of a container's message (4 KiB).
const MOST: usize = 4096;

/// The termination log, open from the start so that a path herd cannot
/// write is an error before anything runs, not a surprise at the end.
pub struct TerminationLog {
    file: File,
    path: PathBuf,
    /// A file of its own, whose content the line replaces; otherwise (a
    /// FIFO, a terminal, herd's own stdout or stderr) the line is added.
    replaces: bool,
}

impl TerminationLog {
    /// `--termination-log PATH`, created if missing; without it, as PID 1,
    /// Kubernetes' `/dev/termination-log` when that exists and herd may
    /// write it (anywhere else herd is not in a pod, and says nothing).
    pub fn open(path: Option<&Path>, is_init: bool) -> Result<Option<TerminationLog>, Failure> {
        let Some(path) = path else {
            let default = Path::new(KUBERNETES_PATH);
            if !is_init {
                return Ok(None);
            }
            return Ok(TerminationLog::open_at(default, false).ok());
        };
        TerminationLog::open_at(path, true).map(Some).map_err(|e| {
            Failure::io(
                format!("opening the termination log {}", path.display()),
                &e,
            )
        })
    }

    fn open_at(path: &Path, create: bool) -> std::io::Result<TerminationLog> {
        let file = open(path, create, false)?;
        let regular = file.metadata()?.is_file();
        // `/dev/stdout` where stdout is a file (herd start's log): emptying
        // it, or writing from its start, would lose herd's output.
        let shared = regular && is_standard_output(&file);
        let file = if shared {
            open(path, false, true)?
        } else {
            file
        };
        Ok(TerminationLog {
            file,
            path: path.to_path_buf(),
            replaces: regular && !shared,
        })
    }

    /// Replaces what the file holds with `reason`'s line. A failure is said
    /// on stderr and changes nothing else: herd's exit status stays the
    /// group's.
    pub fn write(mut self, reason: &str) {
        let emptied = if self.replaces {
            self.file.set_len(0)
        } else {
            Ok(())
        };
        if let Err(e) = emptied.and_then(|()| self.file.write_all(&line(reason))) {
            crate::log::line(format_args!(
                "writing the termination log {}: {}",
                self.path.display(),
                crate::error::describe(&e)
            ));
        }
    }
}

/// Write-only and never blocking: a FIFO nobody reads is refused at once
/// (ENXIO) rather than holding herd's start, and a full one at the end.
fn open(path: &Path, create: bool, append: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .append(append)
        .create(create)
        .mode(0o644)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Whether `file` is the file herd's stdout or stderr writes to.
fn is_standard_output(file: &File) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let same = |fd: std::os::fd::BorrowedFd| {
        fd.try_clone_to_owned()
            .and_then(|fd| File::from(fd).metadata())
            .is_ok_and(|other| other.dev() == meta.dev() && other.ino() == meta.ino())
    };
    same(std::io::stdout().as_fd()) || same(std::io::stderr().as_fd())
}

/// Why herd stopped, from how the supervisor ended: the reason the table
/// gave (the one a failed `herd start` prints), or herd's own failure.
pub fn reason(result: &Result<u8, Failure>, stop_reason: Option<&str>) -> String {
    match (result, stop_reason) {
        (Err(failure), _) => failure.to_string(),
        (Ok(_), Some(reason)) => reason.to_string(),
        (Ok(code), None) => format!("herd exited with code {code}"),
    }
}

/// `reason` as one line of at most `MOST` bytes, its newline included: a
/// name with a newline in it (a single command's argv[0] may have one)
/// cannot make it two, and a long path cannot make Kubernetes cut the
/// line off without its end.
fn line(reason: &str) -> Vec<u8> {
    let mut text: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.len() >= MOST {
        let mut end = MOST - 1;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text.push('\n');
    text.into_bytes()
}

/// A relative `--termination-log` of `herd start` means where it was
/// called, not the `--chdir` the supervisor moves to.
pub fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path).map_err(|e| {
        Failure::io(
            format!("finding the termination log {}", path.display()),
            &e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_line_whatever_it_holds() {
        assert_eq!(line("stopped on request"), b"stopped on request\n");
        assert_eq!(line("a\nb\r\tc ended (exit 3)"), b"a b  c ended (exit 3)\n");
        assert_eq!(line(""), b"\n");
    }

    #[test]
    fn a_long_reason_is_cut_to_what_kubernetes_keeps_on_a_character_boundary() {
        let long = "é".repeat(MOST);
        let cut = line(&long);
        assert!(cut.len() <= MOST, "{}", cut.len());
        assert_eq!(cut.last(), Some(&b'\n'));
        let text = String::from_utf8(cut).expect("still UTF-8");
        assert!(text.trim_end().chars().all(|c| c == 'é'));
        let exact = "x".repeat(MOST - 1);
        assert_eq!(line(&exact).len(), MOST, "what fits is kept whole");
    }

    #[test]
    fn the_reason_is_the_tables_or_herds_own_failure() {
        let failure = Failure::new("reading Procfile", "no such file or directory");
        assert_eq!(
            reason(&Err(failure), Some("stopped on request")),
            "reading Procfile: no such file or directory"
        );
        assert_eq!(
            reason(&Ok(3), Some("web ended (exit 3)")),
            "web ended (exit 3)"
        );
        assert_eq!(reason(&Ok(0), None), "herd exited with code 0");
    }
}
