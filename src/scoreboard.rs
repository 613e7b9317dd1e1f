//! The scoreboard: a file in the state directory, mapped by the supervisor
//! and by anyone who reads it, with one slot per process, so that
//! `herd status` answers without asking the supervisor and a process can
//! bump its heartbeat with one atomic add. The layout is in herd(1),
//! SCOREBOARD; this module is its only writer and its reader.
//!
//! Every field is a little-endian 64-bit word. Only the supervisor writes
//! a slot's fields, inside a seqlock (the slot's first word is odd while it
//! writes); the heartbeat word is the process's own and outside it. The
//! header's table sequence is odd while the supervisor rewrites several
//! slots, so a reader that wants the whole table sees one moment of it.

use crate::control::ProcessStatus;
use crate::core::Row;
use crate::sys::datagram::monotonic_now;
use crate::sys::process::WaitStatus;
use crate::sys::shm::SharedWords;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

/// Its name in the state directory.
pub const FILE: &str = "scoreboard";

pub const MAGIC: u64 = u64::from_le_bytes(*b"HERDSCB\0");
pub const LAYOUT_VERSION: u64 = 1;
pub const HEADER_WORDS: usize = 16;
pub const SLOT_WORDS: usize = 64;

/// Header words.
mod header {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const HEADER_BYTES: usize = 2;
    pub const SLOT_BYTES: usize = 3;
    pub const SLOTS: usize = 4;
    pub const TABLE_SEQUENCE: usize = 5;
    pub const SUPERVISOR_PID: usize = 6;
    pub const SUPERVISOR_SEEN: usize = 7;
    pub const SUPERVISOR_LOOP: usize = 8;
    pub const SUPERVISOR_START: usize = 9;
    pub const GROUP_READY: usize = 10;
}

/// The SUPERVISOR_LOOP word: what the loop has been doing since
/// SUPERVISOR_SEEN. Waiting for its inputs is how a healthy idle
/// supervisor spends its time; working for long is not.
const LOOP_WAITING: u64 = 1;
const LOOP_WORKING: u64 = 2;

/// How long the loop may work on one round before a reader says it has not
/// been seen: a round takes microseconds.
const WORKING_TOO_LONG: Duration = Duration::from_secs(1);

/// Slot words, from the slot's start.
mod slot {
    pub const SEQUENCE: usize = 0;
    pub const HEARTBEAT: usize = 1;
    pub const PID: usize = 2;
    pub const PGID: usize = 3;
    pub const STATE: usize = 4;
    pub const READY: usize = 5;
    pub const GENERATION: usize = 6;
    pub const RESTARTS: usize = 7;
    pub const INSTANCE: usize = 8;
    pub const STARTED: usize = 9;
    pub const LAST_EXIT: usize = 10;
    pub const WATCHDOG_SEEN: usize = 11;
    pub const NOT_LIVE: usize = 12;
    pub const WATCHDOG: usize = 13;
    pub const NO_HEARTBEAT: usize = 14;
    pub const PID_START: usize = 15;
    pub const NAME: usize = 16;
    pub const NAME_WORDS: usize = 8;
    pub const STATUS: usize = 24;
    pub const STATUS_WORDS: usize = 16;
    pub const RELOAD: usize = 40;
    pub const STOP_SIGNAL: usize = 56;
    pub const GRACE: usize = 57;
    pub const RELOAD_WORDS: usize = 16;
}

/// The states a slot names, by their number in the STATE word.
const STATES: [&str; 9] = [
    "free",
    "waiting",
    "starting",
    "running",
    "stopping",
    "backoff",
    "stopped",
    "exited",
    "reloading",
];

/// The LAST_EXIT word: how the process ended, kind in the high half.
fn encode_exit(exit: Option<WaitStatus>) -> u64 {
    let (kind, value) = match exit {
        None => (0, 0),
        Some(WaitStatus::Exited(code)) => (1, code),
        Some(WaitStatus::Signaled(signal)) => (2, signal),
        Some(WaitStatus::Stopped(signal)) => (3, signal),
    };
    (kind << 32) | u64::from(value as u32)
}

fn decode_exit(word: u64) -> Option<WaitStatus> {
    let value = (word & 0xffff_ffff) as u32 as i32;
    match word >> 32 {
        1 => Some(WaitStatus::Exited(value)),
        2 => Some(WaitStatus::Signaled(value)),
        3 => Some(WaitStatus::Stopped(value)),
        _ => None,
    }
}

/// Microseconds of CLOCK_MONOTONIC at `at`, as any process on the machine
/// reads that clock (0 is kept for "never").
fn monotonic_micros(at: Instant, now: Instant, monotonic: Duration) -> u64 {
    let micros = monotonic
        .saturating_sub(now.saturating_duration_since(at))
        .as_micros();
    u64::try_from(micros).unwrap_or(u64::MAX).max(1)
}

