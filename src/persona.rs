//! Drop-in personalities: herd started as `tini`, `docker-init` or
//! `dumb-init` (the basename of argv[0]) reads that tool's command line and
//! environment variables into `herd run`'s own settings.

use crate::cli::{self, Request, RunArgs};
use crate::error::Failure;
use crate::signals;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Which tool herd stands in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persona {
    /// tini 0.19, also as `docker-init` (Docker's `--init` runs tini).
    Tini,
    /// dumb-init 1.2.
    DumbInit,
}

impl Persona {
    /// The personality a program name asks for: `/sbin/docker-init` is tini.
    pub fn of(program: &OsStr) -> Option<Persona> {
        let base = program
            .as_bytes()
            .rsplit(|b| *b == b'/')
            .next()
            .unwrap_or_default();
        match base {
            b"tini" | b"docker-init" => Some(Persona::Tini),
            b"dumb-init" => Some(Persona::DumbInit),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Persona::Tini => "tini",
            Persona::DumbInit => "dumb-init",
        }
    }
}

/// What a personality's command line asks for, and the warning the tool
/// would print before it starts (tini's, when orphans will not be reaped).
#[derive(Debug)]
pub struct Reading {
    pub request: Request,
    pub warning: Option<String>,
}

/// Reads `args` (after argv[0]) and the tool's variables through `env`;
/// `is_pid_1` says whether herd is its namespace's init.
pub fn parse(
    persona: Persona,
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
    is_pid_1: bool,
) -> Result<Reading, Failure> {
    match persona {
        Persona::Tini => parse_tini(args, env, is_pid_1),
        Persona::DumbInit => parse_dumb_init(args, env),
    }
}

/// tini's verbosity when neither `-v` nor `TINI_VERBOSITY` says otherwise:
/// warnings only.
const TINI_DEFAULT_VERBOSITY: u32 = 1;

fn parse_tini(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
    is_pid_1: bool,
) -> Result<Reading, Failure> {
    use lexopt::prelude::*;
    let tini = Persona::Tini;
    // As tini: `--version` is an option only when it is the only argument.
    if args.len() == 1 && args.first().is_some_and(|arg| arg == "--version") {
        return Ok(plain(Request::Help(version_text(tini))));
    }
    // glibc's getopt, which tini uses, takes options after the program
    // too (`tini ls -l` is `tini -l ls`) unless POSIXLY_CORRECT is set or
    // a `--` comes first: lexopt reads them the same way.
    let stops_at_program = env("POSIXLY_CORRECT").is_some();
    let mut parser = lexopt::Parser::from_args(args);
    let bad = |e: lexopt::Error| usage_failure(tini, e);
    let mut command = Vec::new();
    let mut subreaper = false;
    let mut group_signal = false;
    let mut warn_zombies = false;
    let mut verbosity = TINI_DEFAULT_VERBOSITY;
    let mut parent_death_signal = None;
    let mut exit_ok = Vec::new();
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Short('h') => return Ok(plain(Request::Help(tini_help()))),
            Short('l') => return Ok(plain(Request::Help(license_text()))),
            Short('s') => subreaper = true,
            Short('g') => group_signal = true,
            Short('w') => warn_zombies = true,
            Short('v') => verbosity = verbosity.saturating_add(1),
            Short('p') => {
                let given = text_value(tini, &mut parser)?;
                let signal =
                    signals::parse(&given).map_err(|why| value_failure(tini, 'p', &why))?;
                parent_death_signal = Some(signal);
            }
            Short('e') => {
                let given = text_value(tini, &mut parser)?;
                let code =
                    cli::exit_code(&given).map_err(|e| value_failure(tini, 'e', &e.cause))?;
                exit_ok.push(code);
            }
            Value(word) => {
                command.push(word);
                if stops_at_program {
                    command.extend(parser.raw_args().map_err(bad)?);
                }
            }
            other => return Err(bad(other.unexpected())),
        }
    }
    // tini reads its variables after its options: they add to them, and
    // TINI_VERBOSITY replaces the count of -v.
    subreaper |= env("TINI_SUBREAPER").is_some();
    group_signal |= env("TINI_KILL_PROCESS_GROUP").is_some();
    if let Some(text) = env("TINI_VERBOSITY") {
        verbosity = c_atoi_unsigned(text.as_bytes());
    }
    let mut run = single_command(tini, command)?;
    run.subreaper = subreaper;
    run.group_signal = group_signal;
    run.verbose = verbosity > TINI_DEFAULT_VERBOSITY;
    run.warn_zombies = warn_zombies && verbosity > 0;
    run.parent_death_signal = parent_death_signal;
    run.exit_ok = exit_ok;
    let warning = (verbosity > 0 && !subreaper && !is_pid_1).then(|| {
        "not PID 1 and not a child subreaper: orphaned descendants will not be reaped \
         (use -s or set TINI_SUBREAPER, or run as PID 1)"
            .to_string()
    });
    Ok(Reading {
        request: Request::Run(Box::new(run)),
        warning,
    })
}

