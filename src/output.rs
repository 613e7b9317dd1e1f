//! Child output: one reader thread per pipe, whole prefixed lines into one shared sink.

use crate::sys::fd;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// The longest line written whole. A longer one is cut into pieces of this
/// size, each written as a line of its own, so that a child that never
/// writes a newline cannot make herd buffer without end, and nothing is lost.
const MAX_LINE: usize = 64 * 1024;
/// What a busy reader asks for at once: room for a line of `MAX_LINE` bytes
/// and its newline, which is then not cut.
const READ_SIZE: usize = MAX_LINE + 1;
/// What a reader asks for first after a quiet spell. Most output comes a few
/// lines at a time, and what a small buffer leaves in the heap once freed is
/// small (with 4 KiB, 200 readers that printed one line kept 4 KiB each). A
/// read that fills it grows it to `READ_SIZE`.
const FIRST_READ: usize = 1024;
/// A batch is written as soon as it holds this much, so that lines much
/// shorter than their prefix (a flood of empty lines) cannot blow a batch up
/// to many times what was read.
const BATCH: usize = 2 * MAX_LINE;
/// What a busy pipe is grown to. With the default 64 KiB, a child writing
/// faster than its reader formats stalls as soon as the reader is one read
/// behind, and the two take turns sleeping: growing the pipe made such a
/// child 1.4 times as fast. Only busy pipes grow, because the kernel counts
/// every pipe's capacity against a per-user limit
/// (/proc/sys/fs/pipe-user-pages-soft).
const BUSY_PIPE_SIZE: usize = 256 * 1024;
/// How long a pipe must stay quiet before its reader frees its buffers: a
/// process that printed a banner and went idle should cost about what one
/// that never printed costs, and allocating again after a pause is cheap.
const IDLE: Duration = Duration::from_millis(100);
/// Reader threads only read and format into heap buffers, so a small stack
/// is plenty (std's default is 2 MiB of address space per thread).
const READER_STACK: usize = 64 * 1024;
/// How long herd waits, after the last process is gone, for output still in
/// its pipes (a descendant that left the process group may hold one open).
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Six colours readable on both dark and light terminals (cyan, yellow,
/// green, magenta, bright blue, bright red), for process names.
const PALETTE: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[94m", "\x1b[91m",
];
/// herd's own lines are bold instead, so they never look like a process's.
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";
/// The name on herd's own lines.
pub const HERD: &str = "herd";

/// `--color`: whether names are coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    /// When herd's stdout is a terminal and `NO_COLOR` is not set.
    Auto,
    Always,
    Never,
}

impl FromStr for ColorChoice {
    type Err = ();

    fn from_str(text: &str) -> Result<ColorChoice, ()> {
        match text {
            "auto" => Ok(ColorChoice::Auto),
            "always" => Ok(ColorChoice::Always),
            "never" => Ok(ColorChoice::Never),
            _ => Err(()),
        }
    }
}

/// Whether to colour, given `--color`, whether herd's stdout is a terminal
/// and the value of `NO_COLOR`. As <https://no-color.org> asks, a non-empty
/// `NO_COLOR` turns colour off unless the user asked for colour explicitly.
pub fn use_color(
    choice: ColorChoice,
    stdout_is_terminal: bool,
    no_color_env: Option<OsString>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = no_color_env.is_some_and(|value| !value.is_empty());
            stdout_is_terminal && !no_color
        }
    }
}

/// How lines look.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub timestamps: bool,
    /// The longest name among the processes and "herd", in characters: every
    /// name is padded to it so that all lines' text starts in one column.
    pub name_width: usize,
}

/// herd's stdout, shared by every reader thread and by herd's own events.
/// Each write holds the one lock and carries whole lines only, so lines of
/// different processes never interleave.
pub struct Sink {
    style: Style,
    /// `None` once whoever reads herd's stdout has gone (EPIPE): output is
    /// dropped from then on, without a syscall, while the readers keep
    /// draining their pipes so that no child blocks on a full one.
    output: Mutex<Option<Box<dyn AsFd + Send>>>,
}

impl Sink {
    /// A sink writing to herd's stdout: straight to fd 1, not through std's
    /// buffered `Stdout`, so nothing else in herd should print to stdout.
    pub fn new(style: Style) -> Arc<Sink> {
        Sink::with_output(style, io::stdout())
    }