/// `text` in `words` words, NUL-padded, cut at a character boundary.
fn encode_text(text: &str, words: usize, out: &mut [u64]) {
    let room = words * 8;
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; 8];
    for (index, word) in out.iter_mut().take(words).enumerate() {
        bytes.fill(0);
        let from = (index * 8).min(end);
        let to = (index * 8 + 8).min(end);
        if let (Some(target), Some(source)) = (bytes.get_mut(..to - from), text.get(from..to)) {
            target.copy_from_slice(source.as_bytes());
        }
        *word = u64::from_le_bytes(bytes);
    }
}

fn decode_text(words: &[u64]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

/// A slot's words for `row`, heartbeat and sequence left 0.
fn encode_row(row: &Row, now: Instant, monotonic: Duration) -> [u64; SLOT_WORDS] {
    let mut words = [0u64; SLOT_WORDS];
    let micros = |at: Option<Instant>| at.map_or(0, |at| monotonic_micros(at, now, monotonic));
    let state = STATES.iter().position(|&s| s == row.state).unwrap_or(0);
    let id = |pid: Option<i32>| pid.and_then(|p| u64::try_from(p).ok()).unwrap_or(0);
    words[slot::PID] = id(row.pid);
    words[slot::PGID] = id(row.pgid);
    words[slot::STATE] = state as u64;
    words[slot::READY] = u64::from(row.ready);
    words[slot::GENERATION] = u64::from(row.generation);
    words[slot::RESTARTS] = u64::from(row.restarts);
    words[slot::INSTANCE] = u64::from(row.instance);
    words[slot::STARTED] = micros(row.started_at);
    words[slot::LAST_EXIT] = encode_exit(row.last_exit);
    words[slot::WATCHDOG_SEEN] = micros(row.watchdog_at);
    words[slot::NOT_LIVE] = u64::from(row.not_live);
    words[slot::WATCHDOG] = row.watchdog.map_or(0, |period| {
        u64::try_from(period.as_micros()).unwrap_or(u64::MAX)
    });
    words[slot::NO_HEARTBEAT] = u64::from(row.no_heartbeat);
    words[slot::STOP_SIGNAL] = u64::try_from(row.stop_signal).unwrap_or(0);
    words[slot::GRACE] = u64::try_from(row.grace.as_micros()).unwrap_or(u64::MAX);
    let texts = [
        (row.name, slot::NAME, slot::NAME_WORDS),
        (
            row.status_text.unwrap_or(""),
            slot::STATUS,
            slot::STATUS_WORDS,
        ),
        (
            row.reload.as_deref().unwrap_or(""),
            slot::RELOAD,
            slot::RELOAD_WORDS,
        ),
    ];
    for (text, at, count) in texts {
        if let Some(out) = words.get_mut(at..at + count) {
            encode_text(text, count, out);
        }
    }
    words
}

/// The supervisor's side: the file, its mapping, and what it last wrote to
/// each slot, so that a step that changed one process writes one slot.
pub struct Board {
    path: PathBuf,
    /// Where the file is while its slots were never written: it is renamed
    /// to `path` by the first `publish`, so that no reader finds slots the
    /// supervisor has not filled in yet.
    staged: Option<PathBuf>,
    /// The file's inode: a file someone renamed over it is not ours.
    inode: (u64, u64),
    words: SharedWords,
    written: Vec<[u64; SLOT_WORDS]>,
}

impl Board {
    /// Makes the scoreboard of `dir` with room for `slots` processes, mode
    /// 0600, under another name: the first `publish` puts it in place of
    /// any older one. Readers never see it half made.
    pub fn create(dir: &Path, slots: usize, supervisor: u32) -> io::Result<Board> {
        let fresh = dir.join(format!(".{FILE}.{supervisor}"));
        let made = Board::make(&fresh, slots, supervisor).map(|board| Board {
            path: dir.join(FILE),
            staged: Some(fresh.clone()),
            ..board
        });
        if made.is_err() {
            let _ = fs::remove_file(&fresh);
        }
        made
    }

    fn make(path: &Path, slots: usize, supervisor: u32) -> io::Result<Board> {
        let _ = fs::remove_file(path);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)?;
        let total = slots
            .checked_mul(SLOT_WORDS)
            .and_then(|w| w.checked_add(HEADER_WORDS))
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        file.set_len(u64::try_from(total * 8).unwrap_or(u64::MAX))?;
        let words = SharedWords::map(&file, total, true)?;
        words.store(header::VERSION, LAYOUT_VERSION, Ordering::Relaxed);
        words.store(
            header::HEADER_BYTES,
            (HEADER_WORDS * 8) as u64,
            Ordering::Relaxed,
        );
        words.store(
            header::SLOT_BYTES,
            (SLOT_WORDS * 8) as u64,
            Ordering::Relaxed,
        );
        words.store(header::SLOTS, slots as u64, Ordering::Relaxed);
        words.store(
            header::SUPERVISOR_PID,
            u64::from(supervisor),
            Ordering::Relaxed,
        );
        let started = i32::try_from(supervisor)
            .ok()
            .and_then(crate::sys::process::start_ticks);
        words.store(
            header::SUPERVISOR_START,
            started.unwrap_or(0),
            Ordering::Relaxed,
        );
        // Working from the start: a reader that comes before the first
        // round sees a supervisor that has just begun, not one lost since boot.
        let micros = u64::try_from(monotonic_now().as_micros()).unwrap_or(u64::MAX);
        words.store(header::SUPERVISOR_SEEN, micros, Ordering::Relaxed);
        words.store(header::SUPERVISOR_LOOP, LOOP_WORKING, Ordering::Relaxed);
        words.store(header::MAGIC, MAGIC, Ordering::Release);
        let metadata = file.metadata()?;
        Ok(Board {
            path: path.to_path_buf(),
            staged: None,
            inode: (metadata.dev(), metadata.ino()),
            words,
            written: vec![[0; SLOT_WORDS]; slots],
        })
    }

    /// Writes the rows that changed since the last call, and the time, the
    /// supervisor's heartbeat. `false`: someone truncated or removed the
    /// file; the caller makes a new one.
    pub fn publish<'a>(
        &mut self,
        rows: impl Iterator<Item = Row<'a>>,
        group_ready: bool,
        now: Instant,
    ) -> bool {
        let monotonic = monotonic_now();
        self.words.store(
            header::GROUP_READY,
            u64::from(group_ready),
            Ordering::Release,
        );
        let mut table_open = false;
        for (index, row) in rows.enumerate() {
            let Some(written) = self.written.get_mut(index) else {
                break;
            };
            let mut words = encode_row(&row, now, monotonic);
            words[slot::PID_START] = match (words[slot::PID], written[slot::PID]) {
                (0, _) => 0,
                (pid, before) if pid == before => written[slot::PID_START],
                (pid, _) => i32::try_from(pid)
                    .ok()
                    .and_then(crate::sys::process::start_ticks)
                    .unwrap_or(0),
            };
            if words == *written {
                continue;
            }
            if !table_open {
                table_open = true;
                self.words
                    .fetch_add(header::TABLE_SEQUENCE, 1, Ordering::Relaxed);
                fence(Ordering::Release);
            }
            write_slot(&self.words, index, &words);
            *written = words;
        }
        if table_open {
            self.words
                .fetch_add(header::TABLE_SEQUENCE, 1, Ordering::Release);
        }
        if let Some(staged) = self.staged.take() {
            if fs::rename(&staged, &self.path).is_err() {
                let _ = fs::remove_file(&staged);
                return false;
            }
        }
        !self.words.is_lost()
            && fs::metadata(&self.path)
                .is_ok_and(|m| m.len() > 0 && (m.dev(), m.ino()) == self.inode)
    }

    /// The supervisor's heartbeat: its loop goes to wait for its inputs
    /// (`waiting`) or has woken up to work on them.
    pub fn loop_state(&self, waiting: bool) {
        let micros = u64::try_from(monotonic_now().as_micros()).unwrap_or(u64::MAX);
        let state = if waiting { LOOP_WAITING } else { LOOP_WORKING };
        self.words
            .store(header::SUPERVISOR_SEEN, micros, Ordering::Relaxed);
        self.words
            .store(header::SUPERVISOR_LOOP, state, Ordering::Release);
    }

    pub fn remove(self) {
        let _ = fs::remove_file(self.staged.as_ref().unwrap_or(&self.path));
    }

    /// Each slot's heartbeat counter, which its process adds to.
    pub fn heartbeats(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.written.len()).map(|index| {
            self.words
                .load(slot_start(index) + slot::HEARTBEAT, Ordering::Relaxed)
        })
    }
}

