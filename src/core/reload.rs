//! Zero-downtime reload: a new generation of a unit is started beside the
//! serving one and replaces it only once it is ready; one that fails is
//! stopped and the old one goes on serving.

use super::{Answer, ClientId, Effect, Instance, InstanceId, Phase, Table, Unit, UnitState};
use std::time::Instant;

/// A reload under way: the units still to do, those whose new generation
/// is starting, and who waits for the end.
#[derive(Debug, Default)]
pub(super) struct ReloadJob {
    waiting: Vec<usize>,
    active: Vec<usize>,
    clients: Vec<ClientId>,
    /// Why a unit's new generation did not replace the old one: no further
    /// batch starts, and the clients hear it.
    failure: Option<String>,
    reloaded: usize,
}

impl Table {
    /// A reload of the unit named `name` (a unit's name, or every instance
    /// of a process), or of every running unit; from `client`, who hears
    /// the end, or from a signal or a watched file. A trigger while a new
    /// generation is not ready yet replaces that generation.
    pub(super) fn on_reload(
        &mut self,
        client: Option<ClientId>,
        name: Option<&str>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let refuse = |why: String, out: &mut Vec<Effect>| match client {
            Some(client) => out.push(Effect::Reply {
                client,
                answer: Answer::Error(why),
            }),
            None => out.push(Effect::Line(format!("not reloading: {why}"))),
        };
        if self.stopping || self.stop_forwarded {
            return refuse("herd is stopping".to_string(), out);
        }
        let named: Vec<usize> = (0..self.units.len())
            .filter(|&unit| name.is_none_or(|name| self.units[unit].answers_to(name)))
            .collect();
        if let (Some(name), true) = (name, named.is_empty()) {
            return refuse(format!("no process named '{name}'"), out);
        }
        let mut job = self.reload.take().unwrap_or_default();
        let in_job = |unit: &usize| job.active.contains(unit) || job.waiting.contains(unit);
        let targets: Vec<usize> = named
            .into_iter()
            .filter(|unit| in_job(unit) || self.units[*unit].is_serving())
            .collect();
        let idle = job.active.is_empty() && job.waiting.is_empty();
        if targets.is_empty() {
            if !idle {
                self.reload = Some(job);
            }
            let what = name.map_or("no process".to_string(), str::to_string);
            return refuse(format!("{what} is not running"), out);
        }
        job.clients.extend(client);
        if idle {
            out.push(Effect::ReloadStarted);
        }
        for unit in targets {
            if job.active.contains(&unit) {
                let pending = self.units[unit].pending.take();
                if let Some(index) = pending.and_then(|id| self.index_of(unit, id)) {
                    let generation = self.units[unit].instances[index].generation;
                    out.push(Effect::Line(format!(
                        "{}: generation {generation} is replaced by a newer reload",
                        self.units[unit].spec.name
                    )));
                    self.units[unit].instances[index].superseded = true;
                    self.begin_stop(unit, index, true, now, out);
                }
                self.begin_generation(unit, now, out);
            } else if !job.waiting.contains(&unit) {
                job.waiting.push(unit);
            }
        }
        self.reload = Some(job);
        self.advance_reload(now, out);
    }

    /// Switches over the units whose new generation is ready, starts the
    /// next batch once the last one is through, and ends the reload once
    /// nothing is left to do.
    pub(super) fn advance_reload(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let Some(mut job) = self.reload.take() else {
            return;
        };
        let mut index = 0;
        while let Some(&unit) = job.active.get(index) {
            let u = &self.units[unit];
            let ready = u
                .pending
                .and_then(|id| u.instances.iter().find(|i| i.id == id))
                .is_some_and(|instance| instance.phase == Phase::Ready);
            if ready {
                self.switch_over(unit, now, out);
                job.active.remove(index);
                job.reloaded += 1;
            } else if u.pending.is_none() {
                // Its new generation failed: `pending_failed` said why.
                job.active.remove(index);
            } else {
                index += 1;
            }
        }
        if job.active.is_empty() && job.failure.is_none() {
            let batch = match self.settings.reload_batch {
                0 => job.waiting.len(),
                batch => batch.min(job.waiting.len()),
            };
            for unit in job.waiting.drain(..batch).collect::<Vec<_>>() {
                if self.units[unit].is_serving() {
                    self.begin_generation(unit, now, out);
                    job.active.push(unit);
                }
            }
        }
        let finished = job.active.is_empty() && (job.waiting.is_empty() || job.failure.is_some());
        if !finished {
            self.reload = Some(job);
            return;
        }
        let answer = match &job.failure {
            Some(failure) => Answer::Error(format!("reload failed: {failure}")),
            None => Answer::Ok(vec![("reloaded".to_string(), job.reloaded.to_string())]),
        };
        out.push(Effect::ReloadFinished {
            ok: job.failure.is_none(),
        });
        for client in job.clients {
            out.push(Effect::Reply {
                client,
                answer: answer.clone(),
            });
        }
    }

