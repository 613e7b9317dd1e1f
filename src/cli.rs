//! Command-line parsing with lexopt into plain structs, and the usage text,
//! derived from one table of flags.

use crate::error::Failure;
use crate::signals;
use std::ffi::OsString;
use std::time::Duration;

/// One flag as the user sees it: the single source for `--help` and for the
/// test that checks `man/herd.1` documents it.
pub struct Flag {
    pub short: Option<char>,
    pub long: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const HELP: Flag = Flag {
    short: Some('h'),
    long: "help",
    value: None,
    help: "print this help and exit",
};

pub const GLOBAL_FLAGS: &[Flag] = &[
    HELP,
    Flag {
        short: Some('V'),
        long: "version",
        value: None,
        help: "print herd's version and exit",
    },
];

pub const RUN_FLAGS: &[Flag] = &[
    Flag {
        short: Some('g'),
        long: "group-signal",
        value: None,
        help: "forward signals to the child's whole process group",
    },
    Flag {
        short: None,
        long: "grace",
        value: Some("SECS"),
        help: "time a stopping process gets before SIGKILL (default 10)",
    },
    Flag {
        short: None,
        long: "stop-signal",
        value: Some("SIG"),
        help: "signal that stops what is left of the child's group (default TERM)",
    },
    Flag {
        short: None,
        long: "no-subreaper",
        value: None,
        help: "do not adopt orphaned descendants to reap them",
    },
    Flag {
        short: Some('v'),
        long: "verbose",
        value: None,
        help: "log herd's decisions (spawn, signals, reaping) to stderr",
    },
    HELP,
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Request {
    Run(RunArgs),
    Help(String),
    Version,
}

/// `herd run`'s settings.
#[derive(Debug)]
pub struct RunArgs {
    pub group_signal: bool,
    pub grace: Duration,
    pub stop_signal: i32,
    pub subreaper: bool,
    pub verbose: bool,
    /// The program and its arguments, exactly as given.
    pub command: Vec<OsString>,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, Failure> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let bad = |e: lexopt::Error| usage_failure("", e);
    match parser.next().map_err(bad)? {
        Some(Short('h') | Long("help")) | None => Ok(Request::Help(main_help())),
        Some(Short('V') | Long("version")) => Ok(Request::Version),
        Some(Value(command)) if command == "run" => parse_run(&mut parser),
        Some(Value(command)) => Err(Failure::new(
            "reading arguments",
            format!(
                "unknown command '{}'; see 'herd --help'",
                command.to_string_lossy()
            ),
        )),
        Some(other) => Err(bad(other.unexpected())),
    }
}

fn parse_run(parser: &mut lexopt::Parser) -> Result<Request, Failure> {
    use lexopt::prelude::*;
    let bad = |e: lexopt::Error| usage_failure("run ", e);
    let mut run = RunArgs {
        group_signal: false,
        grace: Duration::from_secs(10),
        stop_signal: libc::SIGTERM,
        subreaper: true,
        verbose: false,
        command: Vec::new(),
    };
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Short('g') | Long("group-signal") => run.group_signal = true,
            Long("grace") => {
                let text = parser.value().map_err(bad)?;
                run.grace = parse_seconds(&text.to_string_lossy())
                    .map_err(|why| value_failure("grace", why))?;
            }
            Long("stop-signal") => {
                let text = parser.value().map_err(bad)?;
                run.stop_signal = signals::parse(&text.to_string_lossy())
                    .map_err(|why| value_failure("stop-signal", why))?;
            }
            Long("no-subreaper") => run.subreaper = false,
            Short('v') | Long("verbose") => run.verbose = true,
            Short('h') | Long("help") => return Ok(Request::Help(run_help())),
            Value(program) => {
                // Everything from the first positional on belongs to the child.
                run.command.push(program);
                run.command.extend(parser.raw_args().map_err(bad)?);
            }
            other => return Err(bad(other.unexpected())),
        }
    }
    if run.command.is_empty() {
        return Err(Failure::new(
            "reading arguments",
            "run needs a command; see 'herd run --help'",
        ));
    }
    Ok(Request::Run(run))
}

fn usage_failure(command: &str, error: lexopt::Error) -> Failure {
    Failure::new(
        "reading arguments",
        format!("{error}; see 'herd {command}--help'"),
    )
}

fn value_failure(flag: &str, why: String) -> Failure {
    Failure::new("reading arguments", format!("--{flag}: {why}"))
}

/// Seconds as a decimal number: `10`, `0.5`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

fn main_help() -> String {
    format!(
        "herd {} - start, watch and stop processes\n\n\
         Usage: herd run [OPTIONS] [--] CMD [ARG...]\n\
         \x20      herd --help | --version\n\n\
         Commands:\n\
         \x20 run    run CMD with herd as its init: forward signals, reap zombies,\n\
         \x20        pass its exit status through\n\n\
         Options:\n{}\n\
         'herd COMMAND --help' describes a command; 'man herd' describes everything.\n",
        env!("CARGO_PKG_VERSION"),
        options_text(GLOBAL_FLAGS)
    )
}