fn slot_start(index: usize) -> usize {
    HEADER_WORDS.saturating_add(index.saturating_mul(SLOT_WORDS))
}

/// The seqlock's write side: the sequence is odd while the fields change.
/// The heartbeat word is the process's and not written.
fn write_slot(words: &SharedWords, index: usize, fields: &[u64; SLOT_WORDS]) {
    let start = slot_start(index);
    words.fetch_add(start + slot::SEQUENCE, 1, Ordering::Relaxed);
    fence(Ordering::Release);
    for (offset, &value) in fields.iter().enumerate() {
        if offset != slot::SEQUENCE && offset != slot::HEARTBEAT {
            words.store(start + offset, value, Ordering::Relaxed);
        }
    }
    words.fetch_add(start + slot::SEQUENCE, 1, Ordering::Release);
}

/// Why the scoreboard could not be read.
#[derive(Debug, PartialEq)]
pub enum Unreadable {
    Missing,
    /// Too short, not a scoreboard, or of a layout this herd does not know.
    Damaged(String),
    /// The supervisor kept rewriting it.
    Busy,
    Other(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Unreadable::Missing => f.write_str("it does not exist"),
            Unreadable::Damaged(why) => write!(f, "it is damaged: {why}"),
            Unreadable::Busy => f.write_str("it kept changing while it was read"),
            Unreadable::Other(why) => f.write_str(why),
        }
    }
}

