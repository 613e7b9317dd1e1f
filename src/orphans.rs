//! What a supervisor that died left running: its process groups, found in
//! the scoreboard of the state directory a new supervisor takes over,
//! checked against /proc so that a reused pid is never signalled, and
//! stopped (stop signal, grace, SIGKILL) before anything starts anew.

use crate::error::Failure;
use crate::scoreboard::{self, Group, Unreadable};
use crate::sys::events::SignalFd;
use crate::sys::process::{self, LiveGroup, Members};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the groups being stopped are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How long the members of a group killed with SIGKILL may take to die.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What became of a group found in the old scoreboard.
#[derive(Debug, PartialEq)]
enum Found {
    /// Still the dead supervisor's: to be stopped.
    Left,
    /// No member is left.
    Gone,
    /// Its id now names another process: left alone.
    Reused,
}

/// Whether `group` is still the one the dead supervisor started: its leader
/// is the same process (pid and start time, a zombie's too), or the leader
/// is gone and members remain, which keeps the id from being given to
/// anyone else. `alive`: the group has a member that is not a zombie.
fn classify(group: &Group, start_of: &dyn Fn(i32) -> Option<u64>, alive: bool) -> Found {
    if !alive {
        return Found::Gone;
    }
    match start_of(group.pgid) {
        Some(start)
            if group.pid == group.pgid && group.pid_start != 0 && start == group.pid_start =>
        {
            Found::Left
        }
        Some(_) => Found::Reused,
        None => Found::Left,
    }
}

/// Whether group `pgid` has a member that is not a zombie, by `live` (from
/// /proc), or by a signal when /proc could not be read.
fn is_alive(pgid: i32, live: Option<&HashSet<i32>>) -> bool {
    match live {
        Some(live) => live.contains(&pgid),
        None => LiveGroup::left_behind(pgid).members() != Members::None,
    }
}

/// Stops what the supervisor that last had `dir` left running, saying so
/// with `note`. A signal that asks herd to stop (SIGINT, SIGTERM, SIGHUP,
/// SIGQUIT) meanwhile kills what is left at once and ends herd.
pub fn stop_left_behind(
    dir: &Path,
    signals: &SignalFd,
    note: &dyn Fn(&str),
) -> Result<(), Failure> {
    let snapshot = match scoreboard::read(dir) {
        Ok(snapshot) => snapshot,
        Err(Unreadable::Missing) => return Ok(()),
        Err(why) => {
            note(&format!(
                "taking over {}: its scoreboard: {why}: what the last supervisor ran is not looked for",
                dir.display()
            ));
            return Ok(());
        }
    };
    let supervisor = i32::try_from(snapshot.supervisor).unwrap_or(0);
    if supervisor > 1
        && supervisor != process::own_pid()
        && snapshot.supervisor_start != 0
        && process::proc_stat(supervisor)
            .is_some_and(|stat| !stat.is_zombie() && stat.start_ticks == snapshot.supervisor_start)
    {
        note(&format!(
            "taking over {}: its last supervisor (pid {supervisor}) still runs: what it started is left alone",
            dir.display()
        ));
        return Ok(());
    }
    let own_group = process::own_process_group();
    let live = process::live_process_groups();
    let mut left = Vec::new();
    for group in snapshot
        .groups
        .into_iter()
        .filter(|group| group.pgid != own_group)
    {
        let alive = is_alive(group.pgid, live.as_ref());
        match classify(&group, &process::start_ticks, alive) {
            Found::Left => left.push(group),
            Found::Gone => {}
            Found::Reused => note(&format!(
                "taking over {}: {} had pid {}, which is now another process's: left alone",
                dir.display(),
                group.name,
                group.pid
            )),
        }
    }
    if left.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = left
        .iter()
        .map(|group| format!("{} (group {})", group.name, group.pgid))
        .collect();
    note(&format!(
        "taking over {}: its last supervisor (pid {supervisor}) died and left {} running: stopping {}",
        dir.display(),
        if left.len() == 1 { "a process".to_string() } else { format!("{} processes", left.len()) },
        names.join(", ")
    ));
    stop(left, signals, note)
}

/// Each group gets its stop signal (and SIGCONT, in case it is stopped),
/// then SIGKILL once its grace has passed.
fn stop(left: Vec<Group>, signals: &SignalFd, note: &dyn Fn(&str)) -> Result<(), Failure> {
    let began = Instant::now();
    let mut stopping: Vec<(Group, Option<Instant>)> = left
        .into_iter()
        .map(|group| {
            let leader = LiveGroup::left_behind(group.pgid);
            let _ = leader.signal(group.stop_signal);
            let _ = leader.signal(libc::SIGCONT);
            (group, None)
        })
        .collect();
    let mut interrupted = None;
    loop {
        let now = Instant::now();
        let live = process::live_process_groups();
        stopping.retain(|(group, _)| is_alive(group.pgid, live.as_ref()));
        for (group, killed) in &mut stopping {
            let due = began.checked_add(group.grace).unwrap_or(now);
            if killed.is_none() && (now >= due || interrupted.is_some()) {
                let _ = LiveGroup::left_behind(group.pgid).signal(libc::SIGKILL);
                *killed = Some(now);
            }
        }
        let stuck = stopping.iter().all(|(_, killed)| {
            killed.is_some_and(|at| now.saturating_duration_since(at) >= KILL_WAIT)
        });
        if stopping.is_empty() || stuck {
            break;
        }
        if interrupted.is_none() {
            interrupted = asked_to_stop(signals);
        }
        std::thread::sleep(LOOK_EVERY);
    }
    for (group, _) in &stopping {
        note(&format!(
            "{} (group {}) still has members after SIGKILL",
            group.name, group.pgid
        ));
    }
    match interrupted {
        Some(signal) => Err(Failure::new(
            "stopping what the last supervisor left",
            format!(
                "interrupted by {}: the rest was killed",
                crate::signals::name(signal)
            ),
        )),
        None => Ok(()),
    }
}

/// The first signal waiting that asks herd to stop; any other is dropped
/// (nothing of this herd runs yet for it to be meant for).
fn asked_to_stop(signals: &SignalFd) -> Option<i32> {
    while let Ok(Some(signal)) = signals.take() {
        if [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT].contains(&signal) {
            return Some(signal);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pid: i32, pgid: i32, pid_start: u64) -> Group {
        Group {
            name: "web".into(),
            pid,
            pgid,
            pid_start,
            stop_signal: libc::SIGTERM,
            grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_group_is_the_dead_supervisors_only_while_its_id_cannot_have_been_reused() {
        let started_at = |start: u64| move |_: i32| Some(start);
        let no_process = |_: i32| None;
        // The same leader: same pid, same start time.
        assert_eq!(
            classify(&group(50, 50, 7), &started_at(7), true),
            Found::Left
        );
        // Another process has the pid now.
        assert_eq!(
            classify(&group(50, 50, 7), &started_at(8), true),
            Found::Reused
        );
        // A start time the slot did not know is no proof.
        assert_eq!(
            classify(&group(50, 50, 0), &started_at(0), true),
            Found::Reused
        );
        // The leader is gone; its members keep the id from reuse.
        assert_eq!(classify(&group(50, 50, 7), &no_process, true), Found::Left);
        // Zombies only, or nobody: nothing to stop.
        assert_eq!(classify(&group(50, 50, 7), &no_process, false), Found::Gone);
        assert_eq!(
            classify(&group(50, 50, 7), &started_at(7), false),
            Found::Gone
        );
    }
}
