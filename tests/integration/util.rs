//! Helpers for driving the real herd binary: spawn it, wait for lines and
//! exits with deadlines, and tell the whole story when an assertion fails.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn herd_path() -> &'static str {
    env!("CARGO_BIN_EXE_herd")
}

pub fn herd() -> Command {
    Command::new(herd_path())
}

/// Runs a command to completion with a deadline; returns status, stdout, stderr.
pub fn run_to_end(command: &mut Command) -> Outcome {
    Running::start(command).finish()
}

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    story: String,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal\n{}", self.story))
    }

    /// Panics with the whole story unless `ok`.
    pub fn check(&self, ok: bool, what: &str) {
        assert!(ok, "{what}\n{}", self.story);
    }
}

/// A spawned process whose stdout lines arrive on a channel and whose stderr
/// is collected; on drop it and every descendant of it are SIGKILLed.
pub struct Running {
    child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line received, for the story.
    seen: Vec<String>,
    /// Lines received while waiting for another one, not yet expected.
    unmatched: Vec<String>,
    stderr: Arc<Mutex<String>>,
    description: String,
    reaped: bool,
}

impl Running {
    pub fn start(command: &mut Command) -> Running {
        let description = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {description}: {e}"));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let collected = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            unmatched: Vec::new(),
            stderr,
            description,
            reaped: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything known so far, for a failure message.
    pub fn story(&self) -> String {
        format!(
            "command: {}\nstdout so far:\n{}\nstderr so far:\n{}",
            self.description,
            self.seen.join("\n"),
            self.stderr()
        )
    }

    /// Waits for a stdout line containing `needle` (lines from several
    /// processes may come in any order: earlier ones are kept); returns it.
    pub fn expect_line(&mut self, needle: &str) -> String {
        self.expect_matching(&format!("a line with {needle:?}"), |line| {
            line.contains(needle)
        })
    }

    /// Waits for the first stdout line (kept ones included) that `matches`;
    /// `wanted` says what it would be, for the failure message.
    fn expect_matching(&mut self, wanted: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(at) = self.unmatched.iter().position(|l| matches(l)) {
            return self.unmatched.remove(at);
        }
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                    self.unmatched.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {wanted} within {DEADLINE:?}\n{}", self.story())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed before {wanted}\n{}", self.story())
                }
            }
        }
    }

    /// Waits until `condition` holds for herd's stderr.
    pub fn expect_stderr(&self, what: &str, condition: impl Fn(&str) -> bool) {
        wait_until(what, || condition(&self.stderr()), || self.story());
    }

    /// Sends a signal by name with kill(1) to the process this test spawned.
    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    pub fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(text.as_bytes()).unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the exit, with the deadline.
    pub fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = true;
                return status;
            }
            if Instant::now() > until {
                panic!("did not exit within {DEADLINE:?}\n{}", self.story());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the exit, then for stdout and stderr to close.
    pub fn finish(mut self) -> Outcome {
        let status = self.wait();
        self.outcome(status)
    }

    /// Waits for the exit and for stdout and stderr to close.
    pub fn outcome(mut self, status: ExitStatus) -> Outcome {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout stayed open\n{}", self.story()),
            }
        }
        // stdout is closed; stderr closes at the same exit, give its reader
        // the same deadline to finish.
        wait_until(
            "stderr to close",
            || Arc::strong_count(&self.stderr) == 1,
            || self.story(),
        );
        let mut stdout = self.seen.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        Outcome {
            status,
            stdout,
            stderr: self.stderr(),
            story: format!("status: {status:?}\n{}", self.story()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            kill_tree(self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `script(1)` running `command_line` on a new pseudo-terminal, with herd as
/// its direct child: script runs the line with `$SHELL -c`, and a shell that
/// does not exec a lone command (dash) would stand between them and keep
/// script from seeing its job stop.
pub fn under_terminal(command_line: &str) -> Command {
    let mut script = Command::new("script");
    script
        .env("SHELL", "/bin/sh")
        .args(["-qec", &format!("exec {command_line}"), "/dev/null"]);
    script
}

/// A port the kernel has just handed out and taken back: free, and not one
/// that another test run would pick.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `condition` until it holds or the deadline passes.
pub fn wait_until(what: &str, condition: impl Fn() -> bool, story: impl Fn() -> String) {
    let until = Instant::now() + DEADLINE;
    while !condition() {
        if Instant::now() > until {
            panic!("waited {DEADLINE:?} for {what}\n{}", story());
        }
        thread::sleep(Duration::from_millis(5));
    }
}

pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// The children of `pid` (every thread's), from /proc.
pub fn children_of(pid: u32) -> BTreeSet<u32> {
    let mut children = BTreeSet::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        let listed = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            listed
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    children
}

/// The state letter of a process (`R`, `S`, `Z`...), if it still exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

pub fn process_name(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether `pid` is a herd's guard (man herd, "When herd is killed").
pub fn is_guard(pid: u32) -> bool {
    process_name(pid) == "herd-guard"
}

pub fn zombie_children(pid: u32) -> usize {
    children_of(pid)
        .into_iter()
        .filter(|&child| process_state(child) == Some('Z'))
        .count()
}

/// SIGKILLs every descendant of `pid` (which this test spawned), deepest
/// first, so that a failing test leaves nothing behind.
pub fn kill_tree(pid: u32) {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        for child in children_of(next) {
            found.push(child);
            queue.push(child);
        }
    }
    if found.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(found.iter().rev().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("herd-test-{tag}-{}-{serial}", std::process::id());
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether `pid` is a live process: it exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z')
}

/// SIGKILLs `pid` and every descendant of it. `pid` is stopped first, so
/// that it can neither react to its children's deaths nor start new ones.
pub fn kill_with_tree(pid: u32) {
    let signal = |name: &str| {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    };
    signal("STOP");
    kill_tree(pid);
    signal("KILL");
}

/// The live processes whose environment holds `entry` (`KEY=VALUE`): a
/// test that gives what it starts a unique entry finds all of it, however
/// deep, and nothing else.
pub fn processes_with_env(entry: &str) -> Vec<u32> {
    let Ok(listing) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = listing
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
        })
        .filter(|&pid| is_alive(pid))
        .collect();
    found.sort_unstable();
    found
}

/// Whether some process holds a flock(2) lock on `path`, from /proc/locks.
pub fn is_flocked(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = fs::metadata(path) else {
        return false;
    };
    let dev = metadata.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let file = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
    fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.contains("->"))
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&file.as_str())
        })
}

