//! herd's entry point: read the command line, carry out the request, and turn
//! the outcome into an exit code and at most one line on stderr.

mod child;
mod cli;
mod error;
mod group;
mod log;
mod output;
mod procfile;
mod signals;
mod spec;
mod supervisor;
mod sys;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    sys::share_one_malloc_arena();
    match cli::parse(std::env::args_os().skip(1)).and_then(execute) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            log::line(format_args!("{failure}"));
            ExitCode::from(failure.exit_code)
        }
    }
}

fn execute(request: cli::Request) -> Result<u8, error::Failure> {
    match request {
        cli::Request::Help(text) => Ok(print(&text)),
        cli::Request::Version => Ok(print(&format!("herd {}\n", env!("CARGO_PKG_VERSION")))),
        cli::Request::Run(args) if args.sources.is_empty() => supervisor::run(*args),
        cli::Request::Run(args) => group::run(*args),
    }
}

/// Prints to stdout; a reader that went away (`herd --help | head -1`) is fine.
fn print(text: &str) -> u8 {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}