fn run_help() -> String {
    format!(
        "Usage: herd run [OPTIONS] [--] CMD [ARG...]\n\n\
         Runs CMD (no shell) as herd's child: forwards every signal herd gets,\n\
         reaps orphaned descendants, stops the child's process group with a grace\n\
         period, and exits with CMD's status (128+N if it died of signal N).\n\
         Everything from CMD on is CMD's own arguments.\n\n\
         Options:\n{}\n\
         Exit status: CMD's; 125 herd failed; 126 CMD not executable; 127 CMD not found.\n",
        options_text(RUN_FLAGS)
    )
}

fn options_text(flags: &[Flag]) -> String {
    let left = |flag: &Flag| {
        let short = flag.short.map_or("    ".to_string(), |c| format!("-{c}, "));
        let value = flag.value.map_or(String::new(), |v| format!(" {v}"));
        format!("{short}--{}{value}", flag.long)
    };
    let width = flags.iter().map(|f| left(f).len()).max().unwrap_or(0);
    flags
        .iter()
        .map(|flag| format!("  {:width$}  {}\n", left(flag), flag.help))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Request, Failure> {
        parse(words.iter().map(OsString::from))
    }

    fn run_args(words: &[&str]) -> RunArgs {
        match parse_words(words) {
            Ok(Request::Run(run)) => run,
            other => panic!("{words:?} gave {other:?}"),
        }
    }

    #[test]
    fn the_childs_flags_are_never_ours() {
        let run = run_args(&["run", "ls", "-l", "--grace", "x", "-v"]);
        assert_eq!(run.command, ["ls", "-l", "--grace", "x", "-v"]);
        assert!(!run.verbose);
        let run = run_args(&["run", "-v", "--", "-weird-name", "--help"]);
        assert_eq!(run.command, ["-weird-name", "--help"]);
        assert!(run.verbose);
    }

    #[test]
    fn reads_every_run_setting() {
        let run = run_args(&[
            "run",
            "-g",
            "--grace",
            "0.25",
            "--stop-signal",
            "SIGUSR1",
            "--no-subreaper",
            "true",
        ]);
        assert!(run.group_signal && !run.subreaper);
        assert_eq!(run.grace, Duration::from_millis(250));
        assert_eq!(run.stop_signal, libc::SIGUSR1);
    }

    #[test]
    fn bad_input_names_the_flag() {
        let message = |words: &[&str]| parse_words(words).unwrap_err().to_string();
        assert!(message(&["run", "--nope", "true"]).contains("--nope"));
        assert!(message(&["run", "--grace", "soon", "true"]).contains("--grace"));
        assert!(message(&["run", "--grace", "-1", "true"]).contains("--grace"));
        assert!(message(&["run", "--stop-signal", "NOPE", "true"]).contains("--stop-signal"));
        assert!(message(&["run"]).contains("needs a command"));
        assert!(message(&["frobnicate"]).contains("unknown command 'frobnicate'"));
        assert_eq!(parse_words(&["run", "--grace"]).unwrap_err().exit_code, 125);
    }

    #[test]
    fn every_flag_in_the_table_is_parsed() {
        for flag in RUN_FLAGS {
            let mut spellings = vec![format!("--{}", flag.long)];
            spellings.extend(flag.short.map(|c| format!("-{c}")));
            for spelling in spellings {
                let mut words = vec!["run".to_string(), spelling.clone()];
                words.extend(flag.value.map(|value| sample_value(value).to_string()));
                words.push("true".to_string());
                let result = parse(words.iter().map(OsString::from));
                assert!(result.is_ok(), "{spelling}: {:?}", result.unwrap_err());
            }
        }
    }

    fn sample_value(value_name: &str) -> &'static str {
        match value_name {
            "SECS" => "1.5",
            "SIG" => "TERM",
            other => panic!("no sample value for {other}: add one"),
        }
    }

    #[test]
    fn the_man_page_documents_every_flag() {
        let man = include_str!("../man/herd.1");
        for flag in GLOBAL_FLAGS.iter().chain(RUN_FLAGS) {
            let long = format!("\\-\\-{}", flag.long.replace('-', "\\-"));
            assert!(man.contains(&long), "man/herd.1 lacks {long}");
            if let Some(c) = flag.short {
                let short = format!("\\-{c}");
                assert!(man.contains(&short), "man/herd.1 lacks {short}");
            }
        }
    }

    #[test]
    fn help_lists_every_flag() {
        let help = run_help();
        for flag in RUN_FLAGS {
            assert!(help.contains(&format!("--{}", flag.long)), "{}", flag.long);
        }
    }
}