/// What a reader found: the supervisor's pid and how its loop was, and
/// each process's row.
#[derive(Debug)]
pub struct Snapshot {
    pub supervisor: u32,
    /// How long ago the supervisor's loop last went to wait or woke up.
    pub supervisor_seen: Duration,
    /// Whether it was waiting for its inputs then.
    pub supervisor_waiting: bool,
    /// When the supervisor started, in clock ticks since boot (0: unknown).
    pub supervisor_start: u64,
    /// The whole group is ready (what `herd status --ready` answers).
    pub group_ready: bool,
    pub processes: Vec<ProcessStatus>,
    /// The process groups the supervisor had, for a herd that takes over
    /// after it died.
    pub groups: Vec<Group>,
}

/// One process's group, as a slot has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub pid: i32,
    pub pgid: i32,
    /// When `pid` started, in clock ticks since boot (0: unknown).
    pub pid_start: u64,
    pub stop_signal: i32,
    pub grace: Duration,
}

fn decode_group(words: &[u64; SLOT_WORDS]) -> Option<Group> {
    let id = |word: usize| i32::try_from(words[word]).ok().filter(|&id| id > 1);
    let stop_signal = i32::try_from(words[slot::STOP_SIGNAL])
        .ok()
        .filter(|&signal| signal > 0 && signal <= crate::sys::signal::max_signal())
        .unwrap_or(libc::SIGTERM);
    Some(Group {
        name: decode_text(words.get(slot::NAME..slot::NAME + slot::NAME_WORDS)?),
        pid: id(slot::PID)?,
        pgid: id(slot::PGID)?,
        pid_start: words[slot::PID_START],
        stop_signal,
        grace: Duration::from_micros(words[slot::GRACE]).min(MAX_GRACE),
    })
}

/// The longest grace a takeover gives what a dead supervisor left, whatever
/// its slot says: the scoreboard may have been written by anyone who could.
const MAX_GRACE: Duration = Duration::from_secs(300);

impl Snapshot {
    /// Why the supervisor is not doing its job, and since when it has not
    /// been seen: it is stopped (by SIGSTOP, a debugger), or has worked on
    /// one round for too long. `None` while it does its job, waiting for
    /// inputs included.
    pub fn not_seen(&self) -> Option<(&'static str, Duration)> {
        if matches!(process_state(self.supervisor), Some('T' | 't')) {
            return Some(("is stopped", self.supervisor_seen));
        }
        let busy = !self.supervisor_waiting && self.supervisor_seen > WORKING_TOO_LONG;
        busy.then_some(("is busy", self.supervisor_seen))
    }
}

/// The state letter of process `pid` in /proc (`R`, `S`, `T`, ...).
fn process_state(pid: u32) -> Option<char> {
    let pid = i32::try_from(pid).ok()?;
    crate::sys::process::proc_stat(pid).map(|stat| stat.state)
}

/// Adds 1 to the heartbeat counter of slot `index` of the scoreboard at
/// `path`, as a process does with one atomic add on its own mapping.
pub fn bump_heartbeat(path: &Path, index: usize) -> Result<(), Unreadable> {
    let (file, length) = open_board(path, true)?;
    let words = slot_start(index.saturating_add(1));
    if length < u64::try_from(words.saturating_mul(8)).unwrap_or(u64::MAX) {
        return Err(Unreadable::Damaged(format!(
            "{length} bytes hold no slot {index}"
        )));
    }
    let map = SharedWords::map(&file, words, true)
        .map_err(|e| Unreadable::Other(crate::error::describe(&e)))?;
    let header = |at| map.load(at, Ordering::Acquire);
    if header(header::MAGIC) != MAGIC || header(header::VERSION) != LAYOUT_VERSION {
        return Err(Unreadable::Damaged("no scoreboard magic".to_string()));
    }
    if u64::try_from(index).map_or(true, |index| index >= header(header::SLOTS)) {
        return Err(Unreadable::Damaged(format!(
            "it has {} slots, not slot {index}",
            header(header::SLOTS)
        )));
    }
    map.fetch_add(slot_start(index) + slot::HEARTBEAT, 1, Ordering::Relaxed);
    if map.is_lost() {
        return Err(Unreadable::Damaged("it was truncated".to_string()));
    }
    Ok(())
}

/// How often a reader tries for a moment when no slot was being written.
const READ_TRIES: usize = 1000;

