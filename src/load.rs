//! What a group runs, read from the command line, Procfiles and env files:
//! each process's settings and environment, checked before anything starts.

use crate::cli::{RunArgs, Source};
use crate::error::Failure;
use crate::procfile;
use crate::spec::{ProcessSpec, Ready, TcpPort};
use std::path::Path;

/// One process of a group, as the executor starts it.
pub struct Process {
    pub spec: ProcessSpec,
    /// Variables set on top of herd's environment.
    pub env: Vec<(String, String)>,
    pub takes_stdin: bool,
    pub stdin_pipe: bool,
}

/// The processes from `-c` and `-f`, in order, with their settings applied
/// (defaults, then Procfile notes, then `--KEY NAME=VALUE` flags) and their
/// environment (env files, then `PORT` from `--port-base`).
pub fn group(args: &RunArgs) -> Result<Vec<Process>, Failure> {
    let specs = specs(args)?;
    let env_files = env_files(args)?;
    for (flag, name) in [
        ("stdin", &args.stdin_process),
        ("stdin-pipe", &args.stdin_pipe),
    ] {
        if let Some(name) = name
            .as_ref()
            .filter(|n| !specs.iter().any(|s| &s.name == *n))
        {
            return Err(Failure::new(
                "reading arguments",
                format!("--{flag}: no process named '{name}'"),
            ));
        }
    }
    let port_of = |index: usize| {
        let base = u64::from(args.port_base?);
        Some(base.saturating_add(100u64.saturating_mul(index as u64)))
    };
    if let Some(last) = specs.len().checked_sub(1).and_then(port_of) {
        if last > u64::from(u16::MAX) {
            return Err(Failure::new(
                "reading arguments",
                format!(
                    "--port-base {}: the last process would get PORT={last}",
                    args.port_base.unwrap_or_default()
                ),
            ));
        }
    }
    let mut processes = Vec::with_capacity(specs.len());
    for (index, spec) in specs.into_iter().enumerate() {
        let mut env = env_files.clone();
        if let Some(port) = port_of(index) {
            env.retain(|(key, _)| key != "PORT");
            env.push(("PORT".to_string(), port.to_string()));
        }
        let mut spec = spec;
        if let Ready::Tcp(check) = &mut spec.ready {
            if check.port == TcpPort::FromEnv {
                check.port = TcpPort::Number(port_from(&env, &spec.name)?);
            }
        }
        processes.push(Process {
            takes_stdin: args.stdin_process.as_ref() == Some(&spec.name),
            stdin_pipe: args.stdin_pipe.as_ref() == Some(&spec.name),
            spec,
            env,
        });
    }
    Ok(processes)
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

fn specs(args: &RunArgs) -> Result<Vec<ProcessSpec>, Failure> {
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
                return Err(Failure::new(
                    "reading arguments",
                    format!("duplicate process name '{}'", spec.name),
                ));
            }
            specs.push(spec);
        }
    }
    for setting in &args.named {
        let spec = specs
            .iter_mut()
            .find(|spec| spec.name == setting.name)
            .ok_or_else(|| {
                Failure::new(
                    "reading arguments",
                    format!("--{}: no process named '{}'", setting.key, setting.name),
                )
            })?;
        spec.apply(setting.key, setting.value.as_deref())
            .map_err(|why| {
                Failure::new(
                    "reading arguments",
                    format!("--{} {}: {why}", setting.key, setting.name),
                )
            })?;
    }
    Ok(specs)
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
