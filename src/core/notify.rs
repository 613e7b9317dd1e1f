//! What a process says on herd's notify socket: whose datagram it is (its
//! main pid, the pid it declared with `MAINPID=`, or a member of its process
//! group) and what follows (ready, a later deadline, its status text).

use super::{deadline, seconds, Effect, Phase, Table};
use crate::notify::Notice;
use crate::spec::Ready;
use crate::sys::Pid;
use std::time::{Duration, Instant};

/// How often datagrams from strangers are noted with `-v`, at most.
const STRANGER_NOTE_INTERVAL: Duration = Duration::from_secs(1);

/// What an instance has said about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Notified {
    /// The pid it named with `MAINPID=`: its datagrams are the instance's.
    pub main_pid: Option<Pid>,
    /// Its last `STATUS=` text, for `herd status`.
    pub status: Option<String>,
    /// Said `RELOADING=1` and no `READY=1` since.
    pub reloading: bool,
    /// Said `STOPPING=1`.
    pub stopping: bool,
    /// Its last `WATCHDOG=1`.
    pub watchdog_at: Option<Instant>,
}

impl Table {
    /// A datagram from `pid` (of process group `pgid`, when it could be
    /// looked up) that says `notice`.
    pub(super) fn on_notice(
        &mut self,
        pid: Pid,
        pgid: Option<Pid>,
        notice: Notice,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some((unit, index)) = self.find_sender(pid, pgid) else {
            let quiet = self
                .stranger_noted
                .is_some_and(|at| now.saturating_duration_since(at) < STRANGER_NOTE_INTERVAL);
            if !quiet {
                self.stranger_noted = Some(now);
                out.push(Effect::Note(format!(
                    "notify: ignored a datagram from pid {pid}, which is none of herd's processes"
                )));
            }
            return;
        };
        let u = &mut self.units[unit];
        let name = u.spec.name.clone();
        let notify_ready = u.spec.ready == Ready::Notify;
        let instance = &mut u.instances[index];
        let id = instance.id;
        if let Some(main_pid) = notice.main_pid {
            instance.notified.main_pid = Some(main_pid);
            out.push(Effect::Note(format!("{name}: its main pid is {main_pid}")));
        }
        if let Some(status) = notice.status {
            instance.notified.status = Some(status).filter(|text| !text.is_empty());
        }
        if notice.watchdog {
            instance.notified.watchdog_at = Some(now);
        }
        if notice.stopping {
            instance.notified.stopping = true;
        }
        if notice.reloading {
            instance.notified.reloading = true;
        }
        if let (Some(wait), Phase::Starting { deadline: due }) =
            (notice.extend, &mut instance.phase)
        {
            let extended = deadline(now, wait);
            if extended > *due {
                *due = extended;
                out.push(Effect::Note(format!(
                    "{name}: ready deadline extended to {} from now",
                    seconds(wait)
                )));
            }
        }
        if notice.ready {
            instance.notified.reloading = false;
            if notify_ready {
                self.on_ready(id, out);
            } else if let Phase::Starting { .. } = instance.phase {
                out.push(Effect::Note(format!(
                    "{name}: READY=1 ignored: its ready check is another"
                )));
            }
        }
    }

    /// The instance a datagram is from: the one whose main pid or declared
    /// `MAINPID=` sent it, or else the one whose process group it is in.
    fn find_sender(&self, pid: Pid, pgid: Option<Pid>) -> Option<(usize, usize)> {
        let by = |matches: &dyn Fn(&super::Instance) -> bool| {
            self.units.iter().enumerate().find_map(|(unit, u)| {
                let index = u.instances.iter().position(matches)?;
                Some((unit, index))
            })
        };
        by(&|i| i.pid == Some(pid) || i.notified.main_pid == Some(pid))
            .or_else(|| by(&|i| pgid.is_some() && i.pgid == pgid))
    }
}

impl Table {
    /// Whether the table is stopping everything (a single command too).
    pub fn is_stopping(&self) -> bool {
        self.stopping || self.stop_forwarded
    }

    /// How many units are ready, of those that are to run: for herd's own
    /// `STATUS=` line.
    pub fn readiness(&self) -> (usize, usize) {
        let running = self.units.iter().filter(|unit| {
            !matches!(
                unit.state,
                super::UnitState::Done | super::UnitState::Stopped
            )
        });
        let (mut ready, mut total) = (0, 0);
        for unit in running {
            total += 1;
            let serving = unit.serving_index().and_then(|i| unit.instances.get(i));
            if serving.is_some_and(|i| i.phase == Phase::Ready) {
                ready += 1;
            }
        }
        (ready, total)
    }
}
