//! What a group runs, read from the command line, Procfiles and env files:
//! each instance of each process, its settings and its environment, checked
//! before anything starts.

use crate::cli::{NamedSetting, RunArgs, Source};
use crate::error::Failure;
use crate::formation::{self, Formation};
use crate::procfile;
use crate::spec::{ProcessSpec, Ready, TcpPort};
use std::collections::HashMap;
use std::path::Path;

/// One process of a group, as the executor starts it.
pub struct Process {
    pub spec: ProcessSpec,
    /// Variables set on top of herd's environment.
    pub env: Vec<(String, String)>,
    pub takes_stdin: bool,
    pub stdin_pipe: bool,
}

/// The processes from `-c` and `-f`, in order, each expanded into the
/// instances its formation asks for (in index order), with their settings
/// applied (defaults, then Procfile notes, then `--KEY NAME=VALUE` flags
/// naming the process, then those naming one instance) and their
/// environment (env files, then `PORT` from `--port-base`, then `PS`).
pub fn group(args: &RunArgs) -> Result<Vec<Process>, Failure> {
    let (families, by_instance) = specs(args)?;
    let family_names: Vec<String> = families.iter().map(|f| f.name.clone()).collect();
    let mut planned = expand(families, &args.formation)?;
    for setting in by_instance {
        let unit = planned
            .iter_mut()
            .find(|p| p.spec.name == setting.name)
            .ok_or_else(|| {
                arguments(format!(
                    "--{}: no process named '{}'",
                    setting.key, setting.name
                ))
            })?;
        apply(&mut unit.spec, setting)?;
    }
    for (flag, name) in [
        ("stdin", &args.stdin_process),
        ("stdin-pipe", &args.stdin_pipe),
    ] {
        let Some(name) = name else { continue };
        let addressed = planned.iter().filter(|p| p.answers_to(name)).count();
        if addressed == 0 && !family_names.contains(name) {
            return Err(arguments(format!("--{flag}: no process named '{name}'")));
        }
        if flag == "stdin" && addressed > 1 {
            return Err(arguments(format!(
                "--stdin: {name} has {addressed} instances and only one can read herd's stdin: \
                 name one ({name}.1 to {name}.{addressed})"
            )));
        }
    }
    let env_files = env_files(args)?;
    let mut processes = Vec::with_capacity(planned.len());
    for Planned {
        mut spec,
        position,
        index,
    } in planned
    {
        let mut env = env_files.clone();
        if let Some(base) = args.port_base {
            let port = formation::port(base, position, index);
            if port > u64::from(u16::MAX) {
                return Err(arguments(format!(
                    "--port-base {base}: {} would get PORT={port}",
                    spec.name
                )));
            }
            env.retain(|(key, _)| key != "PORT");
            env.push(("PORT".to_string(), port.to_string()));
        }
        env.retain(|(key, _)| key != "PS");
        env.push(("PS".to_string(), formation::ps(&spec.family, index)));
        if let Ready::Tcp(check) = &mut spec.ready {
            if check.port == TcpPort::FromEnv {
                check.port = TcpPort::Number(port_from(&env, &spec.name)?);
            }
        }
        if let Some(check) = &mut spec.live.check {
            let name = &spec.name;
            let given = crate::live::describe(check);
            crate::live::resolve_port(check, || {
                port_from(&env, name).map_err(|_| {
                    format!("{name}: live={given}, but its PORT is unset or not a port number")
                })
            })
            .map_err(arguments)?;
        }
        let named = |flag: &Option<String>| flag.as_ref().is_some_and(|n| answers_to(&spec, n));
        processes.push(Process {
            takes_stdin: named(&args.stdin_process),
            stdin_pipe: named(&args.stdin_pipe),
            spec,
            env,
        });
    }
    Ok(processes)
}

/// One instance of a process, before its environment is made.
struct Planned {
    spec: ProcessSpec,
    /// Where its process is among those given, from 0: its block of ports.
    position: usize,
    /// Its index among its family's instances, from 1.
    index: u32,
}

impl Planned {
    fn answers_to(&self, name: &str) -> bool {
        answers_to(&self.spec, name)
    }
}

/// Whether a flag's NAME means this instance: its own name, or the name of
/// its process, which means every instance of it.
fn answers_to(spec: &ProcessSpec, name: &str) -> bool {
    spec.name == name || spec.family == name
}

