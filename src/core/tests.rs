//! The table's decisions, driven with made-up inputs and times: no process,
//! no clock, no sleep.

use super::*;
use crate::spec::Defaults;

const MS: Duration = Duration::from_millis(1);
const TERM: i32 = libc::SIGTERM;
const KILL: i32 = libc::SIGKILL;

fn spec(name: &str) -> ProcessSpec {
    ProcessSpec::new(
        name.to_string(),
        format!("run {name}"),
        &Defaults::default(),
    )
}

fn with(mut spec: ProcessSpec, key: &str, value: Option<&str>) -> ProcessSpec {
    spec.apply(key, value).unwrap();
    spec
}

fn settings(policy: Policy) -> Settings {
    Settings {
        policy,
        backoff_min: 100 * MS,
        backoff_max: 1000 * MS,
        start_limit: 3,
        start_window: Duration::from_secs(60),
        settle: None,
        sweep: None,
        reopens_log: false,
        output_linger: 100 * MS,
        reload_batch: 0,
        hup_reloads: false,
        stop_deadline: None,
        init: InitOptions::default(),
    }
}

const GROUP: Policy = Policy::Group {
    parallel_stop: false,
};

/// A table and a clock, with the executor's part played by hand: every
/// spawn succeeds with pid 100 + the instance id unless told otherwise.
struct Sim {
    table: Table,
    now: Instant,
    /// Everything the table asked for so far.
    log: Vec<Effect>,
    fail_spawns: bool,
    /// Spawned instances have an output pipe.
    with_output: bool,
}

impl Sim {
    fn new(settings: Settings, specs: Vec<ProcessSpec>) -> Sim {
        let units = specs
            .into_iter()
            .map(|spec| UnitSetup {
                spec,
                stdin_pipe: false,
            })
            .collect();
        Sim {
            table: Table::new(settings, units),
            now: Instant::now(),
            log: Vec::new(),
            fail_spawns: false,
            with_output: false,
        }
    }

    fn group(specs: Vec<ProcessSpec>) -> Sim {
        let mut sim = Sim::new(settings(GROUP), specs);
        sim.feed(Input::Tick);
        sim
    }

    fn single(group_signal: bool) -> Sim {
        let mut sim = Sim::new(
            settings(Policy::Transparent { group_signal }),
            vec![spec("./server")],
        );
        sim.feed(Input::Tick);
        sim
    }

    /// Steps `input` and the spawn results it leads to; returns the effects.
    fn feed(&mut self, input: Input) -> Vec<Effect> {
        let mut inputs = vec![input];
        let mut all = Vec::new();
        while !inputs.is_empty() {
            let input = inputs.remove(0);
            for effect in self.table.step(input, self.now) {
                if let Effect::Spawn { instance, .. } = effect {
                    inputs.push(if self.fail_spawns {
                        Input::SpawnFailed {
                            instance,
                            failure: Failure::new("executing /bin/sh", "argument list too long")
                                .with_exit_code(126),
                        }
                    } else {
                        Input::Spawned {
                            instance,
                            pid: pid_of_instance(instance),
                            has_terminal: false,
                            has_output: self.with_output,
                        }
                    });
                }
                all.push(effect);
            }
        }
        self.log.extend(all.iter().cloned());
        all
    }

    fn after(&mut self, wait: Duration) -> Vec<Effect> {
        self.now += wait;
        self.feed(Input::Tick)
    }

    fn signal(&mut self, signal: i32) -> Vec<Effect> {
        self.feed(Input::Signal(signal))
    }

    /// The unit's current instance.
    fn current(&self, name: &str) -> &Instance {
        self.unit(name)
            .instances
            .last()
            .unwrap_or_else(|| panic!("{name} has no instance"))
    }

    fn unit(&self, name: &str) -> &Unit {
        self.table
            .units
            .iter()
            .find(|u| u.spec.name == name)
            .unwrap()
    }

    fn pid(&self, name: &str) -> Pid {
        self.current(name).pid.unwrap()
    }

    fn id(&self, name: &str) -> InstanceId {
        self.current(name).id
    }

    /// The main process exits; its group is empty unless `leftovers`.
    fn exit(&mut self, name: &str, status: WaitStatus) -> Vec<Effect> {
        let pid = self.pid(name);
        self.feed(Input::Exited {
            pid,
            status,
            group: GroupState::Empty,
        })
    }

    fn exit_leaving(&mut self, name: &str, status: WaitStatus) -> Vec<Effect> {
        let pid = self.pid(name);
        self.feed(Input::Exited {
            pid,
            status,
            group: GroupState::Alive,
        })
    }

    /// Every instance that was signalled with `signal` exits of it.
    fn obey(&mut self, effects: &[Effect]) -> Vec<Effect> {
        let mut all = Vec::new();
        for effect in effects {
            if let Effect::Signal {
                to: Target::Group(id),
                signal,
            } = effect
            {
                if let Some((_, instance)) = self.table.instance(*id) {
                    if let Some(pid) = instance.pid {
                        all.extend(self.feed(Input::Exited {
                            pid,
                            status: WaitStatus::Signaled(*signal),
                            group: GroupState::Empty,
                        }));
                    }
                }
            }
        }
        all
    }

    /// The instance dies of the TERM herd sent it.
    fn terminated(&mut self, id: InstanceId) -> Vec<Effect> {
        self.obey(&[Effect::Signal {
            to: Target::Group(id),
            signal: TERM,
        }])
    }

    fn control(&mut self, command: Command) -> Answer {
        let effects = self.feed(Input::Control { client: 7, command });
        effects
            .into_iter()
            .find_map(|effect| match effect {
                Effect::Reply { client: 7, answer } => Some(answer),
                _ => None,
            })
            .expect("every request gets a reply")
    }

    fn state(&self, name: &str) -> &'static str {
        let rows = self.table.status(self.now);
        rows.into_iter().find(|r| r.name == name).unwrap().state
    }
}

fn pid_of_instance(id: InstanceId) -> Pid {
    100 + Pid::try_from(id).unwrap()
}

/// The text of every event line (exit lines included).
fn lines(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Line(text) | Effect::LineAfterOutput { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn has_line(effects: &[Effect], needle: &str) -> bool {
    lines(effects).iter().any(|line| line.contains(needle))
}

fn spawns(effects: &[Effect]) -> Vec<usize> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Spawn { unit, .. } => Some(*unit),
            _ => None,
        })
        .collect()
}

fn signals(effects: &[Effect]) -> Vec<(Target, i32)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Signal { to, signal } => Some((*to, *signal)),
            _ => None,
        })
        .collect()
}

fn exited(code: i32) -> WaitStatus {
    WaitStatus::Exited(code)
}

fn outcome_code(sim: &Sim) -> u8 {
    sim.table
        .outcome()
        .unwrap_or_else(|| panic!("not finished: {:?}", sim.table.status(sim.now)))
        .code
}

// --- ordered start and readiness ---------------------------------------

#[test]
fn a_group_starts_its_units_in_order() {
    let sim = Sim::group(vec![spec("db"), spec("web"), spec("worker")]);
    assert_eq!(spawns(&sim.log), [0, 1, 2]);
    assert_eq!(
        lines(&sim.log),
        [
            "db started (pid 101)",
            "web started (pid 102)",
            "worker started (pid 103)"
        ]
    );
    assert_eq!(sim.state("worker"), "running");
}

#[test]
fn a_unit_with_a_ready_check_holds_back_the_next_until_ready() {
    let db = with(spec("db"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![db, spec("web")]);
    assert_eq!(spawns(&sim.log), [0], "web waits for db");
    assert_eq!(sim.state("db"), "starting");
    assert_eq!(sim.state("web"), "waiting");
    let probe = sim
        .log
        .iter()
        .any(|e| matches!(e, Effect::StartProbe { pgid: 101, .. }));
    assert!(probe, "db's probe was started for its group");
    let effects = sim.feed(Input::Ready(sim.id("db")));
    assert_eq!(lines(&effects), ["db is ready", "web started (pid 102)"]);
    assert!(effects.contains(&Effect::StopProbe(1)));
}

#[test]
fn a_ready_timeout_on_the_first_start_stops_the_group_with_124() {
    let db = with(spec("db"), "ready-timeout", Some("2"));
    let db = with(db, "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![db, spec("web")]);
    assert!(sim.after(1999 * MS).is_empty(), "not before the timeout");
    let effects = sim.after(MS);
    assert!(has_line(&effects, "db: not ready after 2s"));
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)]);
    sim.obey(&effects);
    assert_eq!(spawns(&sim.log), [0], "web never started");
    assert_eq!(outcome_code(&sim), EXIT_NOT_READY);
    let outcome = sim.table.outcome().unwrap();
    assert_eq!(outcome.message.as_deref(), Some("db: not ready after 2s"));
}

#[test]
fn a_ready_timeout_after_the_first_start_goes_through_the_restart_policy() {
    let web = with(spec("web"), "ready", Some("file:/tmp/up"));
    let web = with(web, "ready-timeout", Some("1"));
    let web = with(web, "restart", Some("always"));
    let mut sim = Sim::group(vec![web]);
    sim.feed(Input::Ready(sim.id("web")));
    sim.exit("web", exited(1));
    sim.after(100 * MS);
    assert_eq!(sim.state("web"), "starting", "restarted");
    let effects = sim.after(Duration::from_secs(1));
    assert!(has_line(&effects, "web: not ready after 1s"));
    let effects = sim.obey(&effects);
    assert!(has_line(&effects, "web restarting in"), "{effects:?}");
    assert!(sim.table.outcome().is_none(), "the group goes on");
}

#[test]
fn a_ready_report_for_an_instance_that_is_gone_changes_nothing() {
    let web = with(spec("web"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![web, spec("next")]);
    let old = sim.id("web");
    sim.exit("web", exited(1));
    let effects = sim.feed(Input::Ready(old));
    assert!(lines(&effects).is_empty());
    assert_eq!(spawns(&sim.log), [0]);
}

#[test]
fn a_port_held_by_another_program_is_reported_by_name() {
    let web = with(spec("web"), "ready", Some("tcp:8080"));
    let mut sim = Sim::group(vec![web]);
    let effects = sim.feed(Input::PortTaken {
        instance: sim.id("web"),
        port: 8080,
    });
    assert_eq!(
        lines(&effects),
        ["web: port 8080 is taken by another program"]
    );
    assert_eq!(sim.state("web"), "starting", "still not ready");
}

#[test]
fn an_exit_line_belongs_after_the_output_of_its_instance() {
    let mut sim = Sim::group(vec![spec("web"), spec("other")]);
    let id = sim.id("web");
    let effects = sim.exit("web", exited(3));
    assert!(effects.contains(&Effect::LineAfterOutput {
        text: "web exited with code 3".to_string(),
        instance: id
    }));
}

#[test]
fn the_next_unit_is_stopped_after_the_output_of_the_last_one_ended() {
    let mut sim = Sim::new(settings(GROUP), vec![spec("db"), spec("web")]);
    sim.with_output = true;
    sim.feed(Input::Tick);
    let effects = sim.signal(TERM);
    assert_eq!(signals(&effects), [(Target::Group(2), TERM)]);
    let effects = sim.obey(&effects);
    assert!(signals(&effects).is_empty(), "web's output is still coming");
    let effects = sim.feed(Input::OutputEnded(2));
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)]);
}