    /// Ends a reload that cannot go on (herd is stopping): whoever waits
    /// hears why.
    pub(super) fn cancel_reload(&mut self, why: &str, out: &mut Vec<Effect>) {
        let Some(job) = self.reload.take() else {
            return;
        };
        for unit in job.active {
            self.units[unit].pending = None;
        }
        out.push(Effect::ReloadFinished { ok: false });
        for client in job.clients {
            out.push(Effect::Reply {
                client,
                answer: Answer::Error(format!("reload failed: {why}")),
            });
        }
    }

    /// The new generation of `unit` (its `pending` instance) exited, could
    /// not be spawned or did not get ready: it is stopped like an old one,
    /// and the serving generation goes on.
    pub(super) fn pending_failed(
        &mut self,
        unit: usize,
        index: usize,
        why: &str,
        out: &mut Vec<Effect>,
    ) {
        let u = &mut self.units[unit];
        let instance = &mut u.instances[index];
        instance.superseded = true;
        u.pending = None;
        let text = format!(
            "{}: reload failed: generation {} {why}; the running generation goes on",
            u.spec.name, instance.generation
        );
        out.push(Effect::Line(text.clone()));
        if let Some(job) = &mut self.reload {
            job.failure.get_or_insert_with(|| text.clone());
        }
        u.reload_failure = Some(text);
    }

    /// Starts a new generation of `unit` beside its serving one.
    fn begin_generation(&mut self, unit: usize, now: Instant, out: &mut Vec<Effect>) {
        let id = self.next_instance;
        self.next_instance += 1;
        let u = &mut self.units[unit];
        u.generations = u.generations.saturating_add(1);
        u.pending = Some(id);
        out.push(Effect::Line(format!(
            "reloading {}: starting generation {}",
            u.spec.name, u.generations
        )));
        u.instances
            .push(super::Instance::new(id, u.generations, now));
        out.push(Effect::Spawn { instance: id, unit });
    }

    /// The new generation of `unit` is ready: every older one gets its stop
    /// signal and its grace to finish what it serves.
    fn switch_over(&mut self, unit: usize, now: Instant, out: &mut Vec<Effect>) {
        let Some(new) = self.units[unit].pending.take() else {
            return;
        };
        let mut draining = 0;
        for index in 0..self.units[unit].instances.len() {
            let instance = &mut self.units[unit].instances[index];
            if instance.id == new || instance.superseded {
                continue;
            }
            instance.superseded = true;
            draining += 1;
            if !matches!(instance.phase, Phase::Stopping { .. }) {
                self.begin_stop(unit, index, true, now, out);
            }
        }
        let u = &mut self.units[unit];
        u.state = UnitState::Active;
        u.reload_failure = None;
        let generation = u.generations;
        out.push(Effect::Line(format!(
            "{}: generation {generation} is serving; {draining} older draining",
            u.spec.name
        )));
    }

    fn index_of(&self, unit: usize, id: InstanceId) -> Option<usize> {
        self.units[unit].instances.iter().position(|i| i.id == id)
    }
}

impl Unit {
    /// Whether a reload may replace what it runs: a generation is ready and
    /// serving.
    fn is_serving(&self) -> bool {
        self.state == UnitState::Active
            && self
                .instances
                .iter()
                .any(|i| !i.superseded && Some(i.id) != self.pending && i.phase == Phase::Ready)
    }

    /// Whether `name` names this unit: its own name (`web.2`), or that of
    /// its process (`web`), which names every instance of it.
    pub(super) fn answers_to(&self, name: &str) -> bool {
        self.spec.name == name || self.spec.family == name
    }

    /// How its reloads go, for `herd status`: a new generation starting,
    /// old ones draining, the last failure.
    pub(super) fn reload_note(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(instance) = self.instances.iter().find(|i| Some(i.id) == self.pending) {
            parts.push(format!("generation {} starting", instance.generation));
        }
        let draining = self
            .instances
            .iter()
            .filter(|i| i.superseded && (i.pid.is_some() || i.pgid.is_some()))
            .count();
        if draining > 0 {
            parts.push(format!("{draining} draining"));
        }
        if let Some(failure) = &self.reload_failure {
            parts.push(failure.clone());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The instance that serves: the newest one neither replaced nor still
    /// on trial as a reload's new generation (that one, if it is all
    /// there is).
    pub(super) fn serving_index(&self) -> Option<usize> {
        let on_trial = |i: &Instance| Some(i.id) == self.pending;
        self.instances
            .iter()
            .rposition(|i| !i.superseded && !on_trial(i))
            .or_else(|| self.instances.len().checked_sub(1))
    }
}