    /// A sink writing to any fd: herd's stdout, or a pipe in tests.
    fn with_output(style: Style, output: impl AsFd + Send + 'static) -> Arc<Sink> {
        Arc::new(Sink {
            style,
            output: Mutex::new(Some(Box::new(output))),
        })
    }

    /// Writes `text` as a line of the `herd` pseudo-process (each line of it,
    /// should it have several), in the same format as a process's lines. An
    /// empty `text` writes nothing.
    pub fn herd_line(&self, text: &str) {
        let mut head = Head::new(self.style, HERD, BOLD);
        self.write_lines(head.now(), text.as_bytes(), true, &mut Vec::new());
    }

    /// Formats the lines at the start of `pending` behind `head` and writes
    /// them, a batch at a time, reusing `batch`. Returns how many bytes of
    /// `pending` it used; the rest is the start of a line still to come.
    fn write_lines(&self, head: &[u8], pending: &[u8], at_eof: bool, batch: &mut Vec<u8>) -> usize {
        let mut used = 0;
        loop {
            batch.clear();
            let count = format_lines(head, &pending[used..], at_eof, batch);
            if count == 0 {
                return used;
            }
            used += count;
            self.write(batch);
        }
    }

    /// Writes whole lines under the lock.
    fn write(&self, lines: &[u8]) {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(fd) = output.as_ref() else { return };
        if let Err(error) = fd::write_all(fd.as_fd(), lines) {
            // Any other failure (a full disk under a redirect, say) loses
            // this batch only, and the next one tries again. Nothing is
            // logged: herd's stderr is often the very same file.
            if error.kind() == io::ErrorKind::BrokenPipe {
                *output = None;
            }
        }
    }
}

/// Starts a thread that copies `pipe` (a child's stdout and stderr, which
/// share it) into the sink as lines prefixed with `name`, until end of file.
#[cfg(test)]
fn spawn_reader(sink: &Arc<Sink>, name: &str, pipe: OwnedFd) -> io::Result<JoinHandle<()>> {
    spawn_reader_then(sink, name, pipe, Box::new(|| {}))
}

fn spawn_reader_then(
    sink: &Arc<Sink>,
    name: &str,
    pipe: OwnedFd,
    on_end: Box<dyn FnOnce() + Send>,
) -> io::Result<JoinHandle<()>> {
    fd::set_nonblocking(pipe.as_fd())?;
    let sink = Arc::clone(sink);
    let head = Head::new(sink.style, name, colour_of(name));
    thread::Builder::new()
        .name(format!("out:{name}"))
        .stack_size(READER_STACK)
        .spawn(move || {
            copy_lines(&sink, head, &pipe);
            on_end();
        })
}

/// Starts a thread that copies `pipe` to herd's stdout byte for byte, until
/// end of file: the output of `herd start -- CMD`, which has no prefix but
/// goes through herd so that it follows the log when SIGUSR1 reopens it.
pub fn spawn_copier(pipe: OwnedFd, on_end: Box<dyn FnOnce() + Send>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("out".into())
        .stack_size(READER_STACK)
        .spawn(move || {
            let stdout = io::stdout();
            let mut buffer = Vec::with_capacity(READ_SIZE);
            // A read error is not expected on a pipe; end of file ends the
            // copy. A write that fails (a full disk) loses that piece only.
            while fd::read_appending(pipe.as_fd(), &mut buffer).is_ok_and(|count| count > 0) {
                let _ = fd::write_all(stdout.as_fd(), &buffer);
                buffer.clear();
            }
            on_end();
        })
}

/// Waits up to `limit` for reader threads to reach the end of their pipes,
/// and forgets the ones that did. The limit is for pipes that a descendant
/// outside the process group keeps open.
pub fn wait_for_readers(readers: &mut Vec<JoinHandle<()>>, limit: Duration) {
    let until = Instant::now() + limit;
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
        thread::sleep(Duration::from_millis(1));
    }
    readers.retain(|reader| !reader.is_finished());
}