impl Running {
    /// Waits for a stdout line containing any of `needles` (earlier lines
    /// that matched none are kept, as `expect_line` keeps them); returns it.
    /// `what` says what the line would show, for the failure message.
    pub fn expect_any(&mut self, what: &str, needles: &[&str]) -> String {
        self.expect_matching(&format!("{what}: a line with any of {needles:?}"), |line| {
            needles.iter().any(|n| line.contains(n))
        })
    }
}

/// `herd ARGS` (the caller adds ARGS) with its stdout and/or stderr opened
/// on `stdout` / `stderr` by a shell that then execs herd, so that the pid
/// `Running` knows becomes herd's. For a FIFO the test holds open: with a
/// reader in the test, the shell's open does not block.
pub fn herd_writing_to(
    stdout: Option<&std::path::Path>,
    stderr: Option<&std::path::Path>,
) -> Command {
    let mut script = String::from("o=$HERD_TEST_STDOUT e=$HERD_TEST_STDERR");
    script.push_str("; unset HERD_TEST_STDOUT HERD_TEST_STDERR; exec \"$@\"");
    let mut command = Command::new("sh");
    if let Some(path) = stdout {
        script.push_str(" >\"$o\"");
        command.env("HERD_TEST_STDOUT", path);
    }
    if let Some(path) = stderr {
        script.push_str(" 2>\"$e\"");
        command.env("HERD_TEST_STDERR", path);
    }
    command.args(["-c", &script, "sh", herd_path()]);
    command
}

/// A FIFO that the test keeps open for reading and writing and never reads:
/// a writer's open does not block, and its writes block once the pipe is
/// full, as with a stopped reader of herd's output.
pub struct Fifo {
    pub path: std::path::PathBuf,
    /// The test's end, held open and never read: the FIFO's reader.
    _reader: fs::File,
}