#[test]
fn output_held_open_by_a_leftover_delays_the_next_step_only_a_little() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::new(settings(GROUP), vec![web]);
    sim.with_output = true;
    sim.feed(Input::Tick);
    sim.exit("web", exited(1));
    assert_eq!(sim.state("web"), "stopping", "waiting for its output");
    assert_eq!(sim.table.next_deadline(), Some(sim.now + 100 * MS));
    let effects = sim.after(100 * MS);
    assert!(has_line(&effects, "web restarting in 0.1s"), "{effects:?}");
}

// --- exits, restarts, backoff, start limit -----------------------------

#[test]
fn a_unit_that_exits_without_restart_stops_the_group_with_its_code() {
    let mut sim = Sim::group(vec![spec("web"), spec("worker")]);
    sim.exit("web", exited(3));
    let stop = sim
        .log
        .iter()
        .any(|e| matches!(e, Effect::Signal { to: Target::Group(2), signal } if *signal == TERM));
    assert!(stop, "worker was asked to stop");
    let term = signals(&sim.log);
    sim.obey(&[Effect::Signal {
        to: term[0].0,
        signal: TERM,
    }]);
    assert_eq!(outcome_code(&sim), 3);
    assert_eq!(sim.table.outcome().unwrap().reason, "web ended (exit 3)");
}

#[test]
fn on_failure_restarts_after_the_backoff_delay() {
    let web = with(spec("web"), "restart", Some("on-failure"));
    let mut sim = Sim::group(vec![web]);
    let effects = sim.exit("web", exited(1));
    assert!(has_line(&effects, "web restarting in 0.1s"));
    assert_eq!(sim.state("web"), "backoff");
    assert!(
        spawns(&sim.after(99 * MS)).is_empty(),
        "not before the delay"
    );
    assert_eq!(spawns(&sim.after(MS)), [0]);
    assert_eq!(sim.unit("web").restarts, 1);
    assert_eq!(sim.current("web").generation, 2);
}

#[test]
fn on_failure_lets_a_clean_exit_stop_the_group_with_0() {
    let web = with(spec("web"), "restart", Some("on-failure"));
    let mut sim = Sim::group(vec![web]);
    sim.exit("web", exited(0));
    assert_eq!(outcome_code(&sim), 0);
}

#[test]
fn always_restarts_after_a_clean_exit_too() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::group(vec![web]);
    sim.exit("web", exited(0));
    assert_eq!(sim.state("web"), "backoff");
}

#[test]
fn the_backoff_doubles_between_quick_failures() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::with_limit(vec![web], 10);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let effects = sim.exit("web", exited(1));
        delays.extend(
            lines(&effects)
                .into_iter()
                .filter(|l| l.contains("restarting")),
        );
        sim.after(Duration::from_secs(1));
    }
    assert_eq!(
        delays,
        ["0.1s", "0.2s", "0.4s", "0.8s", "1s"].map(|d| format!("web restarting in {d}"))
    );
}

#[test]
fn a_long_run_resets_the_backoff() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::with_limit(vec![web], 10);
    sim.exit("web", exited(1));
    sim.after(100 * MS);
    sim.exit("web", exited(1));
    sim.after(200 * MS);
    sim.after(Duration::from_secs(5));
    let effects = sim.exit("web", exited(1));
    assert!(has_line(&effects, "web restarting in 0.1s"), "{effects:?}");
}

#[test]
fn the_start_limit_gives_up_and_stops_the_group_with_the_units_code() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::group(vec![web]);
    for _ in 0..3 {
        sim.exit("web", exited(2));
        sim.after(Duration::from_secs(1));
    }
    let effects = sim.exit("web", exited(2));
    assert!(has_line(&effects, "web: gave up after 3 restarts in 60s"));
    assert_eq!(outcome_code(&sim), 2);
    let outcome = sim.table.outcome().unwrap();
    assert_eq!(
        outcome.message.as_deref(),
        Some("web: gave up after 3 restarts in 60s")
    );
}

#[test]
fn a_oneshot_exiting_0_leaves_the_others_running() {
    let migrate = with(spec("migrate"), "oneshot", None);
    let mut sim = Sim::group(vec![migrate, spec("web")]);
    sim.exit("migrate", exited(0));
    assert!(sim.table.outcome().is_none());
    assert_eq!(sim.state("migrate"), "exited");
    assert_eq!(sim.state("web"), "running");
}

#[test]
fn a_oneshot_exiting_1_stops_the_group_with_1() {
    let migrate = with(spec("migrate"), "oneshot", None);
    let mut sim = Sim::group(vec![migrate, spec("web")]);
    sim.exit("migrate", exited(1));
    let effects = sim.log.clone();
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), 1);
}

impl Sim {
    fn with_limit(specs: Vec<ProcessSpec>, limit: usize) -> Sim {
        let mut settings = settings(GROUP);
        settings.start_limit = limit;
        let mut sim = Sim::new(settings, specs);
        sim.feed(Input::Tick);
        sim
    }
}

// --- stopping ----------------------------------------------------------

#[test]
fn a_stop_request_stops_units_in_reverse_order_each_waited_for() {
    let mut sim = Sim::group(vec![spec("db"), spec("web"), spec("worker")]);
    let effects = sim.signal(TERM);
    assert!(has_line(&effects, "got SIGTERM: stopping"));
    assert_eq!(
        signals(&effects),
        [(Target::Group(3), TERM)],
        "worker first"
    );
    let effects = sim.obey(&effects);
    assert_eq!(signals(&effects), [(Target::Group(2), TERM)], "then web");
    let effects = sim.obey(&effects);
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)], "db last");
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), 0, "ended by the signal herd sent");
    assert_eq!(sim.table.outcome().unwrap().reason, "stopped on request");
}

#[test]
fn parallel_stop_asks_every_unit_at_once() {
    let mut sim = Sim::new(
        settings(Policy::Group {
            parallel_stop: true,
        }),
        vec![spec("db"), spec("web"), spec("worker")],
    );
    sim.feed(Input::Tick);
    let effects = sim.signal(libc::SIGINT);
    assert_eq!(
        signals(&effects),
        [3, 2, 1].map(|id| (Target::Group(id), TERM))
    );
}

#[test]
fn a_stopping_unit_gets_sigkill_after_its_grace() {
    let web = with(spec("web"), "grace", Some("5"));
    let mut sim = Sim::group(vec![web]);
    sim.signal(TERM);
    assert!(signals(&sim.after(4999 * MS)).is_empty(), "not before");
    let effects = sim.after(MS);
    assert!(has_line(
        &effects,
        "web still running after 5s grace: sending SIGKILL"
    ));
    assert_eq!(signals(&effects), [(Target::Group(1), KILL)]);
    assert!(
        signals(&sim.after(Duration::from_secs(60))).is_empty(),
        "once"
    );
}

#[test]
fn the_stop_signal_and_grace_are_each_units_own() {
    let web = with(spec("web"), "stop-signal", Some("QUIT"));
    let mut sim = Sim::group(vec![web]);
    let effects = sim.signal(TERM);
    assert!(has_line(&effects, "stopping web (SIGQUIT)"));
    assert_eq!(signals(&effects), [(Target::Group(1), libc::SIGQUIT)]);
    sim.obey(&effects);
    assert_eq!(
        outcome_code(&sim),
        0,
        "death by its own stop signal is clean"
    );
}

#[test]
fn a_second_stop_request_kills_everything_at_once() {
    let mut sim = Sim::group(vec![spec("db"), spec("web")]);
    sim.signal(TERM);
    let effects = sim.signal(libc::SIGINT);
    assert!(has_line(
        &effects,
        "got SIGINT while stopping: killing everything"
    ));
    assert_eq!(signals(&effects), [(Target::Group(2), KILL)]);
    let effects = sim.obey(&effects);
    assert_eq!(
        signals(&effects),
        [(Target::Group(1), KILL)],
        "the rest at once"
    );
}

#[test]
fn a_second_sigquit_does_not_kill_everything() {
    let mut sim = Sim::group(vec![spec("web")]);
    sim.signal(libc::SIGQUIT);
    let effects = sim.signal(libc::SIGQUIT);
    assert!(signals(&effects).is_empty());
}

#[test]
fn a_stop_during_a_backoff_cancels_the_restart() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::group(vec![web]);
    sim.exit("web", exited(1));
    sim.signal(TERM);
    assert!(spawns(&sim.after(Duration::from_secs(5))).is_empty());
    assert_eq!(outcome_code(&sim), 1, "web's last status was a failure");
}

#[test]
fn a_stop_before_later_units_started_never_starts_them() {
    let db = with(spec("db"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![db, spec("web")]);
    let effects = sim.signal(TERM);
    sim.obey(&effects);
    sim.feed(Input::Ready(1));
    assert_eq!(spawns(&sim.log), [0]);
    assert!(sim.table.outcome().is_some());
}

#[test]
fn leftovers_of_an_exited_main_process_get_the_stop_signal_and_then_sigkill() {
    let web = with(spec("web"), "grace", Some("1"));
    let mut sim = Sim::group(vec![web]);
    let effects = sim.exit_leaving("web", exited(0));
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)]);
    assert_eq!(sim.state("web"), "stopping");
    assert_eq!(sim.table.groups_to_watch().collect::<Vec<_>>(), [(1, 101)]);
    let effects = sim.after(Duration::from_secs(1));
    assert_eq!(signals(&effects), [(Target::Group(1), KILL)]);
    assert!(
        sim.table.outcome().is_none(),
        "not gone while its group lives"
    );
    sim.feed(Input::Group {
        instance: 1,
        state: GroupState::Empty,
    });
    assert_eq!(outcome_code(&sim), 0);
}

#[test]
fn an_unreachable_group_is_reported_once_and_not_waited_for() {
    let mut sim = Sim::group(vec![spec("web")]);
    let pid = sim.pid("web");
    let effects = sim.feed(Input::Exited {
        pid,
        status: exited(0),
        group: GroupState::Unreachable,
    });
    let said = lines(&effects);
    assert_eq!(
        said.iter()
            .filter(|l| l.contains("cannot be signalled"))
            .count(),
        1,
        "{said:?}"
    );
    assert!(signals(&effects).is_empty());
    assert_eq!(outcome_code(&sim), 0, "herd does not wait for it");
}

#[test]
fn a_requested_stop_exits_with_the_first_unclean_status() {
    let mut sim = Sim::group(vec![spec("db"), spec("web")]);
    sim.signal(TERM);
    sim.exit("web", exited(7));
    sim.exit("db", WaitStatus::Signaled(TERM));
    assert_eq!(outcome_code(&sim), 7);
}

// --- the stop deadline -----------------------------------------------

fn with_deadline(policy: Policy, secs: u64, specs: Vec<ProcessSpec>) -> Sim {
    let mut settings = settings(policy);
    settings.stop_deadline = Some(Duration::from_secs(secs));
    let mut sim = Sim::new(settings, specs);
    sim.feed(Input::Tick);
    sim
}

fn graced(name: &str, secs: &str) -> ProcessSpec {
    with(spec(name), "grace", Some(secs))
}

fn kills(effects: &[Effect]) -> Vec<Target> {
    signals(effects)
        .into_iter()
        .filter(|(_, signal)| *signal == KILL)
        .map(|(to, _)| to)
        .collect()
}