/// A reader thread's work. Its buffers exist only while output flows: an
/// idle process's reader holds no more than its thread's stack.
///
/// The pipe is non-blocking so that a busy reader learns the pipe is empty
/// from the read itself; a poll(2) after every read cost 15% of throughput.
fn copy_lines(sink: &Sink, mut head: Head, pipe: &OwnedFd) {
    let mut pending = Vec::new();
    let mut batch = Vec::new();
    let mut pipe_grown = false;
    loop {
        if pending.capacity() == 0 {
            // On an error (ENOMEM) the read below says EAGAIN and the loop
            // waits again.
            let _ = fd::wait_readable(pipe.as_fd(), None);
            pending.reserve_exact(FIRST_READ);
        }
        let at_eof = match fd::read_appending(pipe.as_fd(), &mut pending) {
            Ok(count) => {
                // A full buffer asks for the full size. This also keeps room
                // for the next read: `write_lines` leaves at most MAX_LINE
                // bytes, less than READ_SIZE.
                if pending.len() == pending.capacity() {
                    pending.reserve_exact(READ_SIZE - pending.len());
                }
                // A pipe found more than half full: the child writes faster
                // than this reader keeps up. A refusal only costs speed.
                if count > MAX_LINE / 2 && !pipe_grown {
                    pipe_grown = true;
                    let _ = fd::set_pipe_size(pipe.as_fd(), BUSY_PIPE_SIZE);
                }
                count == 0
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                // Empty for now. If it stays quiet the buffers go, unless
                // they hold the start of a line (rare for a quiet process).
                let timeout = if pending.is_empty() { Some(IDLE) } else { None };
                if !fd::wait_readable(pipe.as_fd(), timeout).unwrap_or(true) {
                    pending = Vec::new();
                    batch = Vec::new();
                }
                continue;
            }
            // Not expected on a pipe; all that can be done is to stop.
            Err(_) => true,
        };
        let used = sink.write_lines(head.now(), &pending, at_eof, &mut batch);
        pending.drain(..used);
        if at_eof {
            return;
        }
    }
}

/// Appends to `out` the lines at the start of `pending`, each behind `head`
/// and ended by a newline: every line ended by a newline, a `MAX_LINE` piece
/// of a longer line, and at end of file the unended rest. Bytes go through
/// as they are (no UTF-8 check, `\r` kept). Stops early once `out` holds
/// `BATCH` bytes. Returns how many bytes of `pending` were used; the rest is
/// a line still to come.
fn format_lines(head: &[u8], pending: &[u8], at_eof: bool, out: &mut Vec<u8>) -> usize {
    let mut used = 0;
    while used < pending.len() && out.len() < BATCH {
        let rest = &pending[used..];
        // A newline right after MAX_LINE bytes still ends a whole line.
        let window = &rest[..rest.len().min(MAX_LINE + 1)];
        let (line, taken) = match crate::sys::find_byte(b'\n', window) {
            Some(end) => (&rest[..end], end + 1),
            None if rest.len() > MAX_LINE => (&rest[..MAX_LINE], MAX_LINE),
            None if at_eof => (rest, rest.len()),
            None => break,
        };
        out.extend_from_slice(head);
        out.extend_from_slice(line);
        out.push(b'\n');
        used += taken;
    }
    used
}

/// What goes before each line of one stream: the timestamp (when on), then
/// the name, coloured and padded, and ` | `.
struct Head {
    bytes: Vec<u8>,
    timestamps: bool,
}

impl Head {
    fn new(style: Style, name: &str, colour: &str) -> Head {
        let (colour, reset) = if style.color {
            (colour, RESET)
        } else {
            ("", "")
        };
        // The timestamp's slot, filled in by `now`.
        let mut bytes = if style.timestamps {
            stamp((0, 0, 0, 0)).to_vec()
        } else {
            Vec::new()
        };
        let width = style.name_width;
        bytes.extend_from_slice(format!("{colour}{name:<width$} |{reset} ").as_bytes());
        Head {
            bytes,
            timestamps: style.timestamps,
        }
    }

    /// The head for lines written now.
    fn now(&mut self) -> &[u8] {
        if self.timestamps {
            let stamp = stamp(fd::local_time_of_day(SystemTime::now()));
            self.bytes[..stamp.len()].copy_from_slice(&stamp);
        }
        &self.bytes
    }
}

