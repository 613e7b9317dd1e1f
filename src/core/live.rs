//! Liveness: when an instance's check starts (once it is ready), what its
//! results count for (nothing during `live-grace`, a failure only with the
//! ones before it in a row), and what `live-failures` of them do: the
//! instance is stopped and its restart policy judges it, as a failure.

use super::{seconds, Effect, InstanceId, Phase, Table};
use std::time::Instant;

/// What an instance's liveness check has come to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    /// When it got ready and its check started.
    pub ready_at: Option<Instant>,
    /// Failed checks in a row.
    pub failures: u32,
    /// It failed its check and is being stopped for it.
    pub failed: bool,
}

impl Table {
    /// Starts the check of every instance that has got ready since the
    /// last step and has one.
    pub(super) fn advance_live(&mut self, now: Instant, out: &mut Vec<Effect>) {
        for unit in &mut self.units {
            let Some(check) = &unit.spec.live.check else {
                continue;
            };
            for instance in &mut unit.instances {
                if instance.phase == Phase::Ready
                    && instance.live.ready_at.is_none()
                    && !instance.superseded
                {
                    instance.live.ready_at = Some(now);
                    out.push(Effect::Note(format!(
                        "{}: liveness check {} every {}",
                        unit.spec.name,
                        crate::live::describe(check),
                        seconds(unit.spec.live.interval)
                    )));
                    out.push(Effect::StartLive {
                        instance: instance.id,
                        live: unit.spec.live.clone(),
                    });
                }
            }
        }
    }

    /// One result of an instance's check.
    pub(super) fn on_live(
        &mut self,
        id: InstanceId,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some((unit, index)) = self.find(id) else {
            return;
        };
        if self.stopping {
            return;
        }
        let group = self.is_group();
        let line = |text: String| {
            if group {
                Effect::Line(text)
            } else {
                Effect::Warn(text)
            }
        };
        let u = &mut self.units[unit];
        let Some(check) = &u.spec.live.check else {
            return;
        };
        let settings = &u.spec.live;
        let name = &u.spec.name;
        let instance = &mut u.instances[index];
        let counts = instance.phase == Phase::Ready
            && !instance.live.failed
            && instance
                .live
                .ready_at
                .is_some_and(|at| now.saturating_duration_since(at) >= settings.grace);
        if !counts {
            return;
        }
        let why = match result {
            Ok(()) => {
                if std::mem::take(&mut instance.live.failures) > 0 {
                    out.push(line(format!("{name}: live again")));
                }
                return;
            }
            Err(why) => why,
        };
        instance.live.failures = instance.live.failures.saturating_add(1);
        let (failures, limit) = (instance.live.failures, settings.failures);
        let check = crate::live::describe(check);
        if failures < limit {
            out.push(line(format!(
                "{name}: liveness check {check} failed ({failures} of {limit}): {why}"
            )));
            return;
        }
        instance.live.failed = true;
        out.push(line(format!(
            "{name}: not live: {check} failed {failures} times in a row: {why}"
        )));
        out.push(Effect::StopLive(id));
        self.begin_stop(unit, index, true, now, out);
    }
}