/// Every process as many times as the formation says, named `web.1`,
/// `web.2`... (or `web` when alone), in order.
fn expand(families: Vec<ProcessSpec>, formation: &Formation) -> Result<Vec<Planned>, Failure> {
    if let Some((name, _)) = formation
        .counts
        .iter()
        .find(|(name, _)| !families.iter().any(|family| &family.name == name))
    {
        return Err(arguments(format!("--formation: no process named '{name}'")));
    }
    let mut planned = Vec::new();
    for (position, family) in families.into_iter().enumerate() {
        let count = formation.count(&family.name, family.instances);
        for index in 1..=count {
            let mut spec = family.clone();
            spec.name = formation::instance_name(&family.name, index, count);
            spec.instances = count;
            planned.push(Planned {
                spec,
                position,
                index,
            });
        }
    }
    if planned.is_empty() {
        return Err(arguments(
            "every process has 0 instances: nothing to run".to_string(),
        ));
    }
    check_names(&planned)?;
    Ok(planned)
}

/// Every name herd answers to must mean one thing: an instance name that is
/// also another process's name (`web.1` of `web=2` beside a process
/// `web.1`), or a process with instances whose name is an instance of
/// another (`web.2` with instances beside `web=2`), is refused.
fn check_names(planned: &[Planned]) -> Result<(), Failure> {
    let what = |p: &Planned| {
        if p.spec.instances > 1 {
            format!("an instance of '{}'", p.spec.family)
        } else {
            format!("the process '{}'", p.spec.family)
        }
    };
    let mut names: HashMap<&str, &Planned> = HashMap::with_capacity(planned.len());
    for p in planned {
        if let Some(first) = names.insert(p.spec.name.as_str(), p) {
            return Err(arguments(format!(
                "'{}' would name both {} and {}",
                p.spec.name,
                what(first),
                what(p)
            )));
        }
    }
    for p in planned.iter().filter(|p| p.spec.instances > 1) {
        if let Some(other) = names.get(p.spec.family.as_str()) {
            return Err(arguments(format!(
                "'{}' would name both the instances of '{}' and {}",
                p.spec.family,
                p.spec.family,
                what(other)
            )));
        }
    }
    Ok(())
}

fn apply(spec: &mut ProcessSpec, setting: &NamedSetting) -> Result<(), Failure> {
    spec.apply(setting.key, setting.value.as_deref())
        .map_err(|why| arguments(format!("--{} {}: {why}", setting.key, setting.name)))
}

fn arguments(why: String) -> Failure {
    Failure::new("reading arguments", why)
}

/// The port `ready=tcp:$PORT` means: the process's PORT variable.
fn port_from(env: &[(String, String)], name: &str) -> Result<u16, Failure> {
    let value = env.iter().rev().find(|(key, _)| key == "PORT");
    match value.map(|(_, value)| value.parse::<u16>()) {
        Some(Ok(port)) if port > 0 => Ok(port),
        Some(_) => Err(Failure::new(
            "reading arguments",
            format!("{name}: ready=tcp:$PORT, but its PORT is not a port number"),
        )),
        None => Err(Failure::new(
            "reading arguments",
            format!("{name}: ready=tcp:$PORT needs a PORT (--port-base or an env file)"),
        )),
    }
}

/// The processes as given, with the `--KEY NAME=VALUE` settings that name
/// a process applied; those that name something else (an instance, once
/// the formation is known) are returned.
fn specs(args: &RunArgs) -> Result<(Vec<ProcessSpec>, Vec<&NamedSetting>), Failure> {
    let mut specs: Vec<ProcessSpec> = Vec::new();
    for source in &args.sources {
        let loaded = match source {
            Source::Command { name, command } => {
                vec![ProcessSpec::new(
                    name.clone(),
                    command.clone(),
                    &args.defaults,
                )]
            }
            Source::Procfile(path) => {
                let text = read(path)?;
                procfile::parse_procfile(&text, &path.display().to_string(), &args.defaults)?
            }
        };
        for spec in loaded {
            if specs.iter().any(|known| known.name == spec.name) {
                return Err(arguments(format!("duplicate process name '{}'", spec.name)));
            }
            specs.push(spec);
        }
    }
    let mut by_instance = Vec::new();
    for setting in &args.named {
        match specs.iter_mut().find(|spec| spec.name == setting.name) {
            Some(spec) => apply(spec, setting)?,
            None => by_instance.push(setting),
        }
    }
    Ok((specs, by_instance))
}