/// `HH:MM:SS.mmm ` from (hour, minute, second, millisecond).
fn stamp((hour, minute, second, millis): (u8, u8, u8, u32)) -> [u8; 13] {
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let [h, m, s] = [hour, minute, second].map(u32::from);
    [
        digit(h / 10),
        digit(h),
        b':',
        digit(m / 10),
        digit(m),
        b':',
        digit(s / 10),
        digit(s),
        b'.',
        digit(millis / 100),
        digit(millis / 10),
        digit(millis),
        b' ',
    ]
}

/// A colour that depends on the name alone, so that a process keeps it across
/// restarts and runs: FNV-1a, because std's hasher may change between Rust
/// releases, then MurmurHash3's final mix, because FNV's low bits follow
/// little more than the bytes' parity and would crowd names into few colours.
fn colour_of(name: &str) -> &'static str {
    let mut hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^= hash >> 16;
    PALETTE[hash as usize % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Write};

    const PLAIN: Style = Style {
        color: false,
        timestamps: false,
        name_width: 6,
    };

    fn head(style: Style, name: &str) -> Vec<u8> {
        Head::new(style, name, colour_of(name)).now().to_vec()
    }

    /// Formats `pending` as one call does: (output, leftover).
    fn format(head: &[u8], pending: &[u8], at_eof: bool) -> (Vec<u8>, Vec<u8>) {
        let mut out = Vec::new();
        let used = format_lines(head, pending, at_eof, &mut out);
        (out, pending[used..].to_vec())
    }

    #[test]
    fn pads_the_name_and_prefixes_every_complete_line() {
        let (out, rest) = format(&head(PLAIN, "web"), b"hello\nworld\n", false);
        assert_eq!(out, b"web    | hello\nweb    | world\n");
        assert!(rest.is_empty());
    }

    #[test]
    fn colours_only_the_name_and_bar() {
        let style = Style {
            color: true,
            ..PLAIN
        };
        let (out, _) = format(&head(style, "web"), b"hi\n", false);
        let expected = format!("{}web    |\x1b[0m hi\n", colour_of("web"));
        assert_eq!(out, expected.as_bytes());
    }

    #[test]
    fn herd_lines_are_bold() {
        let style = Style {
            color: true,
            ..PLAIN
        };
        assert_eq!(
            Head::new(style, HERD, BOLD).now(),
            b"\x1b[1mherd   |\x1b[0m "
        );
        assert_eq!(Head::new(PLAIN, HERD, BOLD).now(), b"herd   | ");
    }

    #[test]
    fn timestamps_go_before_the_name() {
        assert_eq!(&stamp((9, 5, 7, 42)), b"09:05:07.042 ");
        assert_eq!(&stamp((23, 59, 60, 999)), b"23:59:60.999 ");
        let style = Style {
            timestamps: true,
            ..PLAIN
        };
        let head = head(style, "db");
        assert_eq!(head.len(), 13 + "db     | ".len());
        assert_eq!(
            (head[2], head[5], head[8], head[12]),
            (b':', b':', b'.', b' ')
        );
        assert!(head.ends_with(b" db     | "));
    }

    #[test]
    fn keeps_a_partial_line_for_later_and_flushes_it_at_eof() {
        let (out, rest) = format(b"a | ", b"one\ntw", false);
        assert_eq!(
            (out.as_slice(), rest.as_slice()),
            (&b"a | one\n"[..], &b"tw"[..])
        );
        let (out, rest) = format(b"a | ", b"two", true);
        assert_eq!(out, b"a | two\n");
        assert!(rest.is_empty());
        assert!(format(b"a | ", b"", true).0.is_empty());
    }

    #[test]
    fn cuts_a_line_longer_than_the_maximum_into_pieces() {
        let long = vec![b'x'; MAX_LINE + 10];
        let (out, rest) = format(b"a | ", &long, false);
        assert_eq!(out.len(), 4 + MAX_LINE + 1);
        assert!(out.starts_with(b"a | xxx") && out.ends_with(b"x\n"));
        assert_eq!(rest.len(), 10);
        let (out, _) = format(b"a | ", &rest, true);
        assert_eq!(out, [&b"a | "[..], &[b'x'; 10], b"\n"].concat());
    }

    #[test]
    fn keeps_a_line_of_exactly_the_maximum_whole() {
        let mut line = vec![b'x'; MAX_LINE];
        line.push(b'\n');
        let (out, rest) = format(b"a | ", &line, false);
        assert_eq!(out, [&b"a | "[..], &line].concat());
        assert!(rest.is_empty());
    }

    #[test]
    fn passes_binary_bytes_and_carriage_returns_through() {
        let (out, _) = format(b"a | ", b"\x00\xff\x1b[31m\r\nb\r\n", false);
        assert_eq!(out, b"a | \x00\xff\x1b[31m\r\na | b\r\n");
    }

    #[test]
    fn bounds_a_batch_of_many_empty_lines() {
        let empty_lines = vec![b'\n'; MAX_LINE];
        let head = b"a-long-name | ";
        let (out, rest) = format(head, &empty_lines, false);
        assert!(out.len() >= BATCH && out.len() < BATCH + head.len() + 1);
        assert!(!rest.is_empty());
    }

    #[test]
    fn writes_every_batch_of_a_long_input() {
        let (read, write) = fd::pipe().unwrap();
        let sink = Sink::with_output(PLAIN, write);
        let collector = thread::spawn(move || read_all(read));
        let empty_lines = vec![b'\n'; MAX_LINE];
        let used = sink.write_lines(b"a | ", &empty_lines, false, &mut Vec::new());
        assert_eq!(used, MAX_LINE);
        drop(sink);
        assert_eq!(collector.join().unwrap(), b"a | \n".repeat(MAX_LINE));
    }

    #[test]
    fn decides_colour_from_choice_terminal_and_no_color() {
        use ColorChoice::*;
        let set = || Some(OsString::from("1"));
        let empty = || Some(OsString::new());
        let cases = [
            (Auto, true, None, true),
            (Auto, true, empty(), true),
            (Auto, true, set(), false),
            (Auto, false, None, false),
            (Auto, false, set(), false),
            (Always, false, None, true),
            (Always, true, set(), true),
            (Never, true, None, false),
            (Never, false, set(), false),
        ];
        for (choice, terminal, no_color, expected) in cases {
            let case = format!("{choice:?} terminal={terminal} NO_COLOR={no_color:?}");
            assert_eq!(use_color(choice, terminal, no_color), expected, "{case}");
        }
    }

    #[test]
    fn colours_are_stable_and_spread() {
        // Pinned: a name's colour must not change between releases.
        assert_eq!(colour_of("web"), colour_of("web"));
        assert_eq!(colour_of("web"), PALETTE[2]);
        assert_eq!(colour_of("redis"), PALETTE[5]);
        assert_eq!(colour_of("api"), PALETTE[4]);
        let names = [
            "web", "worker", "db", "redis", "clock", "mail", "api", "queue",
        ];
        let mut used: Vec<&str> = names.iter().map(|name| colour_of(name)).collect();
        used.sort_unstable();
        used.dedup();
        assert!(used.len() >= 4, "{used:?}");
    }

    fn read_all(fd: OwnedFd) -> Vec<u8> {
        let mut all = Vec::new();
        File::from(fd).read_to_end(&mut all).unwrap();
        all
    }

    #[test]
    fn reader_thread_prefixes_lines_until_eof() {
        let (sink_read, sink_write) = fd::pipe().unwrap();
        let sink = Sink::with_output(PLAIN, sink_write);
        let (child_read, child_write) = fd::pipe().unwrap();
        let reader = spawn_reader(&sink, "web", child_read).unwrap();
        File::from(child_write)
            .write_all(b"hello\r\nno newline")
            .unwrap();
        reader.join().unwrap();
        sink.herd_line("web exited");
        drop(sink);
        let expected = "web    | hello\r\nweb    | no newline\nherd   | web exited\n";
        assert_eq!(String::from_utf8(read_all(sink_read)).unwrap(), expected);
    }

    #[test]
    fn reader_thread_keeps_long_lines_whole_and_cuts_longer_ones() {
        let (sink_read, sink_write) = fd::pipe().unwrap();
        let sink = Sink::with_output(PLAIN, sink_write);
        let collector = thread::spawn(move || read_all(sink_read));
        let (child_read, child_write) = fd::pipe().unwrap();
        let reader = spawn_reader(&sink, "web", child_read).unwrap();
        let long = "l".repeat(3000);
        let longer = "L".repeat(MAX_LINE + 5);
        File::from(child_write)
            .write_all(format!("{long}\n{longer}\nend\n").as_bytes())
            .unwrap();
        reader.join().unwrap();
        drop(sink);
        let out = String::from_utf8(collector.join().unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let expected =
            [&long, &longer[..MAX_LINE], "LLLLL", "end"].map(|text| format!("web    | {text}"));
        assert_eq!(lines, expected);
    }

    #[test]
    fn lines_of_concurrent_readers_never_interleave() {
        let (sink_read, sink_write) = fd::pipe().unwrap();
        let sink = Sink::with_output(PLAIN, sink_write);
        let collector = thread::spawn(move || read_all(sink_read));
        let lines = 20_000;
        let writers: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                let (read, write) = fd::pipe().unwrap();
                let reader = spawn_reader(&sink, name, read).unwrap();
                // Odd-sized writes, so lines arrive cut at every place.
                let text = format!("{name}{}\n", name.repeat(77)).repeat(lines);
                let writer = thread::spawn(move || {
                    let mut file = File::from(write);
                    for chunk in text.as_bytes().chunks(4093) {
                        file.write_all(chunk).unwrap();
                    }
                });
                (reader, writer)
            })
            .collect();
        for (reader, writer) in writers {
            writer.join().unwrap();
            reader.join().unwrap();
        }
        drop(sink);
        let out = String::from_utf8(collector.join().unwrap()).unwrap();
        let mut counts = [0; 3];
        for line in out.lines() {
            let (name, text) = line.split_once("      | ").unwrap();
            assert_eq!(text, name.repeat(78), "{line:?}");
            counts[usize::from(name.as_bytes()[0] - b'a')] += 1;
        }
        assert_eq!(counts, [lines; 3]);
    }

    #[test]
    fn readers_keep_draining_after_stdout_closes() {
        let (sink_read, sink_write) = fd::pipe().unwrap();
        drop(sink_read);
        let sink = Sink::with_output(PLAIN, sink_write);
        let (child_read, child_write) = fd::pipe().unwrap();
        let reader = spawn_reader(&sink, "web", child_read).unwrap();
        // Far more than a pipe holds: this only ends if the reader drains.
        let mut file = File::from(child_write);
        for _ in 0..1000 {
            file.write_all(&[b'y'; 1023]).unwrap();
            file.write_all(b"\n").unwrap();
        }
        drop(file);
        reader.join().unwrap();
        sink.herd_line("still fine");
        assert!(sink.output.lock().unwrap().is_none());
    }

    #[test]
    fn parses_color_choices() {
        assert_eq!("auto".parse(), Ok(ColorChoice::Auto));
        assert_eq!("always".parse(), Ok(ColorChoice::Always));
        assert_eq!("never".parse(), Ok(ColorChoice::Never));
        assert_eq!("Always".parse::<ColorChoice>(), Err(()));
        assert_eq!("".parse::<ColorChoice>(), Err(()));
    }
}