#[test]
fn at_the_stop_deadline_everything_left_gets_sigkill_each_said_once() {
    let names = ["a", "b", "c", "d"];
    let specs = names.iter().map(|name| graced(name, "10")).collect();
    let mut sim = with_deadline(GROUP, 9, specs);
    let effects = sim.signal(TERM);
    assert_eq!(signals(&effects), [(Target::Group(4), TERM)], "d first");
    assert_eq!(sim.table.next_deadline(), Some(sim.now + 9000 * MS));
    assert!(signals(&sim.after(8999 * MS)).is_empty(), "not before");
    let effects = sim.after(MS);
    assert_eq!(
        kills(&effects),
        [4, 3, 2, 1].map(Target::Group),
        "in stop order"
    );
    let said = names
        .map(|name| format!("{name} still running at the stop deadline (9s): sending SIGKILL"));
    assert_eq!(lines(&effects), said.into_iter().rev().collect::<Vec<_>>());
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), 128 + 9);
    assert_eq!(sim.table.outcome().unwrap().reason, "stopped on request");
    assert!(kills(&sim.log).len() == 4, "each once: {:?}", sim.log);
}

#[test]
fn each_grace_is_cut_to_what_is_left_of_the_stop_deadline() {
    let mut sim = with_deadline(GROUP, 5, vec![graced("db", "10"), graced("web", "3")]);
    let effects = sim.signal(TERM);
    assert_eq!(signals(&effects), [(Target::Group(2), TERM)]);
    // web's own grace ends first: the deadline changes nothing for it.
    let effects = sim.after(Duration::from_secs(3));
    assert!(has_line(
        &effects,
        "web still running after 3s grace: sending SIGKILL"
    ));
    let effects = sim.obey(&effects);
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)], "then db");
    // db's grace of 10 s is cut to the 2 s left.
    assert!(signals(&sim.after(1999 * MS)).is_empty());
    let effects = sim.after(MS);
    assert_eq!(kills(&effects), [Target::Group(1)]);
    assert_eq!(
        lines(&effects),
        ["db still running at the stop deadline (5s): sending SIGKILL"]
    );
}

#[test]
fn processes_that_stop_in_time_are_never_killed_by_the_deadline() {
    let mut sim = with_deadline(GROUP, 9, vec![graced("db", "10"), graced("web", "10")]);
    let effects = sim.signal(TERM);
    sim.now += Duration::from_secs(4);
    let effects = sim.obey(&effects);
    sim.now += Duration::from_secs(4);
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), 0);
    assert!(kills(&sim.after(Duration::from_secs(60))).is_empty());
}

#[test]
fn the_stop_deadline_runs_from_the_first_stop_request_whatever_its_cause() {
    // A request over the control socket starts it as a signal does.
    let mut sim = with_deadline(GROUP, 2, vec![graced("web", "10")]);
    sim.after(Duration::from_secs(30));
    assert_eq!(sim.control(Command::Stop), Answer::Ok(vec![]));
    assert!(kills(&sim.after(1999 * MS)).is_empty());
    assert_eq!(kills(&sim.after(MS)), [Target::Group(1)]);
    // A process that exits stops the group: the stop that follows has the
    // same budget.
    let mut sim = with_deadline(GROUP, 2, vec![graced("db", "10"), spec("web")]);
    sim.exit("web", exited(3));
    assert!(kills(&sim.after(1999 * MS)).is_empty());
    let effects = sim.after(MS);
    assert_eq!(kills(&effects), [Target::Group(1)]);
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), 3, "the cause's code");
}

#[test]
fn a_stop_of_one_process_is_not_bound_by_the_stop_deadline() {
    let mut sim = with_deadline(GROUP, 1, vec![graced("web", "5")]);
    sim.control(Command::Restart("web".into()));
    assert!(kills(&sim.after(Duration::from_secs(4))).is_empty());
    assert_eq!(
        kills(&sim.after(Duration::from_secs(1))),
        [Target::Group(1)]
    );
}

#[test]
fn a_stop_already_under_way_is_cut_at_the_stop_deadline() {
    let mut sim = with_deadline(GROUP, 1, vec![graced("web", "30")]);
    sim.control(Command::Restart("web".into()));
    sim.signal(TERM);
    assert_eq!(
        kills(&sim.after(Duration::from_secs(1))),
        [Target::Group(1)]
    );
}

#[test]
fn a_second_stop_request_does_not_move_the_stop_deadline() {
    let policy = Policy::Transparent {
        group_signal: false,
    };
    let mut sim = with_deadline(policy, 3, vec![graced("./server", "10")]);
    sim.signal(TERM);
    sim.now += Duration::from_secs(2);
    sim.signal(TERM);
    let effects = sim.after(Duration::from_secs(1));
    assert_eq!(kills(&effects), [Target::Group(1)]);
    let notes: Vec<&Effect> = effects
        .iter()
        .filter(|e| matches!(e, Effect::Note(n) if n.contains("stop deadline (3s) ran out")))
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "a single command says it with -v: {effects:?}"
    );
    assert!(lines(&effects).is_empty(), "and is otherwise silent");
    let effects = sim.exit("./server", WaitStatus::Signaled(KILL));
    assert!(signals(&effects).is_empty());
    assert_eq!(outcome_code(&sim), 137);
}

#[test]
fn a_stop_deadline_of_zero_kills_at_once() {
    let mut sim = with_deadline(GROUP, 0, vec![spec("db"), spec("web")]);
    let effects = sim.signal(TERM);
    assert_eq!(kills(&effects), [2, 1].map(Target::Group));
    assert_eq!(
        sim.table.next_deadline(),
        None,
        "{:?}",
        sim.table.status(sim.now)
    );
}

#[test]
fn as_pid_1_the_sweep_ends_at_the_stop_deadline_too() {
    let mut settings = settings(Policy::Transparent {
        group_signal: false,
    });
    settings.sweep = Some((TERM, Duration::from_secs(10)));
    settings.stop_deadline = Some(Duration::from_secs(3));
    let mut sim = Sim::new(settings, vec![spec("./server")]);
    sim.feed(Input::Tick);
    sim.signal(TERM);
    sim.now += Duration::from_secs(1);
    let effects = sim.exit("./server", WaitStatus::Signaled(TERM));
    assert!(effects.contains(&Effect::SignalAll(TERM)));
    assert!(!sim.after(1999 * MS).contains(&Effect::SignalAll(KILL)));
    assert!(sim.after(MS).contains(&Effect::SignalAll(KILL)));
}

#[test]
fn without_a_stop_the_stop_deadline_is_no_deadline() {
    let sim = with_deadline(GROUP, 1, vec![spec("web")]);
    assert_eq!(sim.table.next_deadline(), None);
}

// --- spawn failures ----------------------------------------------------

#[test]
fn a_spawn_failure_stops_the_group_before_later_units_start() {
    let mut sim = Sim::new(settings(GROUP), vec![spec("a"), spec("b"), spec("c")]);
    // a starts; b cannot be spawned; c must never be tried.
    let first = sim.table.step(Input::Tick, sim.now);
    assert_eq!(spawns(&first), [0]);
    let after_a = sim.table.step(
        Input::Spawned {
            instance: 1,
            pid: 101,
            has_terminal: false,
            has_output: false,
        },
        sim.now,
    );
    assert_eq!(spawns(&after_a), [1]);
    let effects = sim.table.step(
        Input::SpawnFailed {
            instance: 2,
            failure: Failure::new("executing /bin/sh", "argument list too long")
                .with_exit_code(126),
        },
        sim.now,
    );
    assert!(spawns(&effects).is_empty(), "c is not started");
    assert!(has_line(
        &effects,
        "b could not be started: executing /bin/sh: argument list too long"
    ));
    assert_eq!(
        signals(&effects),
        [(Target::Group(1), TERM)],
        "a is stopped"
    );
    sim.obey(&effects);
    let outcome = sim.table.outcome().unwrap();
    assert_eq!(outcome.code, 126);
    assert_eq!(
        outcome.message.as_deref(),
        Some("b could not be started: executing /bin/sh: argument list too long")
    );
}

#[test]
fn a_single_command_that_cannot_be_spawned_is_herds_own_failure() {
    let mut sim = Sim::new(
        settings(Policy::Transparent {
            group_signal: false,
        }),
        vec![spec("nope")],
    );
    sim.fail_spawns = true;
    sim.feed(Input::Tick);
    let outcome = sim.table.outcome().unwrap();
    assert_eq!(outcome.code, 126);
    assert!(outcome.failure.is_some());
    assert!(
        lines(&sim.log).is_empty(),
        "a single command has no event lines"
    );
}

// --- signals -----------------------------------------------------------

#[test]
fn other_signals_go_to_every_live_group() {
    let mut sim = Sim::group(vec![spec("a"), spec("b")]);
    let effects = sim.signal(libc::SIGUSR2);
    assert_eq!(
        signals(&effects),
        [
            (Target::Group(1), libc::SIGUSR2),
            (Target::Group(2), libc::SIGUSR2)
        ]
    );
}

#[test]
fn ctrl_z_stops_every_group_and_herd() {
    let mut sim = Sim::group(vec![spec("a")]);
    let effects = sim.signal(libc::SIGTSTP);
    assert_eq!(signals(&effects), [(Target::Group(1), libc::SIGTSTP)]);
    assert_eq!(effects.last(), Some(&Effect::StopSelf));
}

#[test]
fn sigusr1_reopens_the_log_when_there_is_one_and_is_forwarded_otherwise() {
    let mut with_log = settings(GROUP);
    with_log.reopens_log = true;
    let mut sim = Sim::new(with_log, vec![spec("a")]);
    sim.feed(Input::Tick);
    assert_eq!(sim.signal(libc::SIGUSR1), [Effect::ReopenLog]);
    let mut sim = Sim::group(vec![spec("a")]);
    assert_eq!(
        signals(&sim.signal(libc::SIGUSR1)),
        [(Target::Group(1), libc::SIGUSR1)]
    );
}

// --- control requests --------------------------------------------------

#[test]
fn stopping_one_unit_keeps_the_group_and_start_brings_it_back() {
    let mut sim = Sim::group(vec![spec("web"), spec("worker")]);
    assert_eq!(
        sim.control(Command::StopProcess("web".into())),
        Answer::Ok(vec![])
    );
    sim.terminated(1);
    assert_eq!(sim.state("web"), "stopped");
    assert!(sim.table.outcome().is_none());
    assert_eq!(
        sim.control(Command::StartProcess("web".into())),
        Answer::Ok(vec![])
    );
    assert_eq!(sim.state("web"), "running");
    assert_eq!(
        sim.control(Command::StartProcess("web".into())),
        Answer::Error("web is already running".into())
    );
}

#[test]
fn restart_gives_a_new_instance_and_counts_it() {
    let mut sim = Sim::group(vec![spec("web")]);
    let before = sim.id("web");
    sim.control(Command::Restart("web".into()));
    sim.terminated(before);
    assert_ne!(sim.id("web"), before);
    assert_eq!(sim.unit("web").restarts, 1);
    assert_eq!(sim.state("web"), "running");
}

#[test]
fn restart_of_a_stopped_unit_starts_it() {
    let mut sim = Sim::group(vec![spec("web"), spec("other")]);
    sim.control(Command::StopProcess("web".into()));
    sim.terminated(1);
    sim.control(Command::Restart("web".into()));
    assert_eq!(sim.state("web"), "running");
}

