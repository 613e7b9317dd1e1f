//! Whether the group as a whole is ready: the one answer `herd status
//! --ready` and the `--health` responder's `/ready` give.

use super::{Phase, Table, UnitState};
use crate::sys::process::WaitStatus;

impl Table {
    /// Every unit is ready, and nothing is starting or stopping: start
    /// order has reached the last unit, and herd has not been asked to
    /// stop. Per unit:
    ///
    /// * running: its serving generation has passed its ready check and
    ///   has not said `STOPPING=1`; during a reload that is the old one,
    ///   so a reload never makes the group unready, nor does a process
    ///   that said `RELOADING=1` (it still serves);
    /// * a oneshot that exited 0 is ready: its work is done;
    /// * waiting, starting, between runs (a restart, its backoff) and
    ///   stopped by `herd stop NAME` are not: what it serves is not there.
    pub fn is_ready(&self) -> bool {
        if self.stopping || self.stop_forwarded || self.next_to_start < self.units.len() {
            return false;
        }
        let group = self.is_group();
        self.units.iter().all(|unit| match unit.state {
            UnitState::Active => unit
                .serving_index()
                .and_then(|index| unit.instances.get(index))
                .is_some_and(|serving| serving.phase == Phase::Ready && !serving.notified.stopping),
            // In a group that is not stopping, only a oneshot is done and
            // the rest goes on; a single command that is done is herd's end.
            UnitState::Done => {
                group && unit.spec.oneshot && unit.last_exit == Some(WaitStatus::Exited(0))
            }
            UnitState::Waiting | UnitState::Backoff { .. } | UnitState::Stopped => false,
        })
    }
}