/// herd's stdout as the supervisor uses it; the readers still write
/// through `Sink` themselves (the writer thread that decouples them comes
/// next).
#[derive(Clone)]
pub struct Output {
    sink: Arc<Sink>,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReaderId(u64);

impl Output {
    pub fn new(style: Style) -> Output {
        Output {
            sink: Sink::new(style),
            readers: Arc::new(Mutex::new(Vec::new())),
        }
    }
    pub fn herd_line(&self, text: &str) {
        self.sink.herd_line(text);
    }
    pub fn herd_line_after(&self, text: &str, _reader: ReaderId, _wait: Duration) {
        self.sink.herd_line(text);
    }
    pub fn note(&self, text: &str) {
        crate::log::line(format_args!("{text}"));
    }
    pub fn spawn_reader(
        &self,
        name: &str,
        pipe: OwnedFd,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> io::Result<ReaderId> {
        let reader = spawn_reader_then(&self.sink, name, pipe, on_end)?;
        self.readers.lock().unwrap().push(reader);
        Ok(ReaderId(0))
    }
    pub fn spawn_copier(
        &self,
        pipe: OwnedFd,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> io::Result<ReaderId> {
        let reader = spawn_copier(pipe, on_end)?;
        self.readers.lock().unwrap().push(reader);
        Ok(ReaderId(0))
    }
    pub fn drain(&self, limit: Duration) {
        let mut readers = std::mem::take(&mut *self.readers.lock().unwrap());
        wait_for_readers(&mut readers, limit);
    }
}