fn env_files(args: &RunArgs) -> Result<Vec<(String, String)>, Failure> {
    let mut env: Vec<(String, String)> = Vec::new();
    for path in &args.env_files {
        let text = read(path)?;
        for (key, value) in procfile::parse_env_file(&text, &path.display().to_string())? {
            env.retain(|(known, _)| *known != key);
            env.push((key, value));
        }
    }
    Ok(env)
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::io(format!("reading {}", path.display()), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Request};
    use crate::spec::Restart;

    fn load(words: &[&str]) -> Result<Vec<Process>, Failure> {
        let argv = ["run"].iter().chain(words).map(std::ffi::OsString::from);
        match cli::parse(argv)? {
            Request::Run(args) => group(&args),
            _ => panic!("not a run: {words:?}"),
        }
    }

    fn error(words: &[&str]) -> String {
        match load(words) {
            Ok(_) => panic!("{words:?} loaded"),
            Err(failure) => {
                assert_eq!(failure.exit_code, 125, "{words:?}");
                failure.to_string()
            }
        }
    }

    fn var<'a>(process: &'a Process, key: &str) -> Option<&'a str> {
        let found = process.env.iter().rev().find(|(k, _)| k == key);
        found.map(|(_, value)| value.as_str())
    }

    #[test]
    fn expands_the_formation_in_order_with_names_ps_and_ports() {
        let processes = load(&[
            "-c",
            "web=serve",
            "-c",
            "clock=tick",
            "-c",
            "worker=work",
            "-m",
            "web=2,worker=3",
            "-m",
            "clock=0",
            "--port-base",
            "5000",
        ])
        .unwrap();
        let rows: Vec<(&str, &str, Option<&str>, Option<&str>)> = processes
            .iter()
            .map(|p| {
                let spec = &p.spec;
                (
                    spec.name.as_str(),
                    spec.family.as_str(),
                    var(p, "PS"),
                    var(p, "PORT"),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("web.1", "web", Some("web.1"), Some("5000")),
                ("web.2", "web", Some("web.2"), Some("5001")),
                // clock, with no instance, keeps its block of ports.
                ("worker.1", "worker", Some("worker.1"), Some("5200")),
                ("worker.2", "worker", Some("worker.2"), Some("5201")),
                ("worker.3", "worker", Some("worker.3"), Some("5202")),
            ]
        );
        assert!(processes.iter().all(|p| p.spec.command != "tick"));
    }

    #[test]
    fn a_process_alone_keeps_its_name_and_gets_foremans_ps() {
        let processes = load(&["-c", "web=serve", "-c", "db=run"]).unwrap();
        let names: Vec<&str> = processes.iter().map(|p| p.spec.name.as_str()).collect();
        assert_eq!(names, ["web", "db"]);
        assert_eq!(var(&processes[0], "PS"), Some("web.1"));
        assert_eq!(processes[0].spec.family, "web");
        assert_eq!(var(&processes[0], "PORT"), None);
        let processes = load(&["-c", "web=serve", "-m", "all=1"]).unwrap();
        assert_eq!(processes[0].spec.name, "web");
    }

    #[test]
    fn all_counts_every_process_not_named() {
        let processes = load(&["-c", "a=x", "-c", "b=y", "-m", "all=2,b=1"]).unwrap();
        let names: Vec<&str> = processes.iter().map(|p| p.spec.name.as_str()).collect();
        assert_eq!(names, ["a.1", "a.2", "b"]);
    }

    #[test]
    fn a_process_name_sets_every_instance_and_an_instance_name_one() {
        // The instance's setting wins wherever it stands.
        let processes = load(&[
            "-c",
            "web=serve",
            "-m",
            "web=3",
            "--restart",
            "web.2=always",
            "--restart",
            "web=on-failure",
            "--oneshot",
            "web.3",
        ])
        .unwrap();
        let restarts: Vec<Restart> = processes.iter().map(|p| p.spec.restart).collect();
        assert_eq!(
            restarts,
            [Restart::OnFailure, Restart::Always, Restart::OnFailure]
        );
        let oneshots: Vec<bool> = processes.iter().map(|p| p.spec.oneshot).collect();
        assert_eq!(oneshots, [false, false, true]);
    }

    #[test]
    fn ready_on_port_env_checks_each_instances_own_port() {
        let processes = load(&[
            "-c",
            "web=serve",
            "-m",
            "web=2",
            "--port-base",
            "7000",
            "--ready",
            "web=tcp:$PORT",
        ])
        .unwrap();
        let ports: Vec<Ready> = processes.iter().map(|p| p.spec.ready.clone()).collect();
        let tcp = |port| {
            Ready::Tcp(crate::spec::TcpCheck {
                host: None,
                port: TcpPort::Number(port),
            })
        };
        assert_eq!(ports, [tcp(7000), tcp(7001)]);
    }

    #[test]
    fn stdin_pipe_goes_to_every_instance_and_stdin_to_one_named() {
        let processes = load(&["-c", "web=serve", "-m", "web=2", "--stdin-pipe", "web"]).unwrap();
        assert!(processes.iter().all(|p| p.stdin_pipe));
        let processes = load(&["-c", "web=serve", "-m", "web=2", "--stdin", "web.2"]).unwrap();
        let takes: Vec<bool> = processes.iter().map(|p| p.takes_stdin).collect();
        assert_eq!(takes, [false, true]);
        let processes = load(&[
            "-c",
            "a=x",
            "-c",
            "web=serve",
            "-m",
            "web=0",
            "--stdin",
            "web",
        ]);
        assert!(processes.unwrap().iter().all(|p| !p.takes_stdin));
        assert_eq!(
            error(&["-c", "web=serve", "-m", "web=3", "--stdin", "web"]),
            "reading arguments: --stdin: web has 3 instances and only one can read herd's stdin: \
             name one (web.1 to web.3)"
        );
        assert_eq!(
            error(&["-c", "web=serve", "-m", "web=2", "--stdin-pipe", "web.3"]),
            "reading arguments: --stdin-pipe: no process named 'web.3'"
        );
    }

    #[test]
    fn refuses_a_formation_that_names_nothing_or_runs_nothing() {
        assert_eq!(
            error(&["-c", "web=serve", "-m", "web=2,wrker=1"]),
            "reading arguments: --formation: no process named 'wrker'"
        );
        assert_eq!(
            error(&["-c", "web=serve", "-m", "web.1=2"]),
            "reading arguments: --formation: no process named 'web.1'"
        );
        assert_eq!(
            error(&["-c", "a=x", "-c", "b=y", "-m", "all=0"]),
            "reading arguments: every process has 0 instances: nothing to run"
        );
        assert_eq!(
            error(&["-c", "web=serve", "-m", "web=2", "--grace", "web.3=1"]),
            "reading arguments: --grace: no process named 'web.3'"
        );
        assert_eq!(
            error(&["-c", "web=serve", "--restart", "web.1=always"]),
            "reading arguments: --restart: no process named 'web.1'",
            "a process alone is called web"
        );
    }

    #[test]
    fn refuses_names_that_would_mean_two_things() {
        assert_eq!(
            error(&["-c", "web=a", "-c", "web.1=b", "-m", "web=2"]),
            "reading arguments: 'web.1' would name both an instance of 'web' and the process 'web.1'"
        );
        assert_eq!(
            error(&["-c", "web=a", "-c", "web.2=b", "-m", "web=3"]),
            "reading arguments: 'web.2' would name both an instance of 'web' and the process 'web.2'"
        );
        assert_eq!(
            error(&["-c", "web=a", "-c", "web.2=b", "-m", "web=2,web.2=2"]),
            "reading arguments: 'web.2' would name both the instances of 'web.2' and an instance of 'web'"
        );
        // web.2.1 and web.2.2 beside web: every name means one thing.
        assert!(load(&["-c", "web.2=b", "-c", "web=a", "-m", "web.2=2"]).is_ok());
        // Without instances, a process may well be called web.1.
        assert!(load(&["-c", "web=a", "-c", "web.1=b"]).is_ok());
    }

    #[test]
    fn refuses_a_port_past_65535_naming_the_instance() {
        assert!(load(&["-c", "web=a", "-m", "web=36", "--port-base", "65500"]).is_ok());
        assert_eq!(
            error(&["-c", "web=a", "-m", "web=37", "--port-base", "65500"]),
            "reading arguments: --port-base 65500: web.37 would get PORT=65536"
        );
        assert_eq!(
            error(&["-c", "a=x", "-c", "b=y", "--port-base", "65500"]),
            "reading arguments: --port-base 65500: b would get PORT=65600"
        );
        assert!(load(&[
            "-c",
            "a=x",
            "-c",
            "b=y",
            "-m",
            "b=0",
            "--port-base",
            "65500"
        ])
        .is_ok());
    }
}