/// The scoreboard at `path`, opened to read (and to write, for a
/// heartbeat), and its length in bytes.
fn open_board(path: &Path, write: bool) -> Result<(File, u64), Unreadable> {
    let other = |e: io::Error| Unreadable::Other(crate::error::describe(&e));
    let file = match File::options()
        .read(true)
        .write(write)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unreadable::Missing),
        Err(e) => return Err(other(e)),
    };
    let length = file.metadata().map_err(other)?.len();
    Ok((file, length))
}

/// Reads the scoreboard of `dir`.
pub fn read(dir: &Path) -> Result<Snapshot, Unreadable> {
    let (file, length) = open_board(&dir.join(FILE), false)?;
    let words = usize::try_from(length / 8).unwrap_or(usize::MAX);
    if words < HEADER_WORDS {
        return Err(Unreadable::Damaged(format!("{length} bytes")));
    }
    let map = SharedWords::map(&file, words, false)
        .map_err(|e| Unreadable::Other(crate::error::describe(&e)))?;
    read_words(&map)
}

fn read_words(map: &SharedWords) -> Result<Snapshot, Unreadable> {
    let header = |index| map.load(index, Ordering::Acquire);
    if header(header::MAGIC) != MAGIC {
        return Err(Unreadable::Damaged("no scoreboard magic".to_string()));
    }
    if header(header::VERSION) != LAYOUT_VERSION
        || header(header::HEADER_BYTES) != (HEADER_WORDS * 8) as u64
        || header(header::SLOT_BYTES) != (SLOT_WORDS * 8) as u64
    {
        return Err(Unreadable::Damaged(format!(
            "layout version {}",
            header(header::VERSION)
        )));
    }
    let slots = usize::try_from(header(header::SLOTS)).unwrap_or(usize::MAX);
    if slot_start(slots) > map.len() {
        return Err(Unreadable::Damaged(format!(
            "{slots} slots in {} bytes",
            map.len() * 8
        )));
    }
    for _ in 0..READ_TRIES {
        let sequence = map.load(header::TABLE_SEQUENCE, Ordering::Acquire);
        if sequence % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let mut rows = Vec::with_capacity(slots);
        for index in 0..slots {
            rows.push(read_slot(map, index).ok_or(Unreadable::Busy)?);
        }
        fence(Ordering::Acquire);
        if map.load(header::TABLE_SEQUENCE, Ordering::Relaxed) != sequence {
            continue;
        }
        if map.is_lost() {
            return Err(Unreadable::Damaged(
                "it was truncated while read".to_string(),
            ));
        }
        let monotonic = monotonic_now();
        let ago = |micros: u64| monotonic.saturating_sub(Duration::from_micros(micros));
        return Ok(Snapshot {
            supervisor: u32::try_from(header(header::SUPERVISOR_PID)).unwrap_or(0),
            supervisor_seen: ago(header(header::SUPERVISOR_SEEN)),
            supervisor_waiting: header(header::SUPERVISOR_LOOP) == LOOP_WAITING,
            supervisor_start: header(header::SUPERVISOR_START),
            group_ready: header(header::GROUP_READY) == 1,
            processes: rows.iter().map(|r| decode_row(r, &ago)).collect(),
            groups: rows.iter().filter_map(decode_group).collect(),
        });
    }
    Err(Unreadable::Busy)
}

