//! herd's output: child pipes turned into whole lines, one reader thread per
//! pipe, and written with herd's own lines in one order by one writer thread
//! (or, into a file with nothing waiting, by the reader itself).

use crate::sys::fd;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IoSlice, IsTerminal};
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
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
/// A batch is queued as soon as it holds this much, so that lines much
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
/// How long a pipe must stay quiet before its reader frees its buffers, and
/// the writer must stay idle before it frees its spare ones: a process that
/// printed a banner and went idle should cost about what one that never
/// printed costs, and allocating again after a pause is cheap.
const IDLE: Duration = Duration::from_millis(100);
/// Reader threads and the writer only read, format and write through heap
/// buffers, so a small stack is plenty (std's default is 2 MiB of address
/// space per thread).
const THREAD_STACK: usize = 64 * 1024;
/// How many bytes of the readers' lines may wait for the writer. A reader
/// with more waits, and stops reading its pipe, so that a process writing
/// faster than herd's stdout is read blocks in its own write, as it would
/// writing to that stdout itself.
const READER_QUEUE: usize = 1024 * 1024;
/// How many bytes of herd's own lines and notes may wait for the writer.
/// They never wait (the supervisor loop must go on when nobody reads herd's
/// stdout): beyond this they are dropped, and counted in a line of their own
/// once the writer gets through.
const OWN_QUEUE: usize = 1024 * 1024;
/// About how much the writer takes from the queue at a time, and how much
/// of the readers' lines must wait before a busy reader wakes it. Half the
/// queue, so that readers go on while it writes: waking the writer for every
/// 256 KiB instead cost 10% of throughput in context switches.
const ROUND: usize = 512 * 1024;
/// How many written batches the writer keeps for readers to format their
/// next ones in, so that a busy reader does not allocate (and fault in) a
/// new buffer for every batch: enough for what the queue and a round hold
/// (a busy reader's batches hold at least `SPARE_SIZE`; with half as many,
/// allocating made herd 10% slower). Only buffers this large are kept, and
/// none once the writer has been idle for `IDLE`.
const SPARE_SIZE: usize = MAX_LINE;
const SPARE_BUFFERS: usize = (READER_QUEUE + ROUND) / SPARE_SIZE;
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
#[derive(Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
    pub timestamps: bool,
    /// The longest name among the processes and "herd", in characters: every
    /// name is padded to it so that all lines' text starts in one column.
    pub name_width: usize,
}

/// What a reader thread does once its pipe has been read to the end (its
/// last lines are queued by then).
pub type OnEnd = Box<dyn FnOnce() + Send>;

/// One reader thread's pipe, for `Output::herd_line_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReaderId(u64);

/// herd's stdout, and the notes herd writes to stderr: one writer thread,
/// started with the first thing to write, and the queue that feeds it.
///
/// Reader threads queue whole lines and wait when the queue is full; herd's
/// own lines never wait. The writer alone writes, so lines never interleave,
/// and it holds no lock while it writes. A clone is another handle to the
/// same output; once every handle is gone, the writer ends when every reader
/// has reached end of file and everything queued is written.
#[derive(Clone)]
pub struct Output {
    handle: Arc<Handle>,
}

/// What the clones of an `Output` share. Readers and the writer hold
/// `Shared` itself, so dropping this tells the writer that no more of herd's
/// lines can come.
struct Handle(Arc<Shared>);

struct Shared {
    style: Style,
    /// Where the writer writes: herd's stdout and stderr by fd number (what
    /// `io::Stdout` and `io::Stderr` lend), so that each write goes to
    /// whatever file fds 1 and 2 are then (SIGUSR1 puts a reopened log over
    /// them); pipes in tests.
    stdout: Box<dyn AsFd + Send + Sync>,
    stderr: Box<dyn AsFd + Send + Sync>,
    /// Set once whoever reads herd's stdout has gone (EPIPE): stdout's lines
    /// are dropped from then on, without a syscall and without formatting,
    /// while the readers keep draining their pipes so that no child blocks
    /// on a full one.
    stdout_closed: AtomicBool,
    /// A reader that finds nothing queued and the writer idle writes its
    /// batch itself (see `write_lent`): stdout is a file or a device such as
    /// /dev/null. Not into a pipe, a socket or a terminal, where a write may
    /// wait for the other end and the reader could not read on meanwhile:
    /// through `| cat`, writing from the writer thread was 1.1–1.3 times
    /// as fast.
    lends: bool,
    queue: Mutex<Queue>,
    /// The writer waits here for something to write.
    work: Condvar,
    /// Readers wait here for room in the queue, and `drain` for the end.
    progress: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Readers' batches and ends of file, in the order they came.
    chunks: VecDeque<Chunk>,
    /// The bytes of the batches in `chunks`.
    chunk_bytes: usize,
    /// herd's own lines and notes, in the order they came.
    own: VecDeque<OwnLine>,
    own_bytes: usize,
    /// herd's lines and notes dropped since one was last queued.
    dropped_lines: usize,
    dropped_notes: usize,
    /// Orders chunks and own lines among each other.
    next_seq: u64,
    next_reader: u64,
    /// Readers whose end of file the writer has not taken yet.
    live: Vec<ReaderId>,
    /// Written buffers for readers to reuse.
    spare: Vec<Vec<u8>>,
    writer: Writer,
    /// Something queued is to be written now: the writer was woken for it,
    /// or its last round stopped at the limit.
    wanted: bool,
    /// Threads waiting on `progress`.
    waiting: usize,
    handles_gone: bool,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Writer {
    #[default]
    NotStarted,
    /// Waiting on `work`.
    Idle,
    /// Writing, or about to look at the queue (woken, or being started).
    Busy,
    /// Waiting on `work` while a reader that found nothing queued writes its
    /// batch itself; that reader wakes it when it is done, if need be.
    Lent,
}

/// What a reader queued: a batch of whole lines (or, from a copier, bytes),
/// or `None` for its end of file.
struct Chunk {
    seq: u64,
    reader: ReaderId,
    bytes: Option<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dest {
    Stdout,
    Stderr,
}

/// One of herd's own lines, formatted, or one of its notes.
struct OwnLine {
    seq: u64,
    dest: Dest,
    bytes: Vec<u8>,
    after: Option<After>,
}

/// A line to be written only after the last output of `reader`, or at
/// `until` (`None`: a wait too long to count) if that comes first.
#[derive(Clone, Copy)]
struct After {
    reader: ReaderId,
    until: Option<Instant>,
}

/// Bytes for one destination, taken from the queue for one round of writes.
struct Piece {
    dest: Dest,
    bytes: Vec<u8>,
}

/// How a reader treats what it reads.
enum Form {
    /// Whole lines, each behind this head.
    Lines(Head),
    /// Bytes as they came.
    Raw,
}

impl Output {
    /// An output to herd's stdout (fd 1) and stderr (fd 2), written to
    /// straight, not through std's buffered `Stdout`: nothing else in herd
    /// should print to stdout. No thread starts until something is queued.
    pub fn new(style: Style) -> Output {
        Output::with_fds(style, io::stdout(), io::stderr())
    }