#[test]
fn requests_for_unknown_units_are_refused() {
    let mut sim = Sim::group(vec![spec("web")]);
    assert_eq!(
        sim.control(Command::Restart("nope".into())),
        Answer::Error("no process named 'nope'".into())
    );
}

#[test]
fn only_status_and_stop_are_answered_while_stopping() {
    let mut sim = Sim::group(vec![spec("web")]);
    sim.signal(TERM);
    assert_eq!(
        sim.control(Command::Restart("web".into())),
        Answer::Error("the group is stopping".into())
    );
    assert!(matches!(sim.control(Command::Status), Answer::Ok(_)));
    assert_eq!(sim.control(Command::Stop), Answer::Ok(vec![]));
}

#[test]
fn a_signal_request_goes_to_the_units_group() {
    let mut sim = Sim::group(vec![spec("web")]);
    sim.control(Command::Signal("web".into(), libc::SIGHUP));
    assert!(sim.log.contains(&Effect::Signal {
        to: Target::Group(1),
        signal: libc::SIGHUP
    }));
}

#[test]
fn send_needs_a_stdin_pipe() {
    let mut sim = Sim::group(vec![spec("web")]);
    assert_eq!(
        sim.control(Command::Send("web".into())),
        Answer::Error("web was not started with --stdin-pipe".into())
    );
    let units = vec![UnitSetup {
        spec: spec("web"),
        stdin_pipe: true,
    }];
    let mut table = Table::new(settings(GROUP), units);
    let now = Instant::now();
    table.step(Input::Tick, now);
    table.step(
        Input::Spawned {
            instance: 1,
            pid: 101,
            has_terminal: false,
            has_output: false,
        },
        now,
    );
    let effects = table.step(
        Input::Control {
            client: 1,
            command: Command::Send("web".into()),
        },
        now,
    );
    assert!(effects.contains(&Effect::Reply {
        client: 1,
        answer: Answer::Stdin(1)
    }));
}

#[test]
fn status_rows_show_states_pids_and_last_exits() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::group(vec![web, spec("worker")]);
    sim.exit("web", exited(4));
    let rows = sim.table.status(sim.now);
    assert_eq!(rows[0].state, "backoff");
    assert_eq!(rows[0].pid, "-");
    assert_eq!(rows[0].last_exit.as_deref(), Some("exit 4"));
    assert_eq!(rows[1].state, "running");
    assert_eq!(rows[1].pid, "102");
}

// --- herd start's report -----------------------------------------------

#[test]
fn herd_start_is_told_ready_once_units_without_checks_have_settled() {
    let mut settings = settings(GROUP);
    settings.settle = Some(500 * MS);
    let mut sim = Sim::new(settings, vec![spec("web")]);
    sim.feed(Input::Tick);
    assert!(!sim.log.contains(&Effect::ReportReady));
    assert_eq!(sim.table.next_deadline(), Some(sim.now + 500 * MS));
    let effects = sim.after(500 * MS);
    assert_eq!(effects, [Effect::ReportReady]);
    assert!(
        !sim.after(Duration::from_secs(1))
            .contains(&Effect::ReportReady),
        "once"
    );
}

#[test]
fn herd_start_is_told_ready_when_a_ready_check_passes() {
    let mut settings = settings(GROUP);
    settings.settle = Some(Duration::from_secs(5));
    let web = with(spec("web"), "ready", Some("tcp:80"));
    let mut sim = Sim::new(settings, vec![web]);
    sim.feed(Input::Tick);
    let effects = sim.feed(Input::Ready(1));
    assert!(effects.contains(&Effect::ReportReady));
}

#[test]
fn herd_start_is_never_told_ready_when_a_unit_exits_before_settling() {
    let mut settings = settings(GROUP);
    settings.settle = Some(500 * MS);
    let mut sim = Sim::new(settings, vec![spec("web")]);
    sim.feed(Input::Tick);
    sim.now += 100 * MS;
    sim.exit("web", exited(2));
    sim.after(Duration::from_secs(1));
    assert!(!sim.log.contains(&Effect::ReportReady));
    assert_eq!(sim.table.outcome().unwrap().reason, "web ended (exit 2)");
}

// --- a single command --------------------------------------------------

#[test]
fn a_single_command_passes_its_exit_code_through() {
    for (status, code) in [
        (exited(0), 0),
        (exited(255), 255),
        (WaitStatus::Signaled(TERM), 143),
        (WaitStatus::Signaled(KILL), 137),
    ] {
        let mut sim = Sim::single(false);
        sim.exit("./server", status);
        assert_eq!(outcome_code(&sim), code, "{status:?}");
    }
}

#[test]
fn a_single_command_gets_signals_at_its_pid_or_with_group_signal_its_group() {
    let mut sim = Sim::single(false);
    assert_eq!(
        signals(&sim.signal(libc::SIGHUP)),
        [(Target::Process(1), libc::SIGHUP)]
    );
    let mut sim = Sim::single(true);
    assert_eq!(
        signals(&sim.signal(libc::SIGHUP)),
        [(Target::Group(1), libc::SIGHUP)]
    );
}

#[test]
fn a_stop_request_to_a_single_command_is_forwarded_and_starts_the_grace() {
    let mut sim = Sim::single(false);
    let effects = sim.signal(TERM);
    assert_eq!(signals(&effects), [(Target::Process(1), TERM)]);
    assert_eq!(sim.state("./server"), "running", "until it exits");
    let effects = sim.after(Duration::from_secs(10));
    assert_eq!(signals(&effects), [(Target::Group(1), KILL)]);
    let effects = sim.exit("./server", WaitStatus::Signaled(KILL));
    assert!(signals(&effects).is_empty());
    assert_eq!(outcome_code(&sim), 137);
}

#[test]
fn after_a_single_command_exits_its_leftovers_are_stopped_then_killed() {
    let mut sim = Sim::single(false);
    let effects = sim.exit_leaving("./server", exited(0));
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)]);
    assert!(signals(&sim.signal(libc::SIGHUP)) == [(Target::Group(1), libc::SIGHUP)]);
    let effects = sim.after(Duration::from_secs(10));
    assert_eq!(signals(&effects), [(Target::Group(1), KILL)]);
    sim.feed(Input::Group {
        instance: 1,
        state: GroupState::Empty,
    });
    assert_eq!(outcome_code(&sim), 0, "the command's own status");
}

#[test]
fn a_single_command_asked_to_stop_then_exiting_leaves_its_group_the_stop_signal() {
    let mut sim = Sim::single(false);
    sim.signal(TERM);
    let effects = sim.exit_leaving("./server", WaitStatus::Signaled(TERM));
    assert_eq!(signals(&effects), [(Target::Group(1), TERM)]);
}

#[test]
fn a_single_command_stopped_by_the_terminal_stops_herd_and_sigcont_hands_it_back() {
    let units = vec![UnitSetup {
        spec: spec("./sh"),
        stdin_pipe: false,
    }];
    let mut table = Table::new(
        settings(Policy::Transparent {
            group_signal: false,
        }),
        units,
    );
    let now = Instant::now();
    table.step(Input::Tick, now);
    table.step(
        Input::Spawned {
            instance: 1,
            pid: 101,
            has_terminal: true,
            has_output: false,
        },
        now,
    );
    let effects = table.step(
        Input::Stopped {
            pid: 101,
            signal: libc::SIGTSTP,
        },
        now,
    );
    assert_eq!(effects.last(), Some(&Effect::StopSelf));
    let effects = table.step(Input::Signal(libc::SIGCONT), now);
    assert_eq!(effects.first(), Some(&Effect::ResumeTerminal(1)));
    assert_eq!(
        signals(&effects),
        [(Target::Group(1), libc::SIGCONT)],
        "SIGCONT wakes the whole group"
    );
}

#[test]
fn a_single_command_answers_status_and_stop_only() {
    let mut sim = Sim::single(false);
    assert!(matches!(sim.control(Command::Status), Answer::Ok(_)));
    assert!(matches!(
        sim.control(Command::Restart("x".into())),
        Answer::Error(_)
    ));
    assert_eq!(sim.control(Command::Stop), Answer::Ok(vec![]));
    assert!(sim.log.contains(&Effect::Signal {
        to: Target::Process(1),
        signal: TERM
    }));
}

#[test]
fn a_single_command_notes_its_decisions_and_has_no_event_lines() {
    let mut sim = Sim::single(false);
    sim.exit("./server", exited(4));
    let notes: Vec<&String> = sim
        .log
        .iter()
        .filter_map(|e| match e {
            Effect::Note(text) => Some(text),
            _ => None,
        })
        .collect();
    assert!(notes.iter().any(|n| n.starts_with("spawned pid 101")));
    assert!(notes.iter().any(|n| n.contains("(exit 4)")));
    assert!(lines(&sim.log).is_empty());
}

// --- PID 1 -------------------------------------------------------------

#[test]
fn as_pid_1_the_rest_of_the_namespace_is_swept_before_the_end() {
    let mut settings = settings(Policy::Transparent {
        group_signal: false,
    });
    settings.sweep = Some((TERM, Duration::from_secs(2)));
    let mut sim = Sim::new(settings, vec![spec("./server")]);
    sim.feed(Input::Tick);
    let effects = sim.exit("./server", exited(5));
    assert!(effects.contains(&Effect::SignalAll(TERM)));
    assert!(
        sim.table.outcome().is_none(),
        "not before the namespace is empty"
    );
    let effects = sim.after(Duration::from_secs(2));
    assert!(effects.contains(&Effect::SignalAll(KILL)));
    sim.feed(Input::NoChildren);
    assert_eq!(outcome_code(&sim), 5);
}

#[test]
fn an_adopted_orphan_is_only_noted() {
    let mut sim = Sim::group(vec![spec("web")]);
    let effects = sim.feed(Input::Exited {
        pid: 4242,
        status: exited(0),
        group: GroupState::Empty,
    });
    assert_eq!(
        effects,
        [Effect::Note("reaped adopted pid 4242 (exit 0)".into())]
    );
}

// --- time --------------------------------------------------------------

#[test]
fn deadlines_never_overflow() {
    let now = Instant::now();
    assert!(deadline(now, Duration::MAX) > now);
    let web = ProcessSpec {
        grace: Duration::MAX,
        ready_timeout: Duration::MAX,
        ..spec("web")
    };
    let web = with(web, "ready", Some("file:/x"));
    let mut sim = Sim::group(vec![web]);
    sim.signal(TERM);
    sim.after(Duration::from_secs(3600));
    assert!(sim.table.next_deadline().is_some());
}

#[test]
fn the_next_deadline_is_the_earliest_one() {
    let slow = with(spec("slow"), "grace", Some("9"));
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::new(
        settings(Policy::Group {
            parallel_stop: true,
        }),
        vec![slow, web],
    );
    sim.feed(Input::Tick);
    assert_eq!(sim.table.next_deadline(), None, "nothing is due");
    sim.exit("web", exited(1));
    assert_eq!(sim.table.next_deadline(), Some(sim.now + 100 * MS));
}

