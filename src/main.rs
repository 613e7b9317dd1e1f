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
mod listen;
mod load;
mod log;
mod notify;
mod output;
mod probe;
mod procfile;
mod scoreboard;
mod signals;
mod spec;
mod supervisor;
mod sys;
mod watch;
mod wire;

use std::io::Write;

/// What `main` in `sys::entry` runs: the whole program, ending in its exit code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    sys::share_one_malloc_arena();
    let code = match cli::parse(std::env::args_os().skip(1)).and_then(execute) {
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

fn execute(request: cli::Request) -> Result<u8, error::Failure> {
    match request {
        cli::Request::Help(text) => Ok(print(&text)),
        cli::Request::Version => Ok(print(&format!("herd {}\n", env!("CARGO_PKG_VERSION")))),
        cli::Request::Run(args) => {
            // Before herd opens an fd of its own: systemd's are at 3 and up.
            let inherited = listen::Inherited::take()?;
            let service = daemon::Service::foreground(&args.target)?;
            supervise(*args, inherited, service)
        }
        cli::Request::Start(args) => {
            let detach = args.detach.as_ref().expect("start has detach settings");
            let service = daemon::Service::detached(&args.target, detach)?;
            // The detached supervisor has a pid of its own, and closed
            // every inherited fd: no LISTEN_PID can name it.
            supervise(*args, listen::Inherited::default(), service)
        }
        cli::Request::Client(args) => client::run(args),
        cli::Request::Notify(args) => notify::send_from_child(&notify::message(
            args.ready,
            args.status.as_deref(),
            args.stopping,
            args.reloading,
        )),
    }
}

/// Runs one command or a group until it is done, then lets the service
/// clean up (and tell a waiting `herd start` how it went).
fn supervise(
    args: cli::RunArgs,
    inherited: listen::Inherited,
    mut service: daemon::Service,
) -> Result<u8, error::Failure> {
    let result = supervisor::run(args, inherited, &mut service);
    service.finish(&result);
    result
}

/// Prints to stdout; a reader that went away (`herd --help | head -1`) is fine.
fn print(text: &str) -> u8 {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}