    /// An output to any pair of fds: herd's own, or pipes in tests.
    fn with_fds(
        style: Style,
        stdout: impl AsFd + Send + Sync + 'static,
        stderr: impl AsFd + Send + Sync + 'static,
    ) -> Output {
        let lends = never_waits_for_a_reader(stdout.as_fd());
        Output::lending(style, stdout, stderr, lends)
    }

    /// An output whose readers write their batches themselves when nothing
    /// else waits, if `lends`.
    fn lending(
        style: Style,
        stdout: impl AsFd + Send + Sync + 'static,
        stderr: impl AsFd + Send + Sync + 'static,
        lends: bool,
    ) -> Output {
        let shared = Shared {
            style,
            lends,
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            stdout_closed: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
        };
        Output {
            handle: Arc::new(Handle(Arc::new(shared))),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.0
    }

    /// Queues `text` as a line of the `herd` pseudo-process (each line of
    /// it, should it have several), in the same format as a process's lines.
    /// Never waits. An empty `text` writes nothing.
    pub fn herd_line(&self, text: &str) {
        self.shared().queue_own(Dest::Stdout, text, None);
    }

    /// Queues a herd line like `herd_line`, to be written after the last
    /// output of `reader` (once the writer has taken its end of file), or
    /// once `wait` has passed, whichever comes first. Never waits. What is
    /// queued after it waits behind it, but for `reader`'s own lines.
    pub fn herd_line_after(&self, text: &str, reader: ReaderId, wait: Duration) {
        let after = After {
            reader,
            until: Instant::now().checked_add(wait),
        };
        self.shared().queue_own(Dest::Stdout, text, Some(after));
    }

    /// Queues `herd: TEXT` as a line for herd's stderr, in order with herd's
    /// lines. Never waits.
    pub fn note(&self, text: &str) {
        self.shared().queue_own(Dest::Stderr, text, None);
    }

    /// Starts a thread that copies `pipe` (a child's stdout and stderr, which
    /// share it) to herd's stdout as lines prefixed with `name`, until end of
    /// file, and then calls `on_end`. Starts the writer too, if it has not
    /// started yet.
    pub fn spawn_reader(&self, name: &str, pipe: OwnedFd, on_end: OnEnd) -> io::Result<ReaderId> {
        let shared = self.shared();
        let head = Head::new(shared.style, name, colour_of(name));
        shared.spawn_reader(format!("out:{name}"), Form::Lines(head), pipe, on_end)
    }

    /// Starts a thread that copies `pipe` to herd's stdout byte for byte,
    /// until end of file: the output of `herd start -- CMD`, which has no
    /// prefix but goes through herd so that it follows the log when SIGUSR1
    /// reopens it.
    pub fn spawn_copier(&self, pipe: OwnedFd, on_end: OnEnd) -> io::Result<ReaderId> {
        self.shared()
            .spawn_reader("out".into(), Form::Raw, pipe, on_end)
    }

    /// Waits at most `limit` until every reader has reached end of file and
    /// everything queued is written. The limit is for pipes that a descendant
    /// outside the process group keeps open, and for a stdout nobody reads.
    pub fn drain(&self, limit: Duration) {
        let shared = self.shared();
        let until = Instant::now().checked_add(limit);
        let mut queue = shared.lock();
        // Lines queued while the writer could not be started: one more try.
        if !queue.is_done() && queue.writer == Writer::NotStarted {
            queue.writer = Writer::Busy;
            drop(queue);
            let _ = shared.start_writer();
            queue = shared.lock();
        }
        while !queue.is_done() {
            let timeout = until.map(|until| until.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                return;
            }
            queue.waiting += 1;
            queue = match timeout {
                Some(timeout) => {
                    let waited = shared.progress.wait_timeout(queue, timeout);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
                None => shared
                    .progress
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
            };
            queue.waiting -= 1;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.handles_gone = true;
        if queue.writer == Writer::Idle {
            self.0.wake(queue);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stdout_is_closed(&self) -> bool {
        self.stdout_closed.load(Ordering::Relaxed)
    }

    /// Lets the writer know there is something in the queue, and starts it
    /// if it has not started. The writer is woken once the queue is let go
    /// of, so that it does not wake only to wait for the lock.
    fn wake(self: &Arc<Self>, mut queue: MutexGuard<'_, Queue>) {
        queue.wanted = true;
        if queue.writer == Writer::Lent {
            return;
        }
        let was = mem::replace(&mut queue.writer, Writer::Busy);
        drop(queue);
        match was {
            Writer::Idle => self.work.notify_one(),
            // On a failure what is queued waits for the next try.
            Writer::NotStarted => drop(self.start_writer()),
            Writer::Busy | Writer::Lent => {}
        }
    }

    /// Starts the writer thread, which the caller has marked as started.
    /// On a failure it is marked as not started again, and what is queued
    /// waits for the next try.
    fn start_writer(self: &Arc<Self>) -> io::Result<()> {
        let shared = Arc::clone(self);
        let started = thread::Builder::new()
            .name("writer".into())
            .stack_size(THREAD_STACK)
            .spawn(move || shared.write_until_done());
        if started.is_err() {
            self.lock().writer = Writer::NotStarted;
        }
        started.map(drop)
    }

    /// Formats `text` as herd's line or note.
    fn format_own(&self, dest: Dest, text: &str) -> Vec<u8> {
        match dest {
            Dest::Stdout => {
                let mut head = Head::new(self.style, HERD, BOLD);
                let mut lines = Vec::new();
                let mut rest = text.as_bytes();
                while !rest.is_empty() {
                    // Into an empty buffer, so that at least a line is used.
                    let mut part = Vec::new();
                    let used = format_lines(head.now(), rest, true, &mut part);
                    lines.append(&mut part);
                    rest = rest.get(used..).unwrap_or_default();
                }
                lines
            }
            // As `log::line` writes it.
            Dest::Stderr => format!("herd: {text}\n").into_bytes(),
        }
    }

    /// Queues one of herd's lines or notes, or drops it if too many wait.
    fn queue_own(self: &Arc<Self>, dest: Dest, text: &str, after: Option<After>) {
        if text.is_empty() || (dest == Dest::Stdout && self.stdout_is_closed()) {
            return;
        }
        let bytes = self.format_own(dest, text);
        let mut queue = self.lock();
        if queue.own_bytes.saturating_add(bytes.len()) > OWN_QUEUE {
            let dropped = queue.dropped(dest);
            *dropped = dropped.saturating_add(1);
        } else {
            // The count of what was dropped goes where the dropped lines
            // would have been, before this one.
            let dropped = mem::take(queue.dropped(dest));
            if dropped > 0 {
                let report = self.format_own(dest, &dropped_report(dest, dropped));
                queue.push_own(dest, report, None);
            }
            queue.push_own(dest, bytes, after);
        }
        // Woken even for a dropped line, so that the writer reports it.
        self.wake(queue);
    }

    /// Registers a reader and starts its thread, and the writer first.
    fn spawn_reader(
        self: &Arc<Self>,
        thread_name: String,
        form: Form,
        pipe: OwnedFd,
        on_end: OnEnd,
    ) -> io::Result<ReaderId> {
        fd::set_nonblocking(pipe.as_fd())?;
        let mut queue = self.lock();
        let reader = ReaderId(queue.next_reader);
        queue.next_reader = queue.next_reader.wrapping_add(1);
        queue.live.push(reader);
        // Its reader may need the writer at once.
        let start_writer = queue.writer == Writer::NotStarted;
        if start_writer {
            queue.writer = Writer::Busy;
        }
        drop(queue);
        let started = if start_writer {
            self.start_writer()
        } else {
            Ok(())
        };
        let spawned = started.and_then(|()| {
            let shared = Arc::clone(self);
            thread::Builder::new()
                .name(thread_name)
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    shared.copy(reader, form, &pipe);
                    on_end();
                })
        });
        if let Err(error) = spawned {
            self.lock().live.retain(|live| *live != reader);
            return Err(error);
        }
        Ok(reader)
    }

    /// A reader thread's work. Its buffers exist only while output flows: an
    /// idle process's reader holds no more than its thread's stack.
    ///
    /// The pipe is non-blocking so that a busy reader learns the pipe is
    /// empty from the read itself; a poll(2) after every read cost 15% of
    /// throughput.
    fn copy(self: &Arc<Self>, reader: ReaderId, mut form: Form, pipe: &OwnedFd) {
        let mut pending = Vec::new();
        let mut batch = Vec::new();
        let mut pipe_grown = false;
        // Something was queued since the writer was last woken for it.
        let mut unflushed = false;
        loop {
            if pending.capacity() == 0 {
                // On an error (ENOMEM) the read below says EAGAIN and the
                // loop waits again.
                let _ = fd::wait_readable(pipe.as_fd(), None);
                pending.reserve_exact(FIRST_READ);
            }
            let at_eof = match fd::read_appending(pipe.as_fd(), &mut pending) {
                Ok(count) => {
                    // A full buffer asks for the full size. This also keeps
                    // room for the next read: `queue_lines` leaves at most
                    // MAX_LINE bytes, less than READ_SIZE.
                    if pending.len() == pending.capacity() {
                        pending.reserve_exact(READ_SIZE - pending.len());
                    }
                    // A pipe found more than half full: the child writes
                    // faster than this reader keeps up. A refusal only costs
                    // speed.
                    if count > MAX_LINE / 2 && !pipe_grown {
                        pipe_grown = true;
                        let _ = fd::set_pipe_size(pipe.as_fd(), BUSY_PIPE_SIZE);
                    }
                    count == 0
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if mem::take(&mut unflushed) {
                        self.flush();
                    }
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
            let used = match &mut form {
                // Nobody reads herd's stdout: the pipe is drained all the same.
                _ if self.stdout_is_closed() => pending.len(),
                Form::Lines(head) => {
                    self.queue_lines(reader, head.now(), &pending, at_eof, &mut batch)
                }
                Form::Raw => {
                    batch.extend_from_slice(&pending);
                    self.queue_batch(reader, &mut batch);
                    pending.len()
                }
            };
            pending.drain(..used);
            unflushed = true;
            if at_eof {
                self.push_chunk(reader, None);
                return;
            }
        }
    }

    /// Formats the lines at the start of `pending` behind `head` and queues
    /// them, a batch at a time, formatting each in `batch`. Returns how many
    /// bytes of `pending` it used; the rest is the start of a line still to
    /// come.
    fn queue_lines(
        self: &Arc<Self>,
        reader: ReaderId,
        head: &[u8],
        pending: &[u8],
        at_eof: bool,
        batch: &mut Vec<u8>,
    ) -> usize {
        let mut used = 0;
        loop {
            let rest = pending.get(used..).unwrap_or_default();
            // Room for every line of `rest` with its head (a line is at
            // least one byte), at most what a batch can grow to: one
            // allocation for a new buffer, none for a spare one.
            let most = BATCH + head.len() + MAX_LINE + 1;
            batch.reserve(rest.len().saturating_mul(head.len() + 2).min(most));
            let count = format_lines(head, rest, at_eof, batch);
            if count == 0 {
                return used;
            }
            used += count;
            self.queue_batch(reader, batch);
        }
    }

    /// Queues what `batch` holds and puts a buffer for the next batch in its
    /// place.
    fn queue_batch(self: &Arc<Self>, reader: ReaderId, batch: &mut Vec<u8>) {
        if !batch.is_empty() {
            *batch = self.push_chunk(reader, Some(mem::take(batch)));
        }
    }

    /// Queues a reader's batch or end of file, first waiting while the
    /// readers' batches in the queue are over their bound. Returns an empty
    /// buffer, a spare one if there is one.
    fn push_chunk(self: &Arc<Self>, reader: ReaderId, bytes: Option<Vec<u8>>) -> Vec<u8> {
        let mut queue = self.lock();
        let len = bytes.as_ref().map_or(0, Vec::len);
        if len > 0 && self.lends && queue.is_caught_up() {
            if let Some(bytes) = bytes {
                return self.write_lent(queue, bytes);
            }
        }
        // An end of file holds no bytes, and its reader must not wait.
        while len > 0 && queue.chunk_bytes >= READER_QUEUE {
            // Room comes only from a writer at work. (It runs: readers start
            // only once it does, and it ends only after them.)
            queue.wanted = true;
            if queue.writer == Writer::Idle {
                queue.writer = Writer::Busy;
                self.work.notify_one();
            }
            queue.waiting += 1;
            queue = self
                .progress
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            queue.waiting -= 1;
        }
        queue.chunk_bytes += len;
        let seq = queue.take_seq();
        queue.chunks.push_back(Chunk { seq, reader, bytes });
        let spare = queue.spare.pop().unwrap_or_default();
        // A busy reader wakes the writer only once a round's worth waits, or
        // before it waits for its pipe (`flush`): a wake-up for every batch
        // doubled the context switches and cost a third of the throughput.
        if len == 0 || queue.chunk_bytes >= ROUND {
            self.wake(queue);
        }
        spare
    }

    /// Writes a reader's batch from the reader's own thread, with the writer
    /// marked as lent so that it writes nothing meanwhile: when nothing else
    /// waits, handing the batch over costs a wake-up and a thread that takes
    /// a CPU from the child and its reader (4% of throughput into a file).
    /// Whatever was queued meanwhile is the writer's once the batch is
    /// written. Returns the emptied buffer for the next batch.
    fn write_lent(self: &Arc<Self>, mut queue: MutexGuard<'_, Queue>, bytes: Vec<u8>) -> Vec<u8> {
        queue.writer = Writer::Lent;
        drop(queue);
        let piece = [Piece {
            dest: Dest::Stdout,
            bytes,
        }];
        self.write_round(&piece);
        let mut queue = self.lock();
        queue.writer = Writer::Idle;
        if queue.wanted {
            self.wake(queue);
        } else if queue.waiting > 0 {
            self.progress.notify_all();
        }
        let [Piece { mut bytes, .. }] = piece;
        bytes.clear();
        bytes
    }

    /// Wakes the writer for what the readers queued: a reader calls this
    /// before it waits for its pipe.
    fn flush(self: &Arc<Self>) {
        let queue = self.lock();
        if !queue.chunks.is_empty() {
            self.wake(queue);
        }
    }

    /// The writer thread's work: takes what is queued a round at a time and
    /// writes it, holding no lock while it writes, until no more can come.
    fn write_until_done(&self) {
        let mut round = Vec::new();
        let mut queue = self.lock();
        let mut woken = true;
        loop {
            let now = Instant::now();
            // Between wake-ups, a few batches queued while it wrote wait for
            // more (or for their reader's `flush`): written one at a time,
            // they cost a lock and a writev(2) each.
            let lent = queue.writer == Writer::Lent;
            if !lent && (mem::take(&mut woken) || queue.wanted || queue.chunk_bytes >= ROUND) {
                self.take_round(&mut queue, &mut round, now);
            }
            if round.is_empty() {
                if queue.handles_gone && queue.live.is_empty() {
                    return;
                }
                // Nothing to write before the first of herd's lines that
                // waits for a reader, if there is one.
                let until = queue.own.front().and_then(|own| own.after?.until);
                let timeout = match until {
                    Some(until) => Some(until.saturating_duration_since(now)),
                    None if !queue.spare.is_empty() => Some(IDLE),
                    None => None,
                };
                if !lent {
                    queue.writer = Writer::Idle;
                }
                if queue.waiting > 0 {
                    self.progress.notify_all();
                }
                queue = match timeout {
                    Some(timeout) => {
                        let waited = self.work.wait_timeout(queue, timeout);
                        let (mut queue, result) = waited.unwrap_or_else(PoisonError::into_inner);
                        if result.timed_out() && until.is_none() {
                            queue.spare = Vec::new();
                        }
                        queue
                    }
                    None => self
                        .work
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner),
                };
                // Woken by a timeout while lent: the reader wakes it again.
                if queue.writer != Writer::Lent {
                    queue.writer = Writer::Busy;
                    woken = true;
                }
                continue;
            }
            // Room for the readers that wait.
            if queue.waiting > 0 {
                self.progress.notify_all();
            }
            drop(queue);
            self.write_round(&round);
            queue = self.lock();
            for mut piece in round.drain(..) {
                if queue.spare.len() < SPARE_BUFFERS && piece.bytes.capacity() >= SPARE_SIZE {
                    piece.bytes.clear();
                    queue.spare.push(piece.bytes);
                }
            }
        }
    }

    /// Moves into `round` what the queue holds, up to about `ROUND` bytes, in
    /// the order it came. A line that waits for a reader's last output holds
    /// back everything that came after it but that reader's batches, so that
    /// what the other processes printed after it (in answer to a stop that
    /// followed, say) does not come before it.
    fn take_round(&self, queue: &mut Queue, round: &mut Vec<Piece>, now: Instant) {
        let mut taken = 0;
        while taken < ROUND {
            let own = queue.own.front();
            let held_back_by = own
                .filter(|own| !own.is_ready(&queue.live, now))
                .and_then(|own| Some((own.seq, own.after?.reader)));
            let next_chunk = match held_back_by {
                Some((seq, reader)) => queue
                    .chunks
                    .iter()
                    .position(|chunk| chunk.seq < seq || chunk.reader == reader),
                None => (!queue.chunks.is_empty()).then_some(0),
            };
            let chunk_seq = next_chunk.and_then(|at| Some(queue.chunks.get(at)?.seq));
            let own_first = match (own, held_back_by, chunk_seq) {
                (Some(own), None, Some(chunk)) => own.seq < chunk,
                (Some(_), None, None) => true,
                _ => false,
            };
            if own_first {
                let Some(own) = queue.own.pop_front() else {
                    break;
                };
                queue.own_bytes -= own.bytes.len();
                taken += own.bytes.len();
                round.push(Piece {
                    dest: own.dest,
                    bytes: own.bytes,
                });
            } else if let Some(chunk) = next_chunk.and_then(|at| queue.chunks.remove(at)) {
                match chunk.bytes {
                    Some(bytes) => {
                        queue.chunk_bytes -= bytes.len();
                        taken += bytes.len();
                        round.push(Piece {
                            dest: Dest::Stdout,
                            bytes,
                        });
                    }
                    None => queue.live.retain(|live| *live != chunk.reader),
                }
            } else {
                break;
            }
        }
        // Stopped by the limit: there may be more to take at once.
        queue.wanted = taken >= ROUND;
        // The writer has caught up with herd's lines: if some were dropped
        // and none was queued since, it says so now.
        if queue.own.is_empty() {
            for dest in [Dest::Stdout, Dest::Stderr] {
                let dropped = mem::take(queue.dropped(dest));
                if dropped > 0 {
                    let bytes = self.format_own(dest, &dropped_report(dest, dropped));
                    round.push(Piece { dest, bytes });
                }
            }
        }
    }

    /// Writes a round, each run of pieces for one fd with as few writev(2)
    /// calls as the kernel takes.
    fn write_round(&self, round: &[Piece]) {
        for run in round.chunk_by(|a, b| a.dest == b.dest) {
            let Some(first) = run.first() else { continue };
            match first.dest {
                Dest::Stdout if self.stdout_is_closed() => {}
                Dest::Stdout => {
                    let written = write_pieces(self.stdout.as_fd(), run);
                    if written.is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe) {
                        self.stdout_closed.store(true, Ordering::Relaxed);
                    }
                }
                // A closed or broken stderr is not herd's failure.
                Dest::Stderr => {
                    let _ = write_pieces(self.stderr.as_fd(), run);
                }
            }
        }
    }
}

impl Queue {
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    fn dropped(&mut self, dest: Dest) -> &mut usize {
        match dest {
            Dest::Stdout => &mut self.dropped_lines,
            Dest::Stderr => &mut self.dropped_notes,
        }
    }

    fn push_own(&mut self, dest: Dest, bytes: Vec<u8>, after: Option<After>) {
        self.own_bytes += bytes.len();
        let seq = self.take_seq();
        self.own.push_back(OwnLine {
            seq,
            dest,
            bytes,
            after,
        });
    }

    /// Every reader has ended and everything queued is written.
    fn is_done(&self) -> bool {
        self.chunks.is_empty()
            && self.own.is_empty()
            && self.live.is_empty()
            && self.dropped_lines == 0
            && self.dropped_notes == 0
            && matches!(self.writer, Writer::NotStarted | Writer::Idle)
    }

    /// Nothing waits and the writer is idle: a reader may write its batch
    /// itself without getting out of order.
    fn is_caught_up(&self) -> bool {
        self.writer == Writer::Idle
            && !self.wanted
            && self.chunks.is_empty()
            && self.own.is_empty()
            && self.dropped_lines == 0
            && self.dropped_notes == 0
    }
}

impl OwnLine {
    fn is_ready(&self, live: &[ReaderId], now: Instant) -> bool {
        self.after.is_none_or(|after| {
            !live.contains(&after.reader) || after.until.is_some_and(|until| now >= until)
        })
    }
}

/// Whether a write to `fd` is done without waiting for anyone to read it: a
/// file, or a device that is not a terminal (/dev/null), unlike a pipe, a
/// socket or a terminal.
fn never_waits_for_a_reader(fd: BorrowedFd) -> bool {
    let Ok(fd) = fd.try_clone_to_owned() else {
        return false;
    };
    if fd.is_terminal() {
        return false;
    }
    File::from(fd).metadata().is_ok_and(|metadata| {
        let kind = metadata.file_type();
        kind.is_file() || kind.is_char_device()
    })
}

/// The line that tells how many of herd's lines or notes were dropped.
fn dropped_report(dest: Dest, count: usize) -> String {
    let what = match dest {
        Dest::Stdout => "lines",
        Dest::Stderr => "notes",
    };
    format!("dropped {count} of herd's {what} while its output was blocked")
}

/// Writes `pieces` in order. A failure other than EPIPE loses the piece it
/// happened in, and the next piece is tried (a full disk under a redirect
/// may have room again); EPIPE ends the write and is returned.
fn write_pieces(fd: BorrowedFd, pieces: &[Piece]) -> io::Result<()> {
    // The first piece not written whole, and how much of it was.
    let mut next = 0;
    let mut offset = 0;
    let mut slices = Vec::with_capacity(pieces.len().min(fd::MAX_SLICES));
    while let Some(first) = pieces.get(next) {
        slices.clear();
        slices.push(IoSlice::new(first.bytes.get(offset..).unwrap_or_default()));
        let rest = pieces.iter().skip(next + 1).take(fd::MAX_SLICES - 1);
        slices.extend(rest.map(|piece| IoSlice::new(&piece.bytes)));
        match fd::write_vectored(fd, &slices) {
            Ok(0) => (next, offset) = (next + 1, 0),
            Ok(mut written) => {
                while let Some(piece) = pieces.get(next) {
                    let left = piece.bytes.len().saturating_sub(offset);
                    if written < left {
                        offset += written;
                        break;
                    }
                    written -= left;
                    (next, offset) = (next + 1, 0);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Err(error),
            Err(_) => (next, offset) = (next + 1, 0),
        }
    }
    Ok(())
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
    use std::fs::{self, File};
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

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

    /// How long a test waits for anything before it fails.
    const DEADLINE: Duration = Duration::from_secs(20);

    /// An output to pipes: the output, and the read ends of its stdout and
    /// its stderr.
    fn output_to_pipes(style: Style) -> (Output, OwnedFd, OwnedFd) {
        lending_to_pipes(style, false)
    }

    /// An output to pipes whose readers write their batches themselves when
    /// nothing waits, if `lends`, as they do into a file.
    fn lending_to_pipes(style: Style, lends: bool) -> (Output, OwnedFd, OwnedFd) {
        let (out_read, out_write) = fd::pipe().unwrap();
        let (err_read, err_write) = fd::pipe().unwrap();
        let output = Output::lending(style, out_write, err_write, lends);
        (output, out_read, err_read)
    }

    #[test]
    fn readers_write_themselves_only_into_files_and_devices() {
        let dir = std::env::temp_dir().join(format!("herd-output-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = File::create(dir.join("out")).unwrap();
        let null = File::create("/dev/null").unwrap();
        let (_read, write) = fd::pipe().unwrap();
        let kinds = [file.as_fd(), null.as_fd(), write.as_fd()].map(never_waits_for_a_reader);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(kinds, [true, true, false]);
    }

    /// What a thread reads from a pipe, as it comes.
    struct Collector {
        /// The bytes so far and a signal for every read.
        read: Arc<(Mutex<Arrived>, Condvar)>,
    }

    #[derive(Default)]
    struct Arrived {
        bytes: Vec<u8>,
        eof: bool,
    }

    impl Collector {
        fn start(fd: OwnedFd) -> Collector {
            let read = Arc::new((Mutex::new(Arrived::default()), Condvar::new()));
            let shared = Arc::clone(&read);
            thread::spawn(move || {
                let mut file = File::from(fd);
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let count = file.read(&mut buffer).unwrap_or(0);
                    let (state, arrived) = &*shared;
                    let mut state = state.lock().unwrap();
                    state.bytes.extend_from_slice(&buffer[..count]);
                    state.eof = count == 0;
                    arrived.notify_all();
                    if count == 0 {
                        return;
                    }
                }
            });
            Collector { read }
        }

        /// Waits until what was read passes `check` (given the bytes so far
        /// and whether end of file came), and returns it.
        fn wait_for(&self, what: &str, check: impl Fn(&[u8], bool) -> bool) -> Vec<u8> {
            let until = Instant::now() + DEADLINE;
            let (state, arrived) = &*self.read;
            let mut state = state.lock().unwrap();
            while !check(&state.bytes, state.eof) {
                let left = until.saturating_duration_since(Instant::now());
                let so_far = String::from_utf8_lossy(&state.bytes);
                assert!(
                    !left.is_zero(),
                    "no {what} after {DEADLINE:?}; read:\n{so_far}"
                );
                state = arrived.wait_timeout(state, left).unwrap().0;
            }
            state.bytes.clone()
        }

        fn until_eof(&self) -> Vec<u8> {
            self.wait_for("end of file", |_, eof| eof)
        }

        fn text_until_eof(&self) -> String {
            String::from_utf8(self.until_eof()).unwrap()
        }

        /// Waits until the text read so far ends with `end`.
        fn text_ending(&self, end: &str) -> String {
            let read = self.wait_for(&format!("{end:?}"), |read, _| {
                read.ends_with(end.as_bytes())
            });
            String::from_utf8(read).unwrap()
        }
    }

    #[test]
    fn queues_every_batch_of_a_long_input() {
        let (output, out, _err) = output_to_pipes(PLAIN);
        let collector = Collector::start(out);
        let empty_lines = vec![b'\n'; MAX_LINE];
        let shared = output.shared();
        let used = shared.queue_lines(ReaderId(0), b"a | ", &empty_lines, false, &mut Vec::new());
        assert_eq!(used, MAX_LINE);
        shared.flush();
        drop(output);
        assert_eq!(collector.until_eof(), b"a | \n".repeat(MAX_LINE));
    }

    #[test]
    fn reader_thread_prefixes_lines_until_eof() {
        reader_thread_prefixes_lines_until_eof_lending(false);
    }

    #[test]
    fn reader_thread_prefixes_lines_until_eof_when_readers_write_themselves() {
        reader_thread_prefixes_lines_until_eof_lending(true);
    }

    fn reader_thread_prefixes_lines_until_eof_lending(lends: bool) {
        let (output, out, _err) = lending_to_pipes(PLAIN, lends);
        let collector = Collector::start(out);
        let (child_read, child_write) = fd::pipe().unwrap();
        output
            .spawn_reader("web", child_read, Box::new(|| {}))
            .unwrap();
        File::from(child_write)
            .write_all(b"hello\r\nno newline")
            .unwrap();
        output.drain(DEADLINE);
        output.herd_line("web exited");
        drop(output);
        let expected = "web    | hello\r\nweb    | no newline\nherd   | web exited\n";
        assert_eq!(collector.text_until_eof(), expected);
    }

    #[test]
    fn reader_thread_keeps_long_lines_whole_and_cuts_longer_ones() {
        let (output, out, _err) = output_to_pipes(PLAIN);
        let collector = Collector::start(out);
        let (child_read, child_write) = fd::pipe().unwrap();
        output
            .spawn_reader("web", child_read, Box::new(|| {}))
            .unwrap();
        let long = "l".repeat(3000);
        let longer = "L".repeat(MAX_LINE + 5);
        File::from(child_write)
            .write_all(format!("{long}\n{longer}\nend\n").as_bytes())
            .unwrap();
        drop(output);
        let out = collector.text_until_eof();
        let lines: Vec<&str> = out.lines().collect();
        let expected =
            [&long, &longer[..MAX_LINE], "LLLLL", "end"].map(|text| format!("web    | {text}"));
        assert_eq!(lines, expected);
    }

    #[test]
    fn lines_of_concurrent_readers_never_interleave() {
        lines_of_concurrent_readers_never_interleave_lending(false);
    }

    #[test]
    fn lines_of_concurrent_readers_never_interleave_when_readers_write_themselves() {
        lines_of_concurrent_readers_never_interleave_lending(true);
    }

    fn lines_of_concurrent_readers_never_interleave_lending(lends: bool) {
        let (output, out, _err) = lending_to_pipes(PLAIN, lends);
        let collector = Collector::start(out);
        let lines = 20_000;
        let writers: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                let (read, write) = fd::pipe().unwrap();
                output.spawn_reader(name, read, Box::new(|| {})).unwrap();
                // Odd-sized writes, so lines arrive cut at every place.
                let text = format!("{name}{}\n", name.repeat(77)).repeat(lines);
                thread::spawn(move || {
                    let mut file = File::from(write);
                    for chunk in text.as_bytes().chunks(4093) {
                        file.write_all(chunk).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        drop(output);
        let out = collector.text_until_eof();
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
        let (output, out, _err) = output_to_pipes(PLAIN);
        drop(out);
        let (child_read, child_write) = fd::pipe().unwrap();
        output
            .spawn_reader("web", child_read, Box::new(|| {}))
            .unwrap();
        // Far more than a pipe holds: this only ends if the reader drains.
        let mut file = File::from(child_write);
        for _ in 0..1000 {
            file.write_all(&[b'y'; 1023]).unwrap();
            file.write_all(b"\n").unwrap();
        }
        drop(file);
        output.drain(DEADLINE);
        assert!(output.shared().stdout_is_closed());
        output.herd_line("still fine");
        assert!(output.shared().lock().own.is_empty());
    }

    #[test]
    fn a_copier_passes_bytes_through_as_they_are() {
        let (output, out, _err) = output_to_pipes(PLAIN);
        let collector = Collector::start(out);
        let (child_read, child_write) = fd::pipe().unwrap();
        output.spawn_copier(child_read, Box::new(|| {})).unwrap();
        let bytes: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        File::from(child_write).write_all(&bytes).unwrap();
        drop(output);
        assert_eq!(collector.until_eof(), bytes);
    }

    #[test]
    fn notes_go_to_stderr_in_herds_format() {
        let (output, out, err) = output_to_pipes(PLAIN);
        let (out, err) = (Collector::start(out), Collector::start(err));
        output.note("spawned pid 7: sleep");
        output.herd_line("on stdout");
        drop(output);
        assert_eq!(err.text_until_eof(), "herd: spawned pid 7: sleep\n");
        assert_eq!(out.text_until_eof(), "herd   | on stdout\n");
    }

    /// Waits until `progress` has not moved for a while; returns where it
    /// stopped. Fails if it never stops within the deadline.
    fn where_it_stalls(progress: &AtomicUsize, what: &str) -> usize {
        let until = Instant::now() + DEADLINE;
        let mut last = progress.load(Ordering::SeqCst);
        let mut since = Instant::now();
        while since.elapsed() < Duration::from_millis(500) {
            assert!(Instant::now() < until, "{what} never stopped (at {last})");
            thread::sleep(Duration::from_millis(10));
            let now = progress.load(Ordering::SeqCst);
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
        last
    }

    /// Issue 7: when nobody read herd's stdout, a reader blocked in write(2)
    /// held the lock that herd's own lines took, and the supervisor loop
    /// stopped with it.
    #[test]
    fn a_stdout_nobody_reads_blocks_readers_but_never_herd_lines() {
        a_stdout_nobody_reads_blocks_readers_but_never_herd_lines_lending(false);
    }

    #[test]
    fn a_stdout_nobody_reads_blocks_readers_but_never_herd_lines_when_readers_write_themselves() {
        a_stdout_nobody_reads_blocks_readers_but_never_herd_lines_lending(true);
    }

    fn a_stdout_nobody_reads_blocks_readers_but_never_herd_lines_lending(lends: bool) {
        let (output, out, _err) = lending_to_pipes(PLAIN, lends);
        let (child_read, child_write) = fd::pipe().unwrap();
        output
            .spawn_reader("c", child_read, Box::new(|| {}))
            .unwrap();
        // 16 MB of numbered lines: far more than the queue and pipes hold.
        let child_lines = 200_000;
        let child_line = |i: usize| format!("{i:07} {}", "x".repeat(71));
        let progress = Arc::new(AtomicUsize::new(0));
        let (child_done, child_finished) = mpsc::channel();
        let child_progress = Arc::clone(&progress);
        thread::spawn(move || {
            let mut file = File::from(child_write);
            for i in 0..child_lines {
                file.write_all(format!("{}\n", child_line(i)).as_bytes())
                    .unwrap();
                child_progress.store(i + 1, Ordering::SeqCst);
            }
            child_done.send(()).unwrap();
        });

        // 2 MB of herd's lines, more than they may queue.
        let herd_lines = 10_000;
        let herd_line = |i: usize| format!("event {i:05} {}", "e".repeat(180));
        let (herd_done, herd_finished) = mpsc::channel();
        let herd = output.clone();
        thread::spawn(move || {
            for i in 0..herd_lines {
                herd.herd_line(&herd_line(i));
            }
            herd_done.send(()).unwrap();
        });
        herd_finished
            .recv_timeout(DEADLINE)
            .expect("herd_line waited for a stdout nobody reads");

        let stalled = where_it_stalls(&progress, "the child's writing");
        assert!(stalled < child_lines, "nothing held the reader back");
        // The queue, the reader's buffers, what the writer holds and the
        // pipes: about 2 MiB. Three is plenty.
        assert!(stalled * 80 < 3 << 20, "the reader queued {stalled} lines");
        let start = Instant::now();
        output.herd_line("one more");
        assert!(start.elapsed() < DEADLINE);

        let collector = Collector::start(out);
        child_finished
            .recv_timeout(DEADLINE)
            .expect("the child's writing never ended once stdout was read");
        drop(output);
        let out = collector.text_until_eof();
        let mut child_seen = 0;
        // herd's lines in order, each dropped stretch replaced by its count.
        let mut herd_next = 0;
        let mut dropped = 0;
        for line in out.lines() {
            if let Some(text) = line.strip_prefix("c      | ") {
                assert_eq!(text, child_line(child_seen));
                child_seen += 1;
            } else if let Some(text) = line.strip_prefix("herd   | ") {
                let count = text.strip_prefix("dropped ").and_then(|rest| {
                    rest.strip_suffix(" of herd's lines while its output was blocked")
                });
                if let Some(count) = count {
                    let count: usize = count.parse().unwrap();
                    assert!(count > 0);
                    (herd_next, dropped) = (herd_next + count, dropped + count);
                } else if herd_next == herd_lines {
                    assert_eq!(text, "one more");
                    herd_next += 1;
                } else {
                    assert_eq!(text, herd_line(herd_next), "herd's lines out of order");
                    herd_next += 1;
                }
            } else {
                panic!("a line of neither: {line:?}");
            }
        }
        assert_eq!(child_seen, child_lines);
        assert_eq!(herd_next, herd_lines + 1, "herd lines lost without a count");
        assert!(dropped > 0, "none of herd's lines was dropped");
    }

    /// Waits until the writer holds a batch of `reader` back.
    fn wait_until_held_back(output: &Output, reader: ReaderId) {
        let until = Instant::now() + DEADLINE;
        while !output
            .shared()
            .lock()
            .chunks
            .iter()
            .any(|c| c.reader == reader)
        {
            assert!(Instant::now() < until, "no batch of {reader:?} held back");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_exit_line_waits_for_the_last_output_of_its_reader() {
        an_exit_line_waits_for_the_last_output_of_its_reader_lending(false);
    }

    #[test]
    fn an_exit_line_waits_for_the_last_output_of_its_reader_when_readers_write_themselves() {
        an_exit_line_waits_for_the_last_output_of_its_reader_lending(true);
    }

    fn an_exit_line_waits_for_the_last_output_of_its_reader_lending(lends: bool) {
        let (output, out, _err) = lending_to_pipes(PLAIN, lends);
        let collector = Collector::start(out);
        let (web_read, web_write) = fd::pipe().unwrap();
        let (db_read, db_write) = fd::pipe().unwrap();
        let web = output
            .spawn_reader("web", web_read, Box::new(|| {}))
            .unwrap();
        let db = output.spawn_reader("db", db_read, Box::new(|| {})).unwrap();
        let (mut web_write, mut db_write) = (File::from(web_write), File::from(db_write));
        web_write.write_all(b"one\n").unwrap();
        db_write.write_all(b"before\n").unwrap();
        let (one, before) = ("web    | one\n", "db     | before\n");
        let both = one.len() + before.len();
        collector.wait_for("both lines", |read, _| read.len() == both);
        output.herd_line_after("web exited with code 1", web, DEADLINE);
        output.herd_line("stopping db");
        // What came after the exit line waits behind it, but for web's own
        // lines, which it waits for.
        db_write.write_all(b"stopping\n").unwrap();
        wait_until_held_back(&output, db);
        web_write.write_all(b"two\n").unwrap();
        drop(web_write);
        let text = collector.text_ending("db     | stopping\n");
        let (first, rest) = text.split_at(both);
        assert!(first == one.to_owned() + before || first == before.to_owned() + one);
        let expected = "web    | two\nherd   | web exited with code 1\n\
                        herd   | stopping db\ndb     | stopping\n";
        assert_eq!(rest, expected);
        drop((db_write, output));
        assert_eq!(collector.text_until_eof(), text);
    }

    #[test]
    fn an_exit_line_waits_no_longer_than_its_wait_for_a_pipe_left_open() {
        let (output, out, _err) = output_to_pipes(PLAIN);
        let collector = Collector::start(out);
        let (web_read, web_write) = fd::pipe().unwrap();
        let web = output
            .spawn_reader("web", web_read, Box::new(|| {}))
            .unwrap();
        let wait = Duration::from_millis(200);
        let queued = Instant::now();
        output.herd_line_after("web exited with code 0", web, wait);
        output.herd_line("web restarting in 1s");
        let text = collector.text_ending("herd   | web restarting in 1s\n");
        assert!(queued.elapsed() >= wait, "written before its wait was over");
        assert_eq!(
            text,
            "herd   | web exited with code 0\nherd   | web restarting in 1s\n"
        );
        File::from(web_write).write_all(b"late\n").unwrap();
        drop(output);
        assert_eq!(collector.text_until_eof(), text + "web    | late\n");
    }

    #[test]
    fn drain_gives_up_after_its_limit_when_nobody_reads_stdout() {
        let (output, out, _err) = output_to_pipes(PLAIN);
        // Three times what the pipe holds.
        for _ in 0..2000 {
            output.herd_line(&"x".repeat(100));
        }
        let limit = Duration::from_millis(200);
        let start = Instant::now();
        output.drain(limit);
        let took = start.elapsed();
        assert!(took >= limit && took < DEADLINE, "{took:?}");
        drop(out);
    }

    #[test]
    fn drain_returns_as_soon_as_everything_is_written() {
        Output::with_fds(PLAIN, io::stdout(), io::stderr()).drain(DEADLINE * 100);
        let (output, out, _err) = output_to_pipes(PLAIN);
        let (child_read, child_write) = fd::pipe().unwrap();
        output
            .spawn_reader("web", child_read, Box::new(|| {}))
            .unwrap();
        output.herd_line("web started");
        File::from(child_write).write_all(b"hi\n").unwrap();
        let start = Instant::now();
        output.drain(DEADLINE * 100);
        assert!(start.elapsed() < DEADLINE);
        // Everything is in the pipe already.
        fd::set_nonblocking(out.as_fd()).unwrap();
        let mut read = Vec::with_capacity(4096);
        fd::read_appending(out.as_fd(), &mut read).unwrap();
        assert_eq!(read, b"herd   | web started\nweb    | hi\n");
    }

    /// Set in the copy of the test binary that counts its threads.
    const ALONE: &str = "HERD_OUTPUT_TEST_ALONE";

    #[test]
    fn no_thread_starts_before_the_first_line() {
        // Other tests start and end threads at any time, so the count is
        // taken in a copy of this binary that runs this test alone.
        if std::env::var_os(ALONE).is_none() {
            let name = "output::tests::no_thread_starts_before_the_first_line";
            let status = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--quiet"])
                .env(ALONE, "1")
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "the copy that counts threads failed");
            return;
        }
        let threads = || fs::read_dir("/proc/self/task").unwrap().count();
        let before = threads();
        let output = Output::new(PLAIN);
        assert_eq!(threads(), before, "Output::new started a thread");
        output.herd_line("first");
        assert_eq!(threads(), before + 1, "the first line started no writer");
        output.herd_line("second");
        assert_eq!(threads(), before + 1, "a second writer started");
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
