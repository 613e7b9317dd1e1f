//! herd's stdout when nobody reads it.

use crate::util::{herd, kill_with_tree, send_signal, TempDir, DEADLINE};
use std::fs;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A herd whose stdout is a pipe that stays open and is never read. It and
/// everything under it are killed on drop, should the test fail.
struct Unread {
    herd: Child,
}

impl Drop for Unread {
    fn drop(&mut self) {
        if self.herd.try_wait().ok().flatten().is_none() {
            kill_with_tree(self.herd.id());
            let _ = self.herd.wait();
        }
    }
}

/// Issue 7: a reader blocked writing to a stdout nobody read held the lock
/// that herd's own lines took, so the loop stopped at its next line and
/// SIGTERM, restarts and `herd stop` were never handled.
#[test]
fn a_stdout_nobody_reads_does_not_hold_up_a_stop() {
    let dir = TempDir::new("unread");
    let progress = dir.join("progress");
    let flood = format!(
        "flood=i=0; while :; do i=$((i+1)); echo line $i of a flood nobody reads; \
         [ $((i % 100)) = 0 ] && echo $i > {}; done",
        progress.display()
    );
    let mut unread = Unread {
        herd: herd()
            .args([
                "run",
                "--color",
                "never",
                "-c",
                &flood,
                "-c",
                "idle=exec sleep 1000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("herd starts"),
    };
    let _stdout = unread.herd.stdout.take();

    // The flood stops once herd's stdout and its queue are full.
    let until = Instant::now() + DEADLINE;
    let mut last = String::new();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(500) {
        assert!(
            Instant::now() < until,
            "the flood never stopped (at line {last})"
        );
        thread::sleep(Duration::from_millis(10));
        let now = fs::read_to_string(&progress).unwrap_or_default();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }

    send_signal(unread.herd.id(), "TERM");
    let until = Instant::now() + DEADLINE;
    while unread.herd.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < until,
            "herd did not stop within {DEADLINE:?} of SIGTERM while nobody read its stdout"
        );
        thread::sleep(Duration::from_millis(5));
    }
}