#[test]
fn exit_codes_follow_the_shell_convention() {
    assert_eq!(exit_code(exited(0)), 0);
    assert_eq!(exit_code(exited(255)), 255);
    assert_eq!(exit_code(WaitStatus::Signaled(TERM)), 143);
    assert_eq!(exit_code(WaitStatus::Signaled(KILL)), 137);
}

#[test]
fn durations_read_as_seconds() {
    assert_eq!(seconds(Duration::from_millis(100)), "0.1s");
    assert_eq!(seconds(Duration::from_secs(30)), "30s");
    assert_eq!(seconds(Duration::from_micros(1_234_567)), "1.235s");
}

// --- reload ------------------------------------------------------------

const WAITER: ClientId = 9;

impl Sim {
    /// `herd reload [NAME]` from client `WAITER`.
    fn reload(&mut self, name: Option<&str>) -> Vec<Effect> {
        self.feed(Input::Control {
            client: WAITER,
            command: Command::Reload(name.map(str::to_string)),
        })
    }

    /// The unit's instances, oldest first.
    fn instances(&self, name: &str) -> Vec<Instance> {
        self.unit(name).instances.clone()
    }

    fn pid_of(&self, id: InstanceId) -> Pid {
        self.table.instance(id).and_then(|(_, i)| i.pid).unwrap()
    }

    fn exit_instance(&mut self, id: InstanceId, status: WaitStatus) -> Vec<Effect> {
        let pid = self.pid_of(id);
        self.feed(Input::Exited {
            pid,
            status,
            group: GroupState::Empty,
        })
    }

    fn note_of(&self, name: &str) -> Option<String> {
        let rows = self.table.status(self.now);
        rows.into_iter().find(|r| r.name == name).unwrap().reload
    }
}

fn reply_to(effects: &[Effect], client: ClientId) -> Option<Answer> {
    effects.iter().find_map(|effect| match effect {
        Effect::Reply { client: c, answer } if *c == client => Some(answer.clone()),
        _ => None,
    })
}

fn error_text(answer: Option<Answer>) -> String {
    match answer {
        Some(Answer::Error(text)) => text,
        other => panic!("not an error: {other:?}"),
    }
}

/// A group of one `web` with a ready check, its first generation ready.
fn serving_web() -> (Sim, InstanceId) {
    let web = with(spec("web"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![web, spec("db")]);
    let first = sim.id("web");
    sim.feed(Input::Ready(first));
    assert_eq!(sim.state("web"), "running");
    (sim, first)
}

#[test]
fn a_reload_starts_a_new_generation_beside_the_serving_one() {
    let (mut sim, first) = serving_web();
    let effects = sim.reload(Some("web"));
    assert_eq!(spawns(&effects), [0]);
    assert!(signals(&effects).is_empty(), "the old one keeps serving");
    assert_eq!(reply_to(&effects, WAITER), None, "answered when it ends");
    let instances = sim.instances("web");
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[0].id, first);
    assert_eq!(instances[1].generation, 2);
    assert_eq!(sim.state("web"), "running");
    assert_eq!(sim.pid("web"), pid_of_instance(instances[1].id));
    assert_eq!(sim.note_of("web").as_deref(), Some("generation 2 starting"));
}

#[test]
fn the_old_generation_is_stopped_only_once_the_new_one_is_ready() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let new = sim.id("web");
    let effects = sim.feed(Input::Ready(new));
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    assert_eq!(
        reply_to(&effects, WAITER),
        Some(Answer::Ok(vec![("reloaded".into(), "1".into())]))
    );
    assert!(effects.contains(&Effect::ReloadFinished { ok: true }));
    assert_eq!(sim.note_of("web").as_deref(), Some("1 draining"));
    let effects = sim.terminated(first);
    assert!(!has_line(&effects, "restarting"));
    assert_eq!(sim.state("web"), "running");
    assert_eq!(
        sim.unit("web").last_exit,
        None,
        "a replaced run's end is not the unit's"
    );
    assert_eq!(sim.note_of("web"), None);
    assert!(!sim.table.stopping);
}

#[test]
fn a_new_generation_that_exits_before_ready_fails_the_reload_and_the_old_goes_on() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let new = sim.id("web");
    let effects = sim.exit_instance(new, exited(3));
    let why = error_text(reply_to(&effects, WAITER));
    assert!(
        why.contains("generation 2 ended before it was ready (exit 3)"),
        "{why}"
    );
    assert!(signals(&effects).is_empty(), "the old one is left alone");
    assert!(spawns(&effects).is_empty(), "no restart of the unit");
    assert!(effects.contains(&Effect::ReloadFinished { ok: false }));
    assert_eq!(sim.instances("web").len(), 1);
    assert_eq!(sim.id("web"), first);
    assert_eq!(sim.state("web"), "running");
    assert!(sim.note_of("web").unwrap().contains("reload failed"));
    assert!(!sim.table.stopping);
}

#[test]
fn a_new_generation_not_ready_in_time_is_stopped_and_the_old_goes_on() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let new = sim.id("web");
    let effects = sim.after(Duration::from_secs(31));
    assert_eq!(signals(&effects), [(Target::Group(new), TERM)]);
    let why = error_text(reply_to(&effects, WAITER));
    assert!(why.contains("was not ready after 30s"), "{why}");
    sim.terminated(new);
    assert_eq!(sim.instances("web").len(), 1);
    assert_eq!(sim.id("web"), first);
    assert!(!sim.table.stopping, "a failed reload never stops the group");
}

#[test]
fn a_new_generation_that_cannot_be_spawned_fails_the_reload() {
    let (mut sim, first) = serving_web();
    sim.fail_spawns = true;
    let effects = sim.reload(Some("web"));
    let why = error_text(reply_to(&effects, WAITER));
    assert!(why.contains("could not be started"), "{why}");
    assert_eq!(sim.id("web"), first);
    assert!(!sim.table.stopping);
}

#[test]
fn a_trigger_while_the_new_generation_is_not_ready_replaces_it() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let second = sim.id("web");
    let effects = sim.feed(Input::Control {
        client: 10,
        command: Command::Reload(Some("web".into())),
    });
    assert_eq!(signals(&effects), [(Target::Group(second), TERM)]);
    assert_eq!(spawns(&effects), [0]);
    let third = sim.id("web");
    sim.terminated(second);
    let effects = sim.feed(Input::Ready(third));
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    assert!(matches!(reply_to(&effects, WAITER), Some(Answer::Ok(_))));
    assert!(matches!(reply_to(&effects, 10), Some(Answer::Ok(_))));
    assert_eq!(sim.current("web").generation, 3);
}

#[test]
fn five_triggers_in_a_row_leave_one_new_generation() {
    let (mut sim, _) = serving_web();
    for _ in 0..5 {
        sim.reload(Some("web"));
    }
    let on_trial: Vec<_> = sim
        .instances("web")
        .into_iter()
        .filter(|i| !i.superseded)
        .collect();
    assert_eq!(on_trial.len(), 2, "the serving one and the newest");
    assert_eq!(sim.current("web").generation, 6);
}

#[test]
fn several_old_generations_may_drain_at_once() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let second = sim.id("web");
    sim.feed(Input::Ready(second));
    sim.reload(Some("web"));
    let third = sim.id("web");
    let effects = sim.feed(Input::Ready(third));
    assert_eq!(signals(&effects), [(Target::Group(second), TERM)]);
    assert_eq!(sim.instances("web").len(), 3);
    assert_eq!(sim.note_of("web").as_deref(), Some("2 draining"));
    sim.terminated(first);
    sim.terminated(second);
    assert_eq!(sim.instances("web").len(), 1);
}

#[test]
fn an_old_generation_that_ignores_its_stop_signal_gets_sigkill_after_its_grace() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let new = sim.id("web");
    sim.feed(Input::Ready(new));
    let effects = sim.after(Duration::from_secs(11));
    assert_eq!(signals(&effects), [(Target::Group(first), KILL)]);
}

#[test]
fn the_serving_generation_dying_during_a_reload_leaves_the_new_one_to_take_over() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let new = sim.id("web");
    let effects = sim.exit_instance(first, exited(1));
    assert!(!has_line(&effects, "restarting"));
    assert!(!sim.table.stopping);
    let effects = sim.feed(Input::Ready(new));
    assert!(matches!(reply_to(&effects, WAITER), Some(Answer::Ok(_))));
    assert_eq!(sim.instances("web").len(), 1);
    assert_eq!(sim.state("web"), "running");
}

#[test]
fn when_every_generation_is_gone_the_restart_policy_decides() {
    let web = with(spec("web"), "ready", Some("file:/tmp/up"));
    let web = with(web, "restart", Some("on-failure"));
    let mut sim = Sim::group(vec![web]);
    let first = sim.id("web");
    sim.feed(Input::Ready(first));
    sim.reload(None);
    let new = sim.id("web");
    sim.exit_instance(first, exited(1));
    let effects = sim.exit_instance(new, exited(2));
    assert!(
        has_line(&effects, "web restarting in"),
        "{:?}",
        lines(&effects)
    );
    assert_eq!(sim.unit("web").last_exit, Some(exited(1)));
}

#[test]
fn a_stop_during_a_reload_stops_every_generation_and_fails_the_reload() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let new = sim.id("web");
    let effects = sim.signal(TERM);
    let why = error_text(reply_to(&effects, WAITER));
    assert!(why.contains("herd is stopping"), "{why}");
    // db first, in reverse start order, then every generation of web.
    let db = sim.id("db");
    let effects = sim.terminated(db);
    let stopped: Vec<_> = signals(&effects).into_iter().map(|(to, _)| to).collect();
    assert!(stopped.contains(&Target::Group(first)));
    assert!(stopped.contains(&Target::Group(new)));
    let effects = sim.reload(Some("web"));
    assert!(error_text(reply_to(&effects, WAITER)).contains("stopping"));
}

#[test]
fn a_reload_of_what_is_not_running_or_does_not_exist_is_refused() {
    let (mut sim, _) = serving_web();
    let effects = sim.reload(Some("nope"));
    assert_eq!(
        error_text(reply_to(&effects, WAITER)),
        "no process named 'nope'"
    );
    let db = sim.id("db");
    sim.exit_instance(db, exited(0));
    let mut sim = Sim::group(vec![with(spec("db"), "oneshot", None), spec("web")]);
    let db = sim.id("db");
    sim.exit_instance(db, exited(0));
    let effects = sim.reload(Some("db"));
    assert_eq!(error_text(reply_to(&effects, WAITER)), "db is not running");
}

/// Two units with ready checks, both serving, reloaded one at a time;
/// and the id of `a`'s serving instance.
fn serving_in_batches_of_one() -> (Sim, InstanceId) {
    let ready = |name| with(spec(name), "ready", Some("file:/tmp/up"));
    let mut config = settings(GROUP);
    config.reload_batch = 1;
    let mut sim = Sim::new(config, vec![ready("a"), ready("b")]);
    sim.feed(Input::Tick);
    let a1 = sim.id("a");
    sim.feed(Input::Ready(a1));
    let b1 = sim.id("b");
    sim.feed(Input::Ready(b1));
    (sim, a1)
}