/// The seqlock's read side: one slot's words as they were at one moment,
/// or `None` if the supervisor kept writing it.
fn read_slot(map: &SharedWords, index: usize) -> Option<[u64; SLOT_WORDS]> {
    let start = slot_start(index);
    for _ in 0..READ_TRIES {
        let sequence = map.load(start + slot::SEQUENCE, Ordering::Acquire);
        if sequence % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let mut words = [0u64; SLOT_WORDS];
        for (offset, word) in words.iter_mut().enumerate() {
            *word = map.load(start + offset, Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if map.load(start + slot::SEQUENCE, Ordering::Relaxed) == sequence {
            return Some(words);
        }
    }
    None
}

fn decode_row(words: &[u64; SLOT_WORDS], ago: &impl Fn(u64) -> Duration) -> ProcessStatus {
    let text = |at: usize, count: usize| decode_text(words.get(at..at + count).unwrap_or_default());
    let optional = |text: String| (!text.is_empty()).then_some(text);
    let pid = words[slot::PID];
    let clamp = |word: u64| u32::try_from(word).unwrap_or(u32::MAX);
    ProcessStatus {
        name: text(slot::NAME, slot::NAME_WORDS),
        state: usize::try_from(words[slot::STATE])
            .ok()
            .and_then(|state| STATES.get(state))
            .copied()
            .unwrap_or("unknown"),
        pid: if pid == 0 {
            "-".to_string()
        } else {
            pid.to_string()
        },
        generation: clamp(words[slot::GENERATION]),
        uptime: match words[slot::STARTED] {
            0 => Duration::ZERO,
            at => ago(at),
        },
        restarts: clamp(words[slot::RESTARTS]),
        last_exit: decode_exit(words[slot::LAST_EXIT]).map(|status| {
            let period = Duration::from_micros(words[slot::WATCHDOG]);
            let no_heartbeat = words[slot::NO_HEARTBEAT] == 1 && !period.is_zero();
            crate::core::describe_end(
                status,
                crate::core::EndCause::from_flags(
                    words[slot::NOT_LIVE] == 1,
                    no_heartbeat.then_some(period),
                ),
            )
        }),
        reload: optional(text(slot::RELOAD, slot::RELOAD_WORDS)),
        status_text: optional(text(slot::STATUS, slot::STATUS_WORDS)),
        watchdog: match words[slot::WATCHDOG_SEEN] {
            0 => None,
            at => Some(ago(at)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("herd-board-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A board in place: made, and its slots written once.
    fn placed(dir: &Dir, slots: usize, supervisor: u32) -> Board {
        let mut board = Board::create(&dir.0, slots, supervisor).unwrap();
        let rows = (0..slots).map(|n| row("p", u32::try_from(n).unwrap()));
        assert!(board.publish(rows, false, Instant::now()));
        board
    }

    fn row(name: &str, n: u32) -> Row<'_> {
        Row {
            name,
            instance: n,
            state: "running",
            ready: n % 2 == 0,
            pid: Some(1000 + n as i32),
            pgid: Some(1000 + n as i32),
            generation: n,
            started_at: None,
            restarts: n,
            last_exit: Some(WaitStatus::Exited(n as i32 % 256)),
            reload: None,
            status_text: None,
            watchdog_at: None,
            not_live: false,
            watchdog: None,
            no_heartbeat: false,
            stop_signal: libc::SIGTERM,
            grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn each_running_process_is_read_back_as_a_group_with_its_start_and_stop() {
        let dir = Dir::new("groups");
        let own = crate::sys::process::own_pid();
        let mut board = Board::create(&dir.0, 2, u32::try_from(own).unwrap()).unwrap();
        let mut web = row("web", 1);
        web.pid = Some(own);
        web.pgid = Some(own);
        web.stop_signal = libc::SIGINT;
        web.grace = Duration::from_millis(1500);
        let mut db = row("db", 2);
        db.pid = None;
        assert!(board.publish([web, db].into_iter(), false, Instant::now()));
        let snapshot = read(&dir.0).unwrap();
        let started = crate::sys::process::start_ticks(own).unwrap();
        assert_eq!(snapshot.supervisor_start, started);
        assert_eq!(
            snapshot.groups,
            vec![Group {
                name: "web".into(),
                pid: own,
                pgid: own,
                pid_start: started,
                stop_signal: libc::SIGINT,
                grace: Duration::from_millis(1500),
            }]
        );
    }

    #[test]
    fn what_the_supervisor_publishes_a_reader_reads_back() {
        let dir = Dir::new("roundtrip");
        let mut board = Board::create(&dir.0, 2, 77).unwrap();
        let now = Instant::now();
        let mut web = row("web.1", 1);
        web.started_at = now.checked_sub(Duration::from_secs(5));
        web.status_text = Some("serving ünïcode");
        web.reload = Some("web: reload failed: generation 2 was not ready after 1s".into());
        web.watchdog_at = Some(now);
        let mut db = row("db", 2);
        db.pid = None;
        db.state = "backoff";
        db.last_exit = Some(WaitStatus::Signaled(9));
        db.not_live = true;
        assert!(board.publish([web.clone(), db.clone()].into_iter(), true, now));
        let snapshot = read(&dir.0).unwrap();
        assert!(snapshot.group_ready);
        assert_eq!(snapshot.supervisor, 77);
        let [got_web, got_db] = &snapshot.processes[..] else {
            panic!("{snapshot:?}")
        };
        let want = web.status(now);
        assert_eq!(
            (
                &got_web.name,
                got_web.state,
                &got_web.pid,
                got_web.generation
            ),
            (&want.name, want.state, &want.pid, want.generation)
        );
        assert!(
            got_web.uptime >= Duration::from_secs(5) && got_web.uptime < Duration::from_secs(6)
        );
        assert_eq!(got_web.status_text, want.status_text);
        assert_eq!(got_web.reload, want.reload);
        assert_eq!(got_web.last_exit.as_deref(), Some("exit 1"));
        assert!(got_web
            .watchdog
            .is_some_and(|ago| ago < Duration::from_secs(1)));
        assert_eq!((got_db.state, got_db.pid.as_str()), ("backoff", "-"));
        assert_eq!(
            got_db.last_exit.as_deref(),
            Some("killed by SIGKILL (not live)")
        );
        assert_eq!((got_db.uptime, got_db.watchdog), (Duration::ZERO, None));
    }

    #[test]
    fn a_supervisor_waiting_for_inputs_is_seen_and_one_working_for_long_is_not() {
        let dir = Dir::new("seen");
        let board = placed(&dir, 1, std::process::id());
        board.loop_state(true);
        let snapshot = read(&dir.0).unwrap();
        assert!(snapshot.supervisor_waiting && snapshot.supervisor_seen < Duration::from_secs(1));
        assert_eq!(snapshot.not_seen(), None);
        board.loop_state(false);
        assert_eq!(read(&dir.0).unwrap().not_seen(), None, "working, briefly");
        // Working since two seconds ago.
        let then = monotonic_now().saturating_sub(Duration::from_secs(2));
        board.words.store(
            header::SUPERVISOR_SEEN,
            then.as_micros() as u64,
            Ordering::Relaxed,
        );
        let not_seen = read(&dir.0).unwrap().not_seen();
        assert!(
            not_seen.is_some_and(|(why, ago)| why == "is busy" && ago >= Duration::from_secs(2)),
            "{not_seen:?}"
        );
        assert!(process_state(std::process::id()).is_some_and(|state| state != 'T'));
    }

    #[test]
    fn texts_longer_than_their_field_are_cut_at_a_character() {
        let mut words = [0u64; 2];
        encode_text("abcdefghijklmnoé", 2, &mut words);
        assert_eq!(decode_text(&words), "abcdefghijklmno");
        encode_text("short", 2, &mut words);
        assert_eq!(decode_text(&words), "short");
    }

    #[test]
    fn a_heartbeat_added_by_a_process_is_kept_when_the_supervisor_rewrites_its_slot() {
        let dir = Dir::new("heartbeat");
        let mut board = Board::create(&dir.0, 1, 1).unwrap();
        let now = Instant::now();
        board.publish([row("web", 1)].into_iter(), false, now);
        let file = File::options()
            .read(true)
            .write(true)
            .open(dir.0.join(FILE))
            .unwrap();
        let child = SharedWords::map(&file, HEADER_WORDS + SLOT_WORDS, true).unwrap();
        let heartbeat = slot_start(0) + slot::HEARTBEAT;
        child.fetch_add(heartbeat, 1, Ordering::Relaxed);
        assert!(board.publish([row("web", 2)].into_iter(), false, now));
        assert_eq!(board.words.load(heartbeat, Ordering::Acquire), 1);
        assert_eq!(read(&dir.0).unwrap().processes[0].generation, 2);
    }

    #[test]
    fn a_heartbeat_is_one_add_at_the_documented_byte_and_bad_slots_are_refused() {
        let dir = Dir::new("bump");
        let board = placed(&dir, 3, 1);
        let path = dir.0.join(FILE);
        bump_heartbeat(&path, 2).unwrap();
        bump_heartbeat(&path, 2).unwrap();
        // herd(1): byte 128 + 512*I + 8, little-endian.
        let bytes = fs::read(&path).unwrap();
        let at = 128 + 512 * 2 + 8;
        assert_eq!(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()), 2);
        assert_eq!(board.heartbeats().collect::<Vec<_>>(), [0, 0, 2]);
        for slot in [3, usize::MAX] {
            let error = bump_heartbeat(&path, slot).unwrap_err().to_string();
            assert!(error.contains("slot"), "{slot}: {error}");
        }
        fs::write(dir.0.join("other"), vec![0u8; 4096]).unwrap();
        assert!(matches!(
            bump_heartbeat(&dir.0.join("other"), 0),
            Err(Unreadable::Damaged(_))
        ));
        assert_eq!(
            bump_heartbeat(&dir.0.join("none"), 0),
            Err(Unreadable::Missing)
        );
    }

    #[test]
    fn a_watchdog_kill_is_read_back_as_the_reason_of_the_last_exit() {
        let dir = Dir::new("nobeat");
        let mut board = Board::create(&dir.0, 1, 1).unwrap();
        let mut web = row("web", 1);
        web.last_exit = Some(WaitStatus::Signaled(libc::SIGTERM));
        web.watchdog = Some(Duration::from_secs(5));
        web.no_heartbeat = true;
        assert!(board.publish([web].into_iter(), false, Instant::now()));
        assert_eq!(
            read(&dir.0).unwrap().processes[0].last_exit.as_deref(),
            Some("no heartbeat for 5s: killed by SIGTERM")
        );
    }

    #[test]
    fn a_missing_short_or_foreign_file_is_reported_not_read() {
        let dir = Dir::new("damaged");
        assert_eq!(read(&dir.0).unwrap_err(), Unreadable::Missing);
        fs::write(dir.0.join(FILE), b"short").unwrap();
        assert!(matches!(read(&dir.0), Err(Unreadable::Damaged(_))));
        fs::write(dir.0.join(FILE), vec![7u8; 4096]).unwrap();
        assert!(matches!(read(&dir.0), Err(Unreadable::Damaged(_))));
        let board = Board::create(&dir.0, 1000, 1).unwrap();
        let file = File::options().write(true).open(dir.0.join(FILE)).unwrap();
        file.set_len(((HEADER_WORDS + SLOT_WORDS) * 8) as u64)
            .unwrap();
        assert!(matches!(read(&dir.0), Err(Unreadable::Damaged(_))));
        drop(board);
    }

    #[test]
    fn a_truncated_file_is_noticed_by_the_supervisor_which_goes_on() {
        let dir = Dir::new("truncated");
        let mut board = Board::create(&dir.0, 4, 1).unwrap();
        let now = Instant::now();
        assert!(board.publish([row("a", 1)].into_iter(), false, now));
        File::options()
            .write(true)
            .open(dir.0.join(FILE))
            .unwrap()
            .set_len(0)
            .unwrap();
        assert!(!board.publish([row("a", 2)].into_iter(), false, now));
        let mut board = Board::create(&dir.0, 4, 1).unwrap();
        assert!(board.publish([row("a", 3)].into_iter(), false, now));
        assert_eq!(read(&dir.0).unwrap().processes[0].generation, 3);
    }

    #[test]
    fn a_scoreboard_is_in_place_only_once_its_slots_are_written_and_then_shows_a_supervisor_just_begun(
    ) {
        let dir = Dir::new("fresh");
        let mut board = Board::create(&dir.0, 2, std::process::id()).unwrap();
        assert_eq!(read(&dir.0).unwrap_err(), Unreadable::Missing);
        assert!(board.publish(
            [row("a", 1), row("b", 2)].into_iter(),
            false,
            Instant::now()
        ));
        let snapshot = read(&dir.0).unwrap();
        assert_eq!(snapshot.processes.len(), 2);
        assert_eq!(snapshot.processes[0].name, "a");
        assert!(!snapshot.supervisor_waiting);
        assert!(snapshot.supervisor_seen < Duration::from_secs(1));
        assert_eq!(snapshot.not_seen(), None);
        assert!(!fs::read_dir(&dir.0).unwrap().any(|entry| entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    }

    #[test]
    fn a_file_renamed_over_the_scoreboard_is_not_taken_for_it() {
        let dir = Dir::new("replaced");
        let mut board = Board::create(&dir.0, 1, 1).unwrap();
        let now = Instant::now();
        assert!(board.publish([row("a", 1)].into_iter(), false, now));
        fs::write(dir.0.join("other"), vec![1u8; 4096]).unwrap();
        fs::rename(dir.0.join("other"), dir.0.join(FILE)).unwrap();
        assert!(!board.publish([row("a", 1)].into_iter(), false, now));
    }

    /// Every field of a row the writer publishes is derived from one
    /// number, so a reader can tell a torn slot from a whole one.
    #[test]
    fn a_million_reads_during_constant_rewrites_see_no_torn_slot() {
        let dir = Dir::new("torn");
        let slots = 8;
        let mut board = Board::create(&dir.0, slots, 1).unwrap();
        let names: Vec<String> = (0..64)
            .map(|n| format!("p{n}-{}", "x".repeat(n % 56)))
            .collect();
        // In place, as the supervisor's first round puts it.
        let first = (0..slots).map(|k| row(&names[k % 64], k as u32));
        assert!(board.publish(first, false, Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0u32;
                let now = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    let rows = (0..slots).map(|s| {
                        let k = n.wrapping_add(s as u32);
                        row(&names[k as usize % 64], k)
                    });
                    board.publish(rows, false, now);
                }
                n
            })
        };
        let file = File::open(dir.0.join(FILE)).unwrap();
        let map = SharedWords::map(&file, HEADER_WORDS + slots * SLOT_WORDS, false).unwrap();
        let (mut torn, mut read) = (0, 0);
        while read < 1_000_000 {
            let index = read % slots;
            let Some(words) = read_slot(&map, index) else {
                continue;
            };
            read += 1;
            let k = words[slot::GENERATION];
            if k == 0 {
                continue;
            }
            let name = decode_text(&words[slot::NAME..slot::NAME + slot::NAME_WORDS]);
            let whole = words[slot::RESTARTS] == k
                && words[slot::INSTANCE] == k
                && words[slot::PID] == 1000 + k
                && words[slot::READY] == u64::from(k % 2 == 0)
                && words[slot::LAST_EXIT]
                    == encode_exit(Some(WaitStatus::Exited((k % 256) as i32)))
                && name.starts_with(&format!("p{}-", k % 64))
                && name.len() == format!("p{}-", k % 64).len() + (k % 64 % 56) as usize;
            torn += usize::from(!whole);
        }
        stop.store(true, Ordering::Relaxed);
        let rounds = writer.join().unwrap();
        assert!(rounds > 1000, "the writer wrote only {rounds} rounds");
        assert_eq!(torn, 0, "{torn} torn slots in {read} reads");
    }
}
