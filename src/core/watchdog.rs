//! `--watchdog`: a process whose heartbeat (its scoreboard slot's counter,
//! or `WATCHDOG=1`) has not moved for its period is stopped and goes
//! through its restart policy.

use super::{deadline, seconds, Effect, Instance, Phase, Table};
use crate::spec::ProcessSpec;
use std::time::{Duration, Instant};

/// How often herd looks at the heartbeat counters of a watched process:
/// twenty times a period, so that one that stopped is found within a
/// twentieth of its period after it ran out.
const LOOKS_PER_PERIOD: u32 = 20;

/// When the heartbeat of `instance` runs out, if it has a watchdog: its last
/// heartbeat, or its start, plus the period. Only a running process is
/// watched; one being stopped has its grace.
pub(super) fn heartbeat_due(spec: &ProcessSpec, instance: &Instance) -> Option<Instant> {
    let period = spec.watchdog?;
    instance.pid?;
    if !matches!(instance.phase, Phase::Starting { .. } | Phase::Ready) {
        return None;
    }
    let last = instance
        .notified
        .watchdog_at
        .map_or(instance.started_at, |at| at.max(instance.started_at));
    Some(deadline(last, period))
}

impl Table {
    /// The heartbeat counter of `unit`'s slot moved. During a reload both
    /// generations share the slot, and which one added cannot be told: it
    /// counts for both (a `WATCHDOG=1` counts for its sender's alone).
    pub(super) fn on_heartbeat(&mut self, unit: usize, now: Instant) {
        let Some(u) = self.units.get_mut(unit) else {
            return;
        };
        for instance in &mut u.instances {
            instance.notified.watchdog_at = Some(now);
        }
    }

    /// How long the executor may wait before it looks at the heartbeat
    /// counters again; `None` while no process has a watchdog.
    pub fn heartbeat_poll(&self) -> Option<Duration> {
        self.units
            .iter()
            .filter(|unit| {
                unit.instances
                    .iter()
                    .any(|instance| heartbeat_due(&unit.spec, instance).is_some())
            })
            .filter_map(|unit| unit.spec.watchdog)
            .map(|period| {
                (period / LOOKS_PER_PERIOD).max(crate::spec::MIN_WATCHDOG / LOOKS_PER_PERIOD)
            })
            .min()
    }

    /// Stops the instance if its heartbeat ran out by `now`.
    pub(super) fn check_heartbeat(
        &mut self,
        unit: usize,
        index: usize,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let u = &self.units[unit];
        let Some(instance) = u.instances.get(index) else {
            return;
        };
        if heartbeat_due(&u.spec, instance).is_none_or(|at| at > now) {
            return;
        }
        let why = format!(
            "no heartbeat for {}",
            seconds(u.spec.watchdog.unwrap_or_default())
        );
        let id = instance.id;
        if u.pending == Some(id) {
            self.pending_failed(unit, index, &why, out);
        } else {
            out.push(Effect::Line(format!("{}: {why}", u.spec.name)));
        }
        self.begin_stop(unit, index, true, now, out);
        if let Some(instance) = self.units[unit].instances.get_mut(index) {
            instance.no_heartbeat = true;
        }
    }
}