#[test]
fn a_reload_batch_replaces_units_a_batch_at_a_time() {
    let (mut sim, a1) = serving_in_batches_of_one();
    let effects = sim.reload(None);
    assert_eq!(spawns(&effects), [0], "b waits for a's new generation");
    let a2 = sim.id("a");
    let effects = sim.feed(Input::Ready(a2));
    assert_eq!(signals(&effects), [(Target::Group(a1), TERM)]);
    assert_eq!(spawns(&effects), [1]);
    assert_eq!(reply_to(&effects, WAITER), None);
    let b2 = sim.id("b");
    let effects = sim.feed(Input::Ready(b2));
    assert_eq!(
        reply_to(&effects, WAITER),
        Some(Answer::Ok(vec![("reloaded".into(), "2".into())]))
    );
}

#[test]
fn a_failed_batch_ends_the_reload_before_the_next_one() {
    let (mut sim, _) = serving_in_batches_of_one();
    sim.reload(None);
    let a2 = sim.id("a");
    let effects = sim.exit_instance(a2, exited(1));
    assert!(spawns(&effects).is_empty(), "b is not reloaded");
    assert!(error_text(reply_to(&effects, WAITER)).contains("a: reload failed"));
}

#[test]
fn a_single_command_outlives_its_replaced_generation() {
    let mut sim = Sim::single(false);
    let first = sim.id("./server");
    let effects = sim.reload(None);
    assert_eq!(spawns(&effects), [0]);
    let second = sim.id("./server");
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    assert!(matches!(reply_to(&effects, WAITER), Some(Answer::Ok(_))));
    sim.terminated(first);
    assert_eq!(sim.table.outcome(), None, "herd goes on with generation 2");
    let effects = sim.signal(TERM);
    assert_eq!(signals(&effects), [(Target::Process(second), TERM)]);
    sim.exit_instance(second, WaitStatus::Signaled(TERM));
    assert_eq!(outcome_code(&sim), 128 + 15);
}

#[test]
fn sighup_reloads_when_herd_holds_sockets_and_is_forwarded_otherwise() {
    let mut config = settings(GROUP);
    config.hup_reloads = true;
    let mut sim = Sim::new(config, vec![spec("web")]);
    sim.feed(Input::Tick);
    let first = sim.id("web");
    let effects = sim.signal(libc::SIGHUP);
    assert_eq!(spawns(&effects), [0]);
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    let mut sim = Sim::group(vec![spec("web")]);
    let first = sim.id("web");
    let effects = sim.signal(libc::SIGHUP);
    assert!(spawns(&effects).is_empty());
    assert_eq!(signals(&effects), [(Target::Group(first), libc::SIGHUP)]);
}

#[test]
fn a_watched_file_reloads_every_serving_unit() {
    let mut sim = Sim::group(vec![spec("web"), spec("worker")]);
    let effects = sim.feed(Input::Reload);
    assert_eq!(spawns(&effects), [0, 1]);
    assert!(effects.contains(&Effect::ReloadStarted));
    assert!(effects.contains(&Effect::ReloadFinished { ok: true }));
}

// The notify socket: whose datagram it is, and what it changes.

impl Sim {
    /// A datagram saying `text` from `pid`, of process group `pgid`.
    fn notify(&mut self, pid: Pid, pgid: Option<Pid>, text: &str) -> Vec<Effect> {
        let notice = crate::notify::parse(text.as_bytes()).unwrap();
        self.feed(Input::Notify { pid, pgid, notice })
    }

    fn status_text(&self, name: &str) -> Option<String> {
        let rows = self.table.status(self.now);
        rows.into_iter()
            .find(|r| r.name == name)
            .unwrap()
            .status_text
    }
}

fn notes(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Note(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn notify_db() -> Sim {
    let db = with(spec("db"), "ready", Some("notify"));
    Sim::group(vec![db, spec("web")])
}

#[test]
fn a_notify_unit_holds_back_the_next_until_its_ready_datagram() {
    let mut sim = notify_db();
    assert_eq!(sim.state("db"), "starting");
    assert_eq!(sim.state("web"), "waiting");
    let probe = sim
        .log
        .iter()
        .any(|e| matches!(e, Effect::StartProbe { .. }));
    assert!(!probe, "no probe: the datagram says it");
    let pid = sim.pid("db");
    assert!(lines(&sim.notify(pid, Some(pid), "STATUS=warming up")).is_empty());
    assert_eq!(sim.state("db"), "starting");
    let effects = sim.notify(pid, Some(pid), "READY=1");
    assert_eq!(lines(&effects), ["db is ready", "web started (pid 102)"]);
    assert_eq!(sim.table.readiness(), (2, 2));
}

#[test]
fn a_ready_datagram_from_a_member_of_the_process_group_counts() {
    let mut sim = notify_db();
    let pgid = sim.current("db").pgid;
    let effects = sim.notify(4321, pgid, "READY=1");
    assert!(has_line(&effects, "db is ready"), "{effects:?}");
}

#[test]
fn a_declared_main_pid_speaks_for_the_instance() {
    let mut sim = notify_db();
    let pid = sim.pid("db");
    let effects = sim.notify(pid, Some(pid), "MAINPID=777");
    assert_eq!(notes(&effects), ["db: its main pid is 777"]);
    // In a process group of its own, as a daemon that forked would be.
    let effects = sim.notify(777, Some(777), "READY=1");
    assert!(has_line(&effects, "db is ready"), "{effects:?}");
}

#[test]
fn datagrams_from_strangers_change_nothing_and_are_noted_once_a_second() {
    let mut sim = notify_db();
    let effects = sim.notify(5000, Some(5000), "READY=1\nSTATUS=owned");
    assert!(lines(&effects).is_empty());
    assert_eq!(
        notes(&effects),
        ["notify: ignored a datagram from pid 5000, which is none of herd's processes"]
    );
    assert!(
        notes(&sim.notify(5001, None, "READY=1")).is_empty(),
        "quiet"
    );
    sim.now += Duration::from_secs(1);
    assert_eq!(notes(&sim.notify(5001, None, "READY=1")).len(), 1);
    assert_eq!(sim.state("db"), "starting");
    assert_eq!(sim.status_text("db"), None);
}

#[test]
fn a_ready_datagram_is_ignored_when_the_unit_has_another_check() {
    let db = with(spec("db"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![db, spec("web")]);
    let pid = sim.pid("db");
    let effects = sim.notify(pid, Some(pid), "READY=1");
    assert!(lines(&effects).is_empty());
    assert_eq!(
        notes(&effects),
        ["db: READY=1 ignored: its ready check is another"]
    );
    assert_eq!(sim.state("db"), "starting");
}

#[test]
fn extend_timeout_pushes_the_ready_deadline_out_but_never_in() {
    let db = with(spec("db"), "ready", Some("notify"));
    let db = with(db, "ready-timeout", Some("2"));
    let mut sim = Sim::group(vec![db]);
    let pid = sim.pid("db");
    sim.now += Duration::from_secs(1);
    let effects = sim.notify(pid, Some(pid), "EXTEND_TIMEOUT_USEC=5000000");
    assert_eq!(
        notes(&effects),
        ["db: ready deadline extended to 5s from now"]
    );
    let effects = sim.notify(pid, Some(pid), "EXTEND_TIMEOUT_USEC=1");
    assert!(notes(&effects).is_empty(), "a shorter wait is no extension");
    assert!(
        sim.after(4999 * MS).is_empty(),
        "not before the new deadline"
    );
    let effects = sim.after(MS);
    assert!(has_line(&effects, "db: not ready after 2s"), "{effects:?}");
}

#[test]
fn extend_timeout_is_bounded_and_ignored_once_ready() {
    let mut sim = notify_db();
    let pid = sim.pid("db");
    sim.notify(pid, Some(pid), "EXTEND_TIMEOUT_USEC=18446744073709551615");
    let Phase::Starting { deadline } = sim.current("db").phase else {
        panic!("still starting");
    };
    assert_eq!(deadline, sim.now + crate::notify::MAX_EXTENSION);
    sim.notify(pid, Some(pid), "READY=1");
    assert!(notes(&sim.notify(pid, Some(pid), "EXTEND_TIMEOUT_USEC=9000000")).is_empty());
    assert_eq!(sim.current("db").phase, Phase::Ready);
}

#[test]
fn a_ready_timeout_comes_when_no_ready_datagram_does() {
    let db = with(spec("db"), "ready", Some("notify"));
    let db = with(db, "ready-timeout", Some("1"));
    let mut sim = Sim::group(vec![db, spec("web")]);
    let effects = sim.after(Duration::from_secs(1));
    assert!(has_line(&effects, "db: not ready after 1s"));
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), EXIT_NOT_READY);
}

#[test]
fn status_reloading_stopping_and_watchdog_are_kept_for_herd_status() {
    let mut sim = notify_db();
    let pid = sim.pid("db");
    sim.notify(pid, Some(pid), "READY=1\nSTATUS=serving 3 clients");
    assert_eq!(sim.status_text("db").as_deref(), Some("serving 3 clients"));
    assert_eq!(sim.state("db"), "running");
    sim.notify(pid, Some(pid), "RELOADING=1\nMONOTONIC_USEC=12");
    assert_eq!(sim.state("db"), "reloading");
    sim.notify(pid, Some(pid), "READY=1");
    assert_eq!(sim.state("db"), "running");
    sim.notify(pid, Some(pid), "STATUS=");
    assert_eq!(sim.status_text("db"), None, "an empty STATUS= clears it");
    let before = sim.now;
    sim.notify(pid, Some(pid), "WATCHDOG=1");
    assert_eq!(sim.current("db").notified.watchdog_at, Some(before));
    sim.now += Duration::from_secs(2);
    let row = sim.table.status(sim.now).into_iter().next().unwrap();
    assert_eq!(row.watchdog, Some(Duration::from_secs(2)));
    sim.notify(pid, Some(pid), "STOPPING=1");
    assert_eq!(sim.state("db"), "stopping");
    assert!(sim.table.outcome().is_none(), "what it says is not a stop");
}

#[test]
fn a_reloaded_generation_that_is_ready_by_datagram_replaces_the_old_one() {
    let web = with(spec("web"), "ready", Some("notify"));
    let mut sim = Sim::group(vec![web]);
    let first = sim.id("web");
    let pid = sim.pid("web");
    sim.notify(pid, Some(pid), "READY=1");
    sim.reload(Some("web"));
    let new_pid = sim.pid("web");
    assert_ne!(new_pid, pid);
    let effects = sim.notify(pid, Some(pid), "READY=1");
    assert!(
        signals(&effects).is_empty(),
        "the old one saying it again is nothing"
    );
    let effects = sim.notify(new_pid, Some(new_pid), "READY=1");
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    assert!(effects.contains(&Effect::ReloadFinished { ok: true }));
}

#[test]
fn the_table_says_when_it_is_stopping_for_herd_s_own_manager() {
    let mut sim = notify_db();
    assert_eq!(sim.table.readiness(), (0, 2));
    assert!(!sim.table.is_stopping());
    sim.signal(TERM);
    assert!(sim.table.is_stopping());
}

// --- instances ---------------------------------------------------------

/// Instance `index` of `count` of the process `family`, as load.rs makes it.
fn instance_of(family: &str, index: u32, count: u32) -> ProcessSpec {
    let mut spec = spec(&format!("{family}.{index}"));
    spec.family = family.to_string();
    spec.instances = count;
    spec
}

/// `web` with two instances, then `worker` alone: every one running.
fn two_webs() -> Sim {
    Sim::group(vec![
        instance_of("web", 1, 2),
        instance_of("web", 2, 2),
        spec("worker"),
    ])
}

#[test]
fn instances_start_in_index_order_each_holding_back_the_next_until_ready() {
    let ready = |spec| with(spec, "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![
        ready(instance_of("web", 1, 2)),
        ready(instance_of("web", 2, 2)),
        spec("worker"),
    ]);
    assert_eq!(spawns(&sim.log), [0]);
    let effects = sim.feed(Input::Ready(sim.id("web.1")));
    assert_eq!(spawns(&effects), [1]);
    let effects = sim.feed(Input::Ready(sim.id("web.2")));
    assert_eq!(spawns(&effects), [2]);
}