impl Fifo {
    pub fn new(dir: &TempDir, name: &str) -> Fifo {
        let path = dir.join(name);
        let made = Command::new("mkfifo").arg(&path).status();
        assert!(
            made.is_ok_and(|status| status.success()),
            "mkfifo {}",
            path.display()
        );
        // O_RDWR on a FIFO opens at once on Linux, without a peer.
        let reader = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        Fifo {
            path,
            _reader: reader,
        }
    }

    /// Fills the pipe to the last byte, so that the next write of anyone
    /// blocks (or fails with EAGAIN if non-blocking). Returns the bytes
    /// written.
    pub fn fill(&self) -> usize {
        use std::os::unix::fs::OpenOptionsExt;
        // Own open file description: O_NONBLOCK must not reach the others.
        let mut writer = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.path.display()));
        let mut total = 0;
        // Whole pages first, then single bytes for what a page left.
        for chunk in [4096, 1] {
            let bytes = vec![b'x'; chunk];
            loop {
                match writer.write(&bytes) {
                    Ok(n) => total += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("filling {}: {e}", self.path.display()),
                }
            }
        }
        assert!(total > 0, "{} took no bytes", self.path.display());
        total
    }
}

/// Time `pid` has spent on a CPU, user and system, in clock ticks (fields
/// 14 and 15 of /proc/PID/stat, every thread counted).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    // The fields after the name start at field 3, the state.
    let user: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(user + system)
}

/// A TCP port the kernel has just handed out on `host` (`::1`, `127.0.0.1`)
/// and taken back.
pub fn free_port_at(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|e| panic!("a free port on {host}: {e}"))
        .port()
}

/// An environment entry (`KEY=VALUE`) unique to one test. Whatever the test
/// starts with it carries it, however deep and whatever process group or
/// session it moved to; on drop every such process still alive is
/// SIGKILLed, so that a failing test leaves nothing behind.
pub struct Marker {
    pub entry: String,
}

impl Marker {
    pub fn new(tag: &str) -> Marker {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        Marker {
            entry: format!("HERD_TEST_MARKER={tag}-{}-{serial}", std::process::id()),
        }
    }

    /// Gives `command` the entry.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        let (key, value) = self.entry.split_once('=').unwrap();
        command.env(key, value)
    }

    /// The live processes that carry the entry.
    pub fn processes(&self) -> Vec<u32> {
        processes_with_env(&self.entry)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        // Stopped first, all of them, so that no supervisor among them can
        // start another process between the kills; then killed.
        let until = Instant::now() + DEADLINE;
        loop {
            let left = self.processes();
            if left.is_empty() || Instant::now() > until {
                return;
            }
            for signal in ["-STOP", "-KILL"] {
                let _ = Command::new("kill")
                    .arg(signal)
                    .args(left.iter().map(u32::to_string))
                    .stderr(Stdio::null())
                    .status();
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The control protocol's frame kinds (man/herd.1, PROTOCOL).
pub const HELLO: u8 = 1;
pub const REQUEST: u8 = 2;
pub const OK: u8 = 16;
pub const ERROR: u8 = 17;

/// One frame as the control protocol writes it: length, kind, body.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    bytes.push(kind);
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one frame: kind and body. `None`: the supervisor closed the
/// connection (or reset it).
pub fn read_frame(stream: &mut std::os::unix::net::UnixStream) -> Option<(u8, String)> {
    use std::io::ErrorKind;
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("no frame from the supervisor within {DEADLINE:?}: {e}"),
    }
    let length = u32::from_be_bytes(prefix) as usize;
    assert!((1..=1 << 20).contains(&length), "a reply of {length} bytes");
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).expect("a whole reply");
    Some((
        payload[0],
        String::from_utf8_lossy(&payload[1..]).into_owned(),
    ))
}

/// The names of the files in `dir` (none when it cannot be read), for a
/// failure message.
pub fn file_names(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|listing| {
            listing
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A file's text, or why it cannot be read, for a failure message.
pub fn text_or_why(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"))
}

/// Whether the tests run as root. Otherwise says that a test is skipped:
/// `what` (switching users, making a namespace) needs root.
pub fn runs_as_root(what: &str) -> bool {
    let effective_uid = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse::<u32>().ok())
        .expect("a Uid: line in /proc/self/status");
    if effective_uid != 0 {
        eprintln!("skipped: {what} needs root");
    }
    effective_uid == 0
}