/// What C's `atoi` makes of `text`, stored in an `unsigned int` as tini
/// stores its verbosity: leading blanks and a sign are read, anything
/// else ends the number, and a negative number wraps around to a huge one.
fn c_atoi_unsigned(text: &[u8]) -> u32 {
    let text = text.trim_ascii_start();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |value, digit| {
            value.wrapping_mul(10).wrapping_add(u32::from(digit - b'0'))
        });
    if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    }
}

/// dumb-init's long options, which getopt_long also takes abbreviated.
const DUMB_INIT_LONG: [&str; 5] = ["help", "single-child", "rewrite", "verbose", "version"];

fn parse_dumb_init(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Reading, Failure> {
    use lexopt::prelude::*;
    let dumb_init = Persona::DumbInit;
    let mut parser = lexopt::Parser::from_args(args);
    let bad = |e: lexopt::Error| usage_failure(dumb_init, e);
    let mut command = Vec::new();
    let mut setsid = true;
    let mut verbose = false;
    let mut rewrite = Vec::new();
    while let Some(arg) = parser.next().map_err(bad)? {
        let option = match &arg {
            Short(c) => Some(*c),
            Long(name) => Some(dumb_init_long(name)?),
            Value(_) => None,
        };
        match option {
            Some('h') => return Ok(plain(Request::Help(dumb_init_help()))),
            Some('V') => return Ok(plain(Request::Help(version_text(dumb_init)))),
            Some('v') => verbose = true,
            Some('c') => setsid = false,
            Some('r') => {
                let given = text_value(dumb_init, &mut parser)?;
                let pair = signals::parse_rewrite(&given)
                    .map_err(|why| value_failure(dumb_init, 'r', &why))?;
                rewrite.push(pair);
            }
            Some(_) => return Err(bad(arg.unexpected())),
            None => {
                // dumb-init stops reading options at the program ("+" in
                // its getopt string): the rest is the program's.
                if let Value(program) = arg {
                    command.push(program);
                }
                command.extend(parser.raw_args().map_err(bad)?);
            }
        }
    }
    if env("DUMB_INIT_DEBUG").is_some_and(|value| value == "1") {
        verbose = true;
    }
    if env("DUMB_INIT_SETSID").is_some_and(|value| value == "0") {
        setsid = false;
    }
    let mut run = single_command(dumb_init, command)?;
    // dumb-init reaps what the kernel gives it, and asks for nothing more.
    run.subreaper = false;
    run.verbose = verbose;
    run.setsid = Some(setsid);
    run.rewrite = rewrite;
    Ok(plain(Request::Run(Box::new(run))))
}

/// The short letter of one of dumb-init's long options, given whole or by
/// a prefix that only one of them has.
fn dumb_init_long(given: &str) -> Result<char, Failure> {
    let letter = |name: &str| match name {
        "help" => 'h',
        "single-child" => 'c',
        "rewrite" => 'r',
        "verbose" => 'v',
        _ => 'V',
    };
    if let Some(exact) = DUMB_INIT_LONG.iter().find(|name| **name == given) {
        return Ok(letter(exact));
    }
    let mut matching = DUMB_INIT_LONG.iter().filter(|name| name.starts_with(given));
    match (matching.next(), matching.next()) {
        (Some(only), None) if !given.is_empty() => Ok(letter(only)),
        (Some(_), Some(_)) => Err(Failure::new(
            "reading dumb-init arguments",
            format!("option '--{given}' is ambiguous; see 'dumb-init --help'"),
        )),
        _ => Err(Failure::new(
            "reading dumb-init arguments",
            format!("invalid option '--{given}'; see 'dumb-init --help'"),
        )),
    }
}

/// `herd run -- PROGRAM ARGS`, with every setting at herd's default.
fn single_command(persona: Persona, command: Vec<OsString>) -> Result<RunArgs, Failure> {
    if command.is_empty() {
        return Err(Failure::new(
            format!("reading {} arguments", persona.name()),
            format!("a program to run is needed; see '{} -h'", persona.name()),
        ));
    }
    let words = [OsString::from("run"), OsString::from("--")]
        .into_iter()
        .chain(command);
    match cli::parse(words)? {
        // As under the tool: its child outlives it (which matters only when
        // it is not PID 1; a PID 1 that dies takes its namespace along).
        Request::Run(run) => Ok(RunArgs {
            death_signal: false,
            ..*run
        }),
        other => Err(Failure::new(
            format!("reading {} arguments", persona.name()),
            format!("unexpected request {other:?}"),
        )),
    }
}

fn plain(request: Request) -> Reading {
    Reading {
        request,
        warning: None,
    }
}

fn text_value(persona: Persona, parser: &mut lexopt::Parser) -> Result<String, Failure> {
    let value = parser.value().map_err(|e| usage_failure(persona, e))?;
    value.into_string().map_err(|v| {
        Failure::new(
            format!("reading {} arguments", persona.name()),
            format!("{v:?} is not UTF-8"),
        )
    })
}

fn usage_failure(persona: Persona, error: lexopt::Error) -> Failure {
    Failure::new(
        format!("reading {} arguments", persona.name()),
        format!("{error}; see '{} -h'", persona.name()),
    )
}

fn value_failure(persona: Persona, option: char, why: &str) -> Failure {
    Failure::new(
        format!("reading {} arguments", persona.name()),
        format!("-{option}: {why}"),
    )
}

/// Names herd, as every `--version` of herd's does, and the tool it stands in for.
fn version_text(persona: Persona) -> String {
    format!(
        "herd {}, as {}\n",
        env!("CARGO_PKG_VERSION"),
        persona.name()
    )
}

fn license_text() -> String {
    format!(
        "herd {} is licensed under {}.\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_LICENSE")
    )
}