#[test]
fn a_process_name_stops_every_instance_and_an_instance_name_one() {
    let mut sim = two_webs();
    let (first, second) = (sim.id("web.1"), sim.id("web.2"));
    let effects = sim.feed(Input::Control {
        client: 7,
        command: Command::StopProcess("web.2".into()),
    });
    assert_eq!(signals(&effects), [(Target::Group(second), TERM)]);
    sim.terminated(second);
    assert_eq!(sim.state("web.1"), "running");
    assert_eq!(sim.state("web.2"), "stopped");
    // web.2 is stopped already: the request is for what still runs.
    let effects = sim.feed(Input::Control {
        client: 7,
        command: Command::StopProcess("web".into()),
    });
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    assert_eq!(reply_to(&effects, 7), Some(Answer::Ok(vec![])));
    sim.terminated(first);
    assert_eq!(sim.state("web.1"), "stopped");
    assert_eq!(sim.state("worker"), "running");
    assert_eq!(
        sim.control(Command::StopProcess("web".into())),
        Answer::Error("web is not running".into()),
        "no instance could: one error for the process, not one per instance"
    );
    assert_eq!(
        sim.control(Command::StartProcess("web".into())),
        Answer::Ok(vec![])
    );
    assert_eq!(sim.state("web.1"), "running");
    assert_eq!(sim.state("web.2"), "running");
    assert_eq!(
        sim.control(Command::StartProcess("web".into())),
        Answer::Error("web is already running".into())
    );
    assert_eq!(
        sim.control(Command::StartProcess("web.1".into())),
        Answer::Error("web.1 is already running".into())
    );
}

#[test]
fn a_restart_of_one_instance_leaves_the_others_alone() {
    let mut sim = two_webs();
    let (first, second) = (sim.id("web.1"), sim.id("web.2"));
    let effects = sim.feed(Input::Control {
        client: 7,
        command: Command::Restart("web.1".into()),
    });
    assert_eq!(signals(&effects), [(Target::Group(first), TERM)]);
    sim.terminated(first);
    assert_ne!(sim.id("web.1"), first);
    assert_eq!(sim.unit("web.1").restarts, 1);
    assert_eq!(sim.id("web.2"), second);
    assert_eq!(sim.unit("web.2").restarts, 0);
    let effects = sim.feed(Input::Control {
        client: 7,
        command: Command::Restart("web".into()),
    });
    let restarted: Vec<Target> = signals(&effects).into_iter().map(|(to, _)| to).collect();
    assert_eq!(
        restarted,
        [Target::Group(sim.id("web.1")), Target::Group(second)]
    );
}

#[test]
fn a_signal_to_a_process_name_reaches_every_instance() {
    let mut sim = two_webs();
    let effects = sim.feed(Input::Control {
        client: 7,
        command: Command::Signal("web".into(), libc::SIGHUP),
    });
    assert_eq!(
        signals(&effects),
        [
            (Target::Group(sim.id("web.1")), libc::SIGHUP),
            (Target::Group(sim.id("web.2")), libc::SIGHUP)
        ]
    );
    assert_eq!(
        sim.control(Command::Signal("web.3".into(), libc::SIGHUP)),
        Answer::Error("no process named 'web.3'".into())
    );
}

#[test]
fn send_to_a_process_of_several_instances_names_them_and_an_instance_gets_its_pipe() {
    let units = vec![
        UnitSetup {
            spec: instance_of("web", 1, 2),
            stdin_pipe: true,
        },
        UnitSetup {
            spec: instance_of("web", 2, 2),
            stdin_pipe: true,
        },
    ];
    let mut sim = Sim {
        table: Table::new(settings(GROUP), units),
        now: Instant::now(),
        log: Vec::new(),
        fail_spawns: false,
        with_output: false,
    };
    sim.feed(Input::Tick);
    assert_eq!(
        sim.control(Command::Send("web".into())),
        Answer::Error("web has 2 instances (web.1 to web.2): send to one of them".into())
    );
    let second = sim.id("web.2");
    assert_eq!(
        sim.control(Command::Send("web.2".into())),
        Answer::Stdin(second)
    );
}

#[test]
fn a_reload_of_a_process_name_replaces_every_instance() {
    let mut sim = two_webs();
    let effects = sim.reload(Some("web"));
    assert_eq!(spawns(&effects), [0, 1]);
    let mut sim = two_webs();
    let effects = sim.reload(Some("web.2"));
    assert_eq!(spawns(&effects), [1]);
}

#[test]
fn every_instance_has_its_own_row_and_restart_policy() {
    let always = |spec| with(spec, "restart", Some("always"));
    let mut sim = Sim::group(vec![
        always(instance_of("web", 1, 2)),
        always(instance_of("web", 2, 2)),
    ]);
    let effects = sim.exit("web.2", exited(1));
    assert!(
        has_line(&effects, "web.2 restarting in 0.1s"),
        "{effects:?}"
    );
    assert_eq!(sim.state("web.1"), "running");
    assert_eq!(sim.state("web.2"), "backoff");
    let rows: Vec<String> = sim
        .table
        .status(sim.now)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(rows, ["web.1", "web.2"]);
}

// --- readiness of the whole group ---------------------------------------

impl Sim {
    /// What a status reply says in its `ready=` field.
    fn ready_field(&mut self) -> String {
        match self.control(Command::Status) {
            Answer::Ok(fields) => crate::wire::field(&fields, "ready")
                .expect("a status reply says ready=")
                .to_string(),
            other => panic!("status was refused: {other:?}"),
        }
    }
}

#[test]
fn a_group_is_ready_once_every_unit_is_started_and_has_passed_its_check() {
    let db = with(spec("db"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![db, spec("web")]);
    assert!(!sim.table.is_ready(), "db is starting, web waiting");
    assert_eq!(sim.ready_field(), "no");
    sim.feed(Input::Ready(sim.id("db")));
    assert_eq!(sim.state("web"), "running");
    assert!(sim.table.is_ready());
    assert_eq!(sim.ready_field(), "yes");
}

#[test]
fn a_stop_makes_the_group_unready_at_once_and_it_stays_so() {
    let mut sim = Sim::group(vec![spec("db"), spec("web")]);
    assert!(sim.table.is_ready());
    let effects = sim.signal(TERM);
    assert!(!sim.table.is_ready(), "db still runs, but the group stops");
    sim.obey(&effects);
    assert!(!sim.table.is_ready());
}

#[test]
fn a_oneshot_that_exited_0_counts_as_ready() {
    let migrate = with(spec("migrate"), "oneshot", None);
    let mut sim = Sim::group(vec![migrate, spec("web")]);
    sim.exit("migrate", exited(0));
    assert_eq!(sim.state("migrate"), "exited");
    assert!(sim.table.is_ready());
}

#[test]
fn a_unit_between_runs_is_not_ready_and_is_again_once_restarted() {
    let web = with(spec("web"), "restart", Some("always"));
    let mut sim = Sim::group(vec![web, spec("db")]);
    sim.exit("web", exited(1));
    assert_eq!(sim.state("web"), "backoff");
    assert!(!sim.table.is_ready());
    sim.after(100 * MS);
    assert_eq!(sim.state("web"), "running");
    assert!(sim.table.is_ready());
    let before = sim.id("web");
    sim.control(Command::Restart("web".into()));
    assert!(
        !sim.table.is_ready(),
        "herd restart: stopping to start again"
    );
    sim.terminated(before);
    assert!(sim.table.is_ready());
}

#[test]
fn a_unit_stopped_by_request_is_not_ready() {
    let mut sim = Sim::group(vec![spec("web"), spec("worker")]);
    sim.control(Command::StopProcess("web".into()));
    sim.terminated(1);
    assert_eq!(sim.state("web"), "stopped");
    assert!(!sim.table.is_ready());
    sim.control(Command::StartProcess("web".into()));
    assert!(sim.table.is_ready());
}

#[test]
fn the_old_generation_serving_during_a_reload_keeps_the_group_ready() {
    let (mut sim, first) = serving_web();
    assert!(sim.table.is_ready());
    sim.reload(Some("web"));
    let second = sim.id("web");
    assert_ne!(second, first);
    assert!(sim.table.is_ready(), "generation 1 serves while 2 starts");
    sim.feed(Input::Ready(second));
    assert!(sim.table.is_ready(), "generation 2 serves, 1 drains");
    sim.terminated(first);
    assert!(sim.table.is_ready());
}

#[test]
fn a_failed_reload_leaves_the_group_ready_but_a_lost_serving_generation_does_not() {
    let (mut sim, first) = serving_web();
    sim.reload(Some("web"));
    let second = sim.id("web");
    sim.exit_instance(second, exited(1));
    assert!(sim.table.is_ready(), "generation 1 goes on serving");
    sim.reload(Some("web"));
    sim.exit_instance(first, exited(1));
    assert!(
        !sim.table.is_ready(),
        "only a generation that is not ready yet is left"
    );
}

#[test]
fn a_process_that_said_stopping_is_not_ready_and_one_reloading_still_is() {
    let mut sim = Sim::group(vec![spec("web")]);
    let pid = sim.pid("web");
    let notice = |reloading, stopping| Input::Notify {
        pid,
        pgid: Some(pid),
        notice: Notice {
            reloading,
            stopping,
            ..Notice::default()
        },
    };
    sim.feed(notice(true, false));
    assert_eq!(sim.state("web"), "reloading");
    assert!(sim.table.is_ready());
    sim.feed(notice(false, true));
    assert!(!sim.table.is_ready());
}

#[test]
fn a_single_command_is_ready_while_it_runs_and_not_once_asked_to_stop() {
    let mut sim = Sim::single(false);
    assert!(sim.table.is_ready());
    assert_eq!(sim.ready_field(), "yes");
    sim.signal(TERM);
    assert!(!sim.table.is_ready());
    sim.exit("./server", WaitStatus::Signaled(TERM));
    assert!(!sim.table.is_ready());
}

// --- tini's and dumb-init's options --------------------------------------

fn single_with(init: InitOptions, group_signal: bool) -> Sim {
    let mut settings = settings(Policy::Transparent { group_signal });
    settings.init = init;
    let mut sim = Sim::new(settings, vec![spec("./server")]);
    sim.feed(Input::Tick);
    sim
}

#[test]
fn a_rewritten_signal_goes_on_as_its_replacement_and_a_dropped_one_not_at_all() {
    let rewrite = [(TERM, libc::SIGQUIT), (libc::SIGUSR1, 0)];
    let mut sim = single_with(InitOptions::new(&rewrite, &[], None, false), false);
    let id = sim.id("./server");
    let effects = sim.signal(TERM);
    assert_eq!(signals(&effects), [(Target::Process(id), libc::SIGQUIT)]);
    assert!(
        matches!(
            sim.current("./server").phase,
            Phase::Stopping {
                kill_at: Some(_),
                ..
            }
        ),
        "QUIT asks it to stop: the grace runs"
    );
    assert!(signals(&sim.signal(libc::SIGUSR1)).is_empty());
    assert_eq!(
        signals(&sim.signal(libc::SIGUSR2)),
        [(Target::Process(id), libc::SIGUSR2)]
    );
}

#[test]
fn a_stop_request_rewritten_to_nothing_does_not_start_the_grace() {
    let mut sim = single_with(InitOptions::new(&[(TERM, 0)], &[], None, false), false);
    assert!(signals(&sim.signal(TERM)).is_empty());
    assert_eq!(sim.current("./server").phase, Phase::Ready);
    assert!(sim.after(Duration::from_secs(60)).is_empty());
}

#[test]
fn setsid_stops_the_group_and_herd_on_a_terminal_stop_and_continues_both() {
    let mut sim = single_with(InitOptions::new(&[], &[], Some(true), false), true);
    let id = sim.id("./server");
    let effects = sim.signal(libc::SIGTSTP);
    assert_eq!(signals(&effects), [(Target::Group(id), libc::SIGSTOP)]);
    assert_eq!(effects.last(), Some(&Effect::StopSelf));
    let effects = sim.signal(libc::SIGCONT);
    assert_eq!(signals(&effects), [(Target::Group(id), libc::SIGCONT)]);
    assert!(!effects.contains(&Effect::StopSelf));
}

#[test]
fn herd_stops_itself_after_a_dropped_terminal_stop_too_as_dumb_init_does() {
    let init = InitOptions::new(&[(libc::SIGTSTP, 0)], &[], Some(false), false);
    let mut sim = single_with(init, false);
    let effects = sim.signal(libc::SIGTSTP);
    assert!(signals(&effects).is_empty());
    assert_eq!(effects.last(), Some(&Effect::StopSelf));
}

#[test]
fn an_ok_exit_code_is_reported_as_zero_also_for_death_by_signal_and_a_missing_program() {
    let init = InitOptions::new(&[], &[3, 143], None, false);
    let mut sim = single_with(init.clone(), false);
    sim.exit("./server", exited(3));
    assert_eq!(outcome_code(&sim), 0);
    let mut sim = single_with(init.clone(), false);
    sim.exit("./server", WaitStatus::Signaled(TERM));
    assert_eq!(outcome_code(&sim), 0);
    let mut sim = single_with(init, false);
    sim.exit("./server", exited(4));
    assert_eq!(outcome_code(&sim), 4);
    let mut settings = settings(Policy::Transparent {
        group_signal: false,
    });
    settings.init = InitOptions::new(&[], &[126], None, false);
    let mut sim = Sim::new(settings, vec![spec("./server")]);
    sim.fail_spawns = true;
    sim.feed(Input::Tick);
    let outcome = sim.table.outcome().unwrap();
    assert_eq!(outcome.code, 0);
    assert_eq!(outcome.failure.map(|f| f.exit_code), Some(0));
}

#[test]
fn warn_zombies_says_an_adopted_orphan_was_reaped_without_v() {
    let mut sim = single_with(InitOptions::new(&[], &[], None, true), false);
    let effects = sim.feed(Input::Exited {
        pid: 4242,
        status: exited(0),
        group: GroupState::Empty,
    });
    assert_eq!(
        effects,
        [Effect::Warn("reaped adopted pid 4242 (exit 0)".into())]
    );
}

// --- liveness ------------------------------------------------------------

fn live_web(restart: &str, failures: &str, grace: &str) -> ProcessSpec {
    let web = with(spec("web"), "restart", Some(restart));
    let web = with(web, "live", Some("tcp:8080"));
    let web = with(web, "live-failures", Some(failures));
    with(web, "live-grace", Some(grace))
}

impl Sim {
    fn live(&mut self, name: &str, result: Result<(), &str>) -> Vec<Effect> {
        let instance = self.id(name);
        self.feed(Input::Live {
            instance,
            result: result.map_err(str::to_string),
        })
    }
}

fn stops(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Signal { signal: TERM, .. }))
}

