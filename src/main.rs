//! herd's entry point: read the command line, carry out the request, and turn
//! the outcome into an exit code and at most one line on stderr.

// The unit-test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

mod cli;
mod client;
mod control;
mod core;
mod daemon;
mod error;
mod formation;
mod health;
mod listen;
mod live;
mod load;
mod log;
mod notify;
mod orphans;
mod output;
mod persona;
mod probe;
mod procfile;
mod scoreboard;
mod signals;
mod spec;
mod supervisor;
mod sys;
mod termination;
mod watch;
mod wire;

use std::io::Write;

/// What `main` in `sys::entry` runs: the whole program, ending in its exit code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    sys::share_one_malloc_arena();
    let code = match read_command_line().and_then(execute) {
        Ok(code) => code,
        Err(failure) => {
            log::line(format_args!("{failure}"));
            failure.exit_code
        }
    };
    // Rust's runtime, which would flush stdout after main, is skipped (sys::entry).
    let _ = std::io::stdout().flush();
    code
}

/// herd's own command line, or that of the tool herd was started as.
fn read_command_line() -> Result<cli::Request, error::Failure> {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let Some(persona) = persona::Persona::of(&program) else {
        return cli::parse(args);
    };
    let is_pid_1 = sys::process::own_pid() == 1;
    let reading = persona::parse(
        persona,
        args.collect(),
        |key| std::env::var_os(key),
        is_pid_1,
    )?;
    if let Some(warning) = &reading.warning {
        log::line(format_args!("{warning}"));
    }
    Ok(reading.request)
}

fn execute(request: cli::Request) -> Result<u8, error::Failure> {
    // Signals were blocked at start for a supervisor to read them; any
    // other command takes them as it was started (Ctrl-C ends it).
    if !matches!(request, cli::Request::Run(_) | cli::Request::Start(_)) {
        sys::signal::restore_caller_mask();
    }
    match request {
        cli::Request::Help(text) => Ok(print(&text)),
        cli::Request::Version => Ok(print(&format!("herd {}\n", env!("CARGO_PKG_VERSION")))),
        cli::Request::Run(args) => {
            // Before herd opens an fd of its own: systemd's are at 3 and up.
            let inherited = listen::Inherited::take()?;
            let service = daemon::Service::foreground(&args.target)?;
            supervise(*args, inherited, service)
        }
        cli::Request::Start(mut args) => {
            if let Some(path) = &args.termination_log {
                args.termination_log = Some(termination::absolute(path)?);
            }
            let detach = args.detach.as_ref().expect("start has detach settings");
            let service = daemon::Service::detached(&args.target, detach)?;
            // The detached supervisor has a pid of its own, and closed
            // every inherited fd: no LISTEN_PID can name it.
            supervise(*args, listen::Inherited::default(), service)
        }
        cli::Request::Client(args) => client::run(args),
        cli::Request::Notify(args) => {
            if args.heartbeat {
                notify::send_heartbeat()?;
            }
            let message = notify::message(
                args.ready,
                args.status.as_deref(),
                args.stopping,
                args.reloading,
            );
            if message.is_empty() {
                return Ok(0);
            }
            notify::send_from_child(&message)
        }
    }
}

/// Runs one command or a group until it is done, then lets the service
/// clean up (and tell a waiting `herd start` how it went).
fn supervise(
    args: cli::RunArgs,
    inherited: listen::Inherited,
    mut service: daemon::Service,
) -> Result<u8, error::Failure> {
    let is_init = sys::process::own_pid() == 1;
    let result = termination::TerminationLog::open(args.termination_log.as_deref(), is_init)
        .and_then(|termination_log| {
            let result = supervisor::run(args, inherited, &mut service);
            if let Some(log) = termination_log {
                log.write(&termination::reason(
                    &result,
                    service.stop_reason.as_deref(),
                ));
            }
            result
        });
    service.finish(&result);
    result
}

/// Prints to stdout; a reader that went away (`herd --help | head -1`) is fine.
fn print(text: &str) -> u8 {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}