fn tini_help() -> String {
    format!(
        "herd {}, as tini (also as docker-init)\n\
         Usage: tini [OPTIONS] PROGRAM -- [ARGS] | --version\n\n\
         Runs PROGRAM as herd's child, as 'herd run -- PROGRAM ARGS' does with\n\
         the options below; 'man herd' (PERSONALITIES) says where herd differs.\n\n\
         Command line options:\n\n\
         \x20 --version: Show herd's version and exit.\n\
         \x20 -h: Show this help message and exit.\n\
         \x20 -s: Register as a process subreaper.\n\
         \x20 -p SIGNAL: Trigger SIGNAL when parent dies, e.g. \"-p SIGKILL\" (--parent-death-signal).\n\
         \x20 -v: Generate more verbose output (herd's -v from two on).\n\
         \x20 -w: Print a warning when processes are getting reaped (--warn-zombies).\n\
         \x20 -g: Send signals to the child's process group (--group-signal).\n\
         \x20 -e EXIT_CODE: Remap EXIT_CODE (from 0 to 255) to 0; repeatable (--exit-ok).\n\
         \x20 -l: Show license and exit.\n\n\
         Environment variables:\n\n\
         \x20 TINI_SUBREAPER: Register as a process subreaper.\n\
         \x20 TINI_VERBOSITY: Set the verbosity level (default: 1).\n\
         \x20 TINI_KILL_PROCESS_GROUP: Send signals to the child's process group.\n\n\
         Exit status: PROGRAM's (128+N if it died of signal N, 0 for an -e code);\n\
         125 herd failed or the command line is wrong; 126 not executable; 127 not found.\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn dumb_init_help() -> String {
    format!(
        "herd {}, as dumb-init\n\
         Usage: dumb-init [option] command [[arg] ...]\n\n\
         Runs command as herd's child, as 'herd run --setsid -- command' does with\n\
         the options below; 'man herd' (PERSONALITIES) says where herd differs.\n\n\
         Optional arguments:\n\
         \x20  -c, --single-child   Run in single-child mode (--no-setsid): signals go\n\
         \x20                       to the direct child only, not its descendants.\n\
         \x20  -r, --rewrite s:r    Rewrite received signal s to new signal r before\n\
         \x20                       proxying; r 0 drops it; repeatable (--rewrite-signal).\n\
         \x20  -v, --verbose        Print debugging information to stderr (herd's -v).\n\
         \x20  -h, --help           Print this help message and exit.\n\
         \x20  -V, --version        Print herd's version and exit.\n\n\
         Environment variables: DUMB_INIT_SETSID=0 is -c; DUMB_INIT_DEBUG=1 is -v.\n\n\
         Exit status: command's (128+N if it died of signal N); 125 herd failed or\n\
         the command line is wrong; 126 not executable; 127 not found.\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(persona: Persona, words: &[&str], vars: &[(&str, &str)]) -> Result<Reading, Failure> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(key, value)| (key.to_string(), OsString::from(value)))
            .collect();
        let env = move |key: &str| {
            vars.iter()
                .find(|(set, _)| set == key)
                .map(|(_, value)| value.clone())
        };
        parse(
            persona,
            words.iter().map(OsString::from).collect(),
            env,
            false,
        )
    }

    fn run(persona: Persona, words: &[&str], vars: &[(&str, &str)]) -> RunArgs {
        match read(persona, words, vars).map(|reading| reading.request) {
            Ok(Request::Run(run)) => *run,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    fn help_text(persona: Persona, words: &[&str]) -> String {
        match read(persona, words, &[]).map(|reading| reading.request) {
            Ok(Request::Help(text)) => text,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn knows_the_tools_by_the_basename_of_argv0() {
        for (program, persona) in [
            ("tini", Some(Persona::Tini)),
            ("/sbin/docker-init", Some(Persona::Tini)),
            ("/usr/local/bin/dumb-init", Some(Persona::DumbInit)),
            ("./tini", Some(Persona::Tini)),
            ("herd", None),
            ("tini-static", None),
            ("/tini/herd", None),
            ("", None),
        ] {
            assert_eq!(Persona::of(OsStr::new(program)), persona, "{program}");
        }
    }

    #[test]
    fn tini_reads_every_option_and_its_defaults_are_tinis() {
        let run = run(Persona::Tini, &["--", "nginx", "-g", "daemon off;"], &[]);
        assert_eq!(run.command, ["nginx", "-g", "daemon off;"]);
        assert!(!run.subreaper && !run.group_signal && !run.verbose && !run.warn_zombies);
        assert_eq!(run.setsid, None);
        let run = super::tests::run(
            Persona::Tini,
            &[
                "-s", "-g", "-w", "-vv", "-p", "SIGKILL", "-e", "143", "-e3", "--", "x",
            ],
            &[],
        );
        assert!(run.subreaper && run.group_signal && run.warn_zombies && run.verbose);
        assert_eq!(run.parent_death_signal, Some(libc::SIGKILL));
        assert_eq!(run.exit_ok, [143, 3]);
    }

    #[test]
    fn tini_takes_options_after_the_program_as_getopt_does_unless_posixly_correct() {
        let run = run(Persona::Tini, &["echo", "a", "-g", "--", "-s"], &[]);
        assert_eq!(run.command, ["echo", "a", "-s"]);
        assert!(run.group_signal && !run.subreaper);
        let run = super::tests::run(
            Persona::Tini,
            &["echo", "a", "-g"],
            &[("POSIXLY_CORRECT", "")],
        );
        assert_eq!(run.command, ["echo", "a", "-g"]);
        assert!(!run.group_signal);
    }

    #[test]
    fn tini_variables_add_to_the_options_and_verbosity_replaces_their_count() {
        let vars = [
            ("TINI_SUBREAPER", ""),
            ("TINI_KILL_PROCESS_GROUP", "0"),
            ("TINI_VERBOSITY", "0"),
        ];
        let reading = read(Persona::Tini, &["-vvv", "-w", "x"], &vars).unwrap();
        assert!(reading.warning.is_none());
        let Request::Run(run) = reading.request else {
            panic!("not a run")
        };
        assert!(run.subreaper && run.group_signal);
        assert!(!run.verbose, "TINI_VERBOSITY=0 replaces -vvv");
        assert!(!run.warn_zombies, "verbosity 0 silences -w");
        for (text, verbose) in [
            ("2", true),
            (" 3x", true),
            ("1", false),
            ("x", false),
            ("-1", true),
        ] {
            let run = run_of(&[("TINI_VERBOSITY", text)]);
            assert_eq!(run.verbose, verbose, "TINI_VERBOSITY={text:?}");
        }
    }

    fn run_of(vars: &[(&str, &str)]) -> RunArgs {
        run(Persona::Tini, &["x"], vars)
    }

    #[test]
    fn reads_verbosity_as_c_atoi_into_an_unsigned_int() {
        for (text, value) in [
            ("", 0),
            ("7", 7),
            ("  12abc", 12),
            ("+4", 4),
            ("-1", u32::MAX),
            ("abc", 0),
            (
                "99999999999999999999",
                99_999_999_999_999_999_999u128 as u32,
            ),
        ] {
            assert_eq!(c_atoi_unsigned(text.as_bytes()), value, "{text:?}");
        }
    }

    #[test]
    fn tini_warns_when_orphans_will_not_be_reaped_as_tini_does() {
        let warned = |words: &[&str], vars: &[(&str, &str)], pid_1: bool| {
            let vars: Vec<(String, OsString)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect();
            let env = move |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            let args = words.iter().map(OsString::from).collect();
            parse(Persona::Tini, args, env, pid_1)
                .unwrap()
                .warning
                .is_some()
        };
        assert!(warned(&["x"], &[], false));
        assert!(!warned(&["x"], &[], true));
        assert!(!warned(&["-s", "x"], &[], false));
        assert!(!warned(&["x"], &[("TINI_SUBREAPER", "1")], false));
        assert!(!warned(&["x"], &[("TINI_VERBOSITY", "0")], false));
    }

    #[test]
    fn tini_version_help_and_license_name_herd() {
        assert!(help_text(Persona::Tini, &["--version"]).starts_with("herd "));
        assert!(help_text(Persona::Tini, &["-h", "x"]).contains("-e EXIT_CODE"));
        assert!(help_text(Persona::Tini, &["-l"]).contains("MIT OR Apache-2.0"));
        let run = run(Persona::Tini, &["--", "--version"], &[]);
        assert_eq!(run.command, ["--version"]);
    }

    #[test]
    fn tini_refuses_bad_options_with_herds_exit_code() {
        for (words, says) in [
            (&["-x", "true"][..], "-x"),
            (&["--version", "true"], "--version"),
            (&["-e", "256", "true"], "-e: "),
            (&["-e", "x", "true"], "-e: "),
            (&["-p", "NOPE", "true"], "-p: "),
            (&["-p"], "-p"),
            (&[], "a program to run is needed"),
            (&["-s", "--"], "a program to run is needed"),
        ] {
            let failure = read(Persona::Tini, words, &[]).unwrap_err();
            assert_eq!(failure.exit_code, 125, "{words:?}");
            assert!(failure.to_string().contains(says), "{words:?}: {failure}");
            assert!(failure.to_string().starts_with("reading tini arguments: "));
        }
    }

    #[test]
    fn dumb_init_reads_every_option_and_defaults_to_setsid() {
        let run = run(Persona::DumbInit, &["nginx", "-c", "x"], &[]);
        assert_eq!(run.command, ["nginx", "-c", "x"]);
        assert_eq!(run.setsid, Some(true));
        assert!(!run.subreaper && !run.verbose && run.rewrite.is_empty());
        let run = super::tests::run(
            Persona::DumbInit,
            &[
                "-c",
                "-v",
                "-r",
                "15:3",
                "--rewrite=10:0",
                "--rewrite",
                "TERM:QUIT",
                "--",
                "x",
            ],
            &[],
        );
        assert_eq!(run.setsid, Some(false));
        assert!(run.verbose);
        assert_eq!(
            run.rewrite,
            [
                (libc::SIGTERM, libc::SIGQUIT),
                (libc::SIGUSR1, 0),
                (libc::SIGTERM, libc::SIGQUIT)
            ]
        );
        let run = super::tests::run(Persona::DumbInit, &["--single", "--verb", "x"], &[]);
        assert_eq!(run.setsid, Some(false));
        assert!(run.verbose);
    }

    #[test]
    fn dumb_init_variables_take_only_their_one_value() {
        let setsid =
            |value: &str| run(Persona::DumbInit, &["x"], &[("DUMB_INIT_SETSID", value)]).setsid;
        assert_eq!(setsid("0"), Some(false));
        assert_eq!(setsid("1"), Some(true));
        assert_eq!(setsid("no"), Some(true));
        let verbose =
            |value: &str| run(Persona::DumbInit, &["x"], &[("DUMB_INIT_DEBUG", value)]).verbose;
        assert!(verbose("1"));
        assert!(!verbose("0"));
        assert!(!verbose("yes"));
    }

    #[test]
    fn dumb_init_version_and_help_name_herd() {
        for words in [&["-V"][..], &["--version"], &["--vers"]] {
            assert!(
                help_text(Persona::DumbInit, words).starts_with("herd "),
                "{words:?}"
            );
        }
        assert!(help_text(Persona::DumbInit, &["--help"]).contains("--single-child"));
    }

    #[test]
    fn dumb_init_refuses_bad_options_with_herds_exit_code() {
        for (words, says) in [
            (&["-x", "true"][..], "-x"),
            (&["--ver", "true"], "ambiguous"),
            (&["--nope", "true"], "invalid option '--nope'"),
            (&["-r", "99:1", "true"], "-r: "),
            (&["-r", "15", "true"], "-r: "),
            (&["--verbose=1", "true"], "--verbose"),
            (&[], "a program to run is needed"),
        ] {
            let failure = read(Persona::DumbInit, words, &[]).unwrap_err();
            assert_eq!(failure.exit_code, 125, "{words:?}");
            assert!(failure.to_string().contains(says), "{words:?}: {failure}");
        }
    }
}