#[test]
fn a_ready_process_gets_its_liveness_check_once() {
    let mut sim = Sim::group(vec![live_web("always", "3", "0")]);
    let started: Vec<_> = sim
        .log
        .iter()
        .filter(|e| matches!(e, Effect::StartLive { .. }))
        .collect();
    assert_eq!(started.len(), 1, "{:?}", sim.log);
    assert!(sim
        .after(MS)
        .iter()
        .all(|e| !matches!(e, Effect::StartLive { .. })));
}

#[test]
fn failing_the_check_n_times_in_a_row_restarts_the_process() {
    let mut sim = Sim::group(vec![live_web("on-failure", "3", "0")]);
    for _ in 0..2 {
        assert!(!stops(&sim.live("web", Err("connection refused"))));
    }
    let effects = sim.live("web", Err("connection refused"));
    assert!(stops(&effects), "{effects:?}");
    assert!(effects.contains(&Effect::StopLive(sim.id("web"))));
    assert!(lines(&effects)
        .contains(&"web: not live: tcp:8080 failed 3 times in a row: connection refused".into()));
    // It exits 0 on SIGTERM: still a failure, restarted by on-failure.
    let effects = sim.exit("web", exited(0));
    assert!(
        lines(&effects)
            .iter()
            .any(|l| l.starts_with("web restarting in")),
        "{effects:?}"
    );
    let row = sim.table.rows().next().unwrap();
    assert_eq!(
        row.status(sim.now).last_exit.as_deref(),
        Some("exit 0 (not live)")
    );
}

#[test]
fn failing_n_minus_one_times_then_passing_keeps_the_process() {
    let mut sim = Sim::group(vec![live_web("always", "3", "0")]);
    for _ in 0..5 {
        sim.live("web", Err("refused"));
        sim.live("web", Err("refused"));
        let effects = sim.live("web", Ok(()));
        assert_eq!(lines(&effects), vec!["web: live again".to_string()]);
    }
    assert!(!stops(&sim.log));
    assert_eq!(sim.unit("web").restarts, 0);
}

#[test]
fn a_failed_check_during_the_grace_counts_for_nothing() {
    let mut sim = Sim::group(vec![live_web("always", "1", "5")]);
    sim.after(Duration::from_secs(4));
    assert!(sim
        .live("web", Err("refused"))
        .iter()
        .all(|e| !matches!(e, Effect::Line(_))));
    sim.after(Duration::from_secs(1));
    assert!(stops(&sim.live("web", Err("refused"))));
}

#[test]
fn with_restart_never_a_process_that_is_not_live_stops_the_group() {
    let mut sim = Sim::group(vec![live_web("never", "1", "0"), spec("db")]);
    assert!(stops(&sim.live("web", Err("refused"))));
    sim.exit("web", WaitStatus::Signaled(TERM));
    assert!(sim.table.is_stopping());
}

#[test]
fn results_of_a_stopping_process_count_for_nothing() {
    let mut sim = Sim::group(vec![live_web("always", "1", "0")]);
    assert!(stops(&sim.live("web", Err("refused"))));
    let again = sim.live("web", Err("refused"));
    assert!(lines(&again).is_empty(), "{again:?}");
}

// --- watchdog ----------------------------------------------------------

fn watched(restart: &str) -> Sim {
    let web = with(spec("web"), "watchdog", Some("5"));
    Sim::group(vec![with(web, "restart", Some(restart))])
}

#[test]
fn a_process_whose_heartbeat_stays_still_for_its_period_is_stopped_and_restarted() {
    let mut sim = watched("on-failure");
    let first = sim.id("web");
    assert_eq!(
        sim.table.next_deadline(),
        Some(sim.now + Duration::from_secs(5))
    );
    assert_eq!(sim.table.heartbeat_poll(), Some(250 * MS));
    let effects = sim.after(Duration::from_secs(5) - MS);
    assert!(!has_line(&effects, "no heartbeat"), "{effects:?}");
    let effects = sim.after(MS);
    assert!(
        has_line(&effects, "web: no heartbeat for 5s"),
        "{effects:?}"
    );
    assert!(effects.contains(&Effect::Signal {
        to: Target::Group(first),
        signal: TERM
    }));
    assert_eq!(
        sim.table.heartbeat_poll(),
        None,
        "a stopping process has its grace"
    );
    let effects = sim.terminated(first);
    assert!(has_line(&effects, "web restarting in 0.1s"), "{effects:?}");
    let row = sim.table.status(sim.now).into_iter().next().unwrap();
    assert_eq!(
        row.last_exit.as_deref(),
        Some("no heartbeat for 5s: killed by SIGTERM")
    );
    sim.after(100 * MS);
    assert_ne!(sim.id("web"), first, "a new run");
    assert_eq!(sim.unit("web").restarts, 1);
}

#[test]
fn a_process_that_keeps_beating_is_never_stopped() {
    let mut sim = watched("always");
    let first = sim.id("web");
    for _ in 0..100 {
        let effects = sim.after(Duration::from_secs(4));
        assert!(!has_line(&effects, "no heartbeat"), "{effects:?}");
        sim.feed(Input::Heartbeat(0));
    }
    let pid = sim.pid("web");
    for _ in 0..10 {
        sim.after(Duration::from_secs(4));
        sim.notify(pid, Some(pid), "WATCHDOG=1");
    }
    assert_eq!(sim.id("web"), first);
    let effects = sim.after(Duration::from_secs(5));
    assert!(
        has_line(&effects, "web: no heartbeat for 5s"),
        "{effects:?}"
    );
}

#[test]
fn a_watchdog_kill_of_a_process_that_never_restarts_stops_the_group() {
    let mut sim = watched("never");
    let effects = sim.after(Duration::from_secs(5));
    sim.obey(&effects);
    assert_eq!(outcome_code(&sim), 128 + TERM as u8);
}

#[test]
fn a_heartbeat_for_a_slot_with_no_unit_or_no_watchdog_changes_nothing() {
    let mut sim = Sim::group(vec![spec("db")]);
    assert!(sim.feed(Input::Heartbeat(7)).is_empty());
    assert!(sim.feed(Input::Heartbeat(0)).is_empty());
    assert_eq!(sim.table.next_deadline(), None);
    assert_eq!(sim.table.heartbeat_poll(), None);
}

#[test]
fn during_a_reload_a_slot_heartbeat_counts_for_both_generations_and_a_silent_trial_fails() {
    let web = with(spec("web"), "ready", Some("file:/tmp/up"));
    let mut sim = Sim::group(vec![with(web, "watchdog", Some("5"))]);
    let first = sim.id("web");
    sim.feed(Input::Ready(first));
    sim.reload(Some("web"));
    let trial = sim.id("web");
    assert_ne!(trial, first);
    for _ in 0..3 {
        let effects = sim.after(Duration::from_secs(4));
        assert!(!has_line(&effects, "no heartbeat"), "{effects:?}");
        sim.feed(Input::Heartbeat(0));
    }
    let effects = sim.after(Duration::from_secs(5));
    assert!(
        signals(&effects).contains(&(Target::Group(trial), TERM)),
        "{effects:?}"
    );
    let note = sim.note_of("web").unwrap_or_default();
    assert!(note.contains("no heartbeat for 5s"), "{note}");
}
