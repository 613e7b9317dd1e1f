//! `--watch PATH`: a thread that asks for a reload when a watched file
//! changes, once a burst of changes has settled.

use crate::error::Failure;
use crate::supervisor::{Event, Inbox};
use crate::sys::{fd, inotify::Inotify};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

/// How long the watched files must stay quiet before the reload: a deploy
/// that writes many files (or an editor that writes, renames and touches
/// one) gives one reload, not many.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches `paths` and sends a reload request for every burst of changes.
/// Every path must exist at start: a typo is a 125 error, not a silent
/// watch of nothing.
pub fn start(paths: &[PathBuf], inbox: Inbox) -> Result<(), Failure> {
    if paths.is_empty() {
        return Ok(());
    }
    let doing = |path: &PathBuf| format!("watching {}", path.display());
    let inotify = Inotify::new().map_err(|e| Failure::io("starting --watch", &e))?;
    for path in paths {
        inotify
            .watch(path)
            .map_err(|e| Failure::io(doing(path), &e))?;
    }
    let paths = paths.to_vec();
    thread::Builder::new()
        .name("watch".into())
        .stack_size(64 * 1024)
        .spawn(move || watch(&inotify, &paths, &inbox))
        .map_err(|e| Failure::io("starting --watch", &e))?;
    Ok(())
}

fn watch(inotify: &Inotify, paths: &[PathBuf], inbox: &Inbox) {
    loop {
        if inotify.wait().is_err() {
            return;
        }
        // Until the files have been quiet for DEBOUNCE.
        while fd::wait_readable(inotify.as_fd(), Some(DEBOUNCE)).unwrap_or(false) {
            if inotify.wait().is_err() {
                return;
            }
        }
        // A file saved by renaming a new one over it is a new inode: watch
        // that one from now on (the same inode keeps its one watch). One
        // that is gone for now is looked for again after the next burst.
        for path in paths {
            let _ = inotify.watch(path);
        }
        if inbox.send(Event::Reload).is_err() {
            return;
        }
    }
}
