//! Procfile and env-file parsing (pure, with line numbers in errors).

use crate::error::Failure;
use crate::spec::{check_name, Defaults, ProcessSpec};

/// Marks herd's settings at the end of a Procfile line; to `sh -c` it is a
/// comment, so foreman and honcho still run the line as written.
const ANNOTATION: &str = "# herd:";

/// Reads a foreman/honcho Procfile: `name: command` per line, blank lines and
/// `#` lines ignored, and herd's settings in a trailing
/// `# herd: key=value oneshot ...` note.
pub fn parse_procfile(
    text: &str,
    path: &str,
    defaults: &Defaults,
) -> Result<Vec<ProcessSpec>, Failure> {
    let text = strip_bom(text);
    check_no_nul(text, path)?;
    let mut found: Vec<(usize, ProcessSpec)> = Vec::new();
    for (line, number) in text.lines().zip(1..) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why| Failure::new(format!("{path}:{number}"), why);
        let spec = parse_process(line, defaults).map_err(at)?;
        if let Some((first, _)) = found.iter().find(|(_, other)| other.name == spec.name) {
            return Err(at(format!(
                "duplicate process name '{}' (first on line {first})",
                spec.name
            )));
        }
        found.push((number, spec));
    }
    if found.is_empty() {
        return Err(Failure::new(path, "no processes defined"));
    }
    Ok(found.into_iter().map(|(_, spec)| spec).collect())
}

fn parse_process(line: &str, defaults: &Defaults) -> Result<ProcessSpec, String> {
    let (name, command) = line.split_once(':').ok_or("expected 'name: command'")?;
    let name = name.trim();
    check_name(name)?;
    let (command, settings) = split_annotation(command.trim());
    if command.is_empty() {
        return Err(format!("empty command for '{name}'"));
    }
    let mut spec = ProcessSpec::new(name.to_string(), command.to_string(), defaults);
    for setting in settings.split_whitespace() {
        match setting.split_once('=') {
            Some((key, value)) => spec.apply(key, Some(value))?,
            None => spec.apply(setting, None)?,
        }
    }
    Ok(spec)
}

/// Splits `command # herd: settings` into the command and the settings. The
/// note is in the part of the line that sh reads as a comment, so a marker
/// inside quotes (`echo "# herd: x"`) belongs to the command. The note must
/// end the line, so only the last marker can be it; an earlier one is part of
/// the comment. Requiring whitespace before it leaves `#` inside a word, like
/// `a#b`, alone.
fn split_annotation(command: &str) -> (&str, &str) {
    let Some(comment) = shell_comment_start(command) else {
        return (command, "");
    };
    command
        .rmatch_indices(ANNOTATION)
        .map(|(at, _)| at)
        .take_while(|&at| at >= comment)
        .find(|&at| {
            let before = &command[..at];
            before.is_empty() || before.ends_with(char::is_whitespace)
        })
        .map_or((command, ""), |at| {
            (command[..at].trim_end(), &command[at + ANNOTATION.len()..])
        })
}

/// Where sh would start a comment in `command`: the first `#` that begins a
/// word outside quotes. Quoting follows sh: `'...'` is literal, `"..."` and
/// bare words take `\` escapes.
fn shell_comment_start(command: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    let mut word_starts = true;
    for (at, c) in command.char_indices() {
        if escaped {
            escaped = false;
            word_starts = false;
            continue;
        }
        match (quote, c) {
            (None, '#') if word_starts => return Some(at),
            (None, '\\') | (Some('"'), '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if open == c => quote = None,
            _ => {}
        }
        word_starts = quote.is_none() && (c.is_whitespace() || ";&|()<>".contains(c));
    }
    None
}

/// Without the UTF-8 byte order mark that some Windows editors put first:
/// it is no part of the first line.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A NUL byte can be in no command, variable name or value, since the
/// kernel takes argv and the environment as C strings; refusing it here
/// names the line, where starting the process would fail later without.
fn check_no_nul(text: &str, path: &str) -> Result<(), Failure> {
    let Some(at) = text.find('\0') else {
        return Ok(());
    };
    let (before, _) = text.split_at(at);
    let number = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or(before).chars().count() + 1;
    Err(Failure::new(
        format!("{path}:{number}"),
        format!("a NUL byte (column {column}) cannot be in a command or a variable"),
    ))
}

/// Which line is wrong, and why.
type LineError = (usize, String);

/// Reads a dotenv file: `KEY=VALUE` per line, optionally after `export `,
/// blank lines and `#` lines ignored. A value is unquoted (trimmed, a
/// ` #...` comment removed), single-quoted (literal) or double-quoted (with
/// `\n`, `\t`, `\\`, `\"`, `\$` escapes, across lines until the closing
/// quote). `$NAME` is never expanded: the file is data, not a script, and
/// `\$` exists only so that files written for tools that do expand still
/// mean the same here.
pub fn parse_env_file(text: &str, path: &str) -> Result<Vec<(String, String)>, Failure> {
    let text = strip_bom(text);
    check_no_nul(text, path)?;
    let mut vars = Vec::new();
    let mut lines = text.lines().zip(1..);
    while let Some((line, number)) = lines.next() {
        // Only the start: the end may be inside a multi-line quoted value.
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let var = parse_var(line, number, &mut lines)
            .map_err(|(number, why)| Failure::new(format!("{path}:{number}"), why))?;
        vars.push(var);
    }
    Ok(vars)
}

/// Parses the assignment on `line`, taking further lines from `more` while
/// a double-quoted value is open.
fn parse_var<'a>(
    line: &'a str,
    number: usize,
    more: &mut impl Iterator<Item = (&'a str, usize)>,
) -> Result<(String, String), LineError> {
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
        _ => line,
    };
    let (key, raw) = line
        .split_once('=')
        .ok_or_else(|| (number, "expected 'KEY=VALUE'".to_string()))?;
    let key = key.trim_end();
    if !valid_key(key) {
        let why =
            format!("'{key}' is not a valid variable name (letters, digits, '_'; no digit first)");
        return Err((number, why));
    }
    let quoted = raw.trim_start();
    let (value, after, end) = if let Some(rest) = quoted.strip_prefix('\'') {
        let (value, after) = rest
            .split_once('\'')
            .ok_or_else(|| (number, "unterminated single quote".to_string()))?;
        (value.to_string(), after, number)
    } else if let Some(rest) = quoted.strip_prefix('"') {
        double_quoted(rest, number, more)
            .ok_or_else(|| (number, "unterminated double quote".to_string()))?
    } else {
        return Ok((key.to_string(), unquoted(raw).to_string()));
    };
    let after = after.trim();
    if !after.is_empty() && !after.starts_with('#') {
        return Err((end, format!("unexpected '{after}' after the closing quote")));
    }
    Ok((key.to_string(), value))
}

/// `[A-Za-z_][A-Za-z0-9_]*`, what a shell accepts as a variable name.
fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// As in sh, `#` starts a comment only at the start of a word, so `a#b`
/// and `KEY=#b` keep theirs.
fn unquoted(raw: &str) -> &str {
    let comment = raw
        .char_indices()
        .find(|&(at, c)| c == '#' && raw[..at].ends_with(char::is_whitespace))
        .map_or(raw.len(), |(at, _)| at);
    raw[..comment].trim()
}

/// Reads a double-quoted value from `first`, just past the opening quote on
/// line `number`, pulling lines from `more` until the closing quote. Returns
/// the value, the text after the closing quote and the line it is on, or
/// `None` if the quote is never closed.
fn double_quoted<'a>(
    first: &'a str,
    mut number: usize,
    more: &mut impl Iterator<Item = (&'a str, usize)>,
) -> Option<(String, &'a str, usize)> {
    let mut value = String::new();
    let mut line = first;
    loop {
        let mut chars = line.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return Some((value, &line[at + 1..], number)),
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, escaped @ ('\\' | '"' | '$'))) => value.push(escaped),
                    // Any other backslash is kept, as sh keeps it in "...".
                    Some((_, other)) => value.extend(['\\', other]),
                    None => value.push('\\'),
                },
                c => value.push(c),
            }
        }
        (line, number) = more.next()?;
        value.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Ready, Restart, TcpCheck, TcpPort};
    use std::time::Duration;

    fn procfile(text: &str) -> Result<Vec<ProcessSpec>, Failure> {
        parse_procfile(text, "Procfile", &Defaults::default())
    }

    fn procfile_error(text: &str, line: usize, why: &str) {
        let failure = procfile(text).unwrap_err();
        assert_eq!(
            failure.doing,
            format!("Procfile:{line}"),
            "{text:?}: {failure}"
        );
        assert!(failure.cause.contains(why), "{text:?}: {failure}");
    }

    fn commands(specs: &[ProcessSpec]) -> Vec<(&str, &str)> {
        specs
            .iter()
            .map(|spec| (spec.name.as_str(), spec.command.as_str()))
            .collect()
    }

    #[test]
    fn reads_a_plain_procfile_with_comments_blank_lines_and_crlf() {
        let text = "# services\r\n\r\nweb: ./server --port 8080\r\n   \r\n  # indented comment\r\n\
                    worker.1 :  bundle exec sidekiq  \r\nclock_2: echo tick\n";
        let specs = procfile(text).unwrap();
        assert_eq!(
            commands(&specs),
            [
                ("web", "./server --port 8080"),
                ("worker.1", "bundle exec sidekiq"),
                ("clock_2", "echo tick"),
            ]
        );
        assert_eq!(
            specs[0],
            ProcessSpec::new(
                "web".into(),
                "./server --port 8080".into(),
                &Defaults::default()
            )
        );
    }

    #[test]
    fn starts_every_process_from_the_defaults() {
        let defaults = Defaults {
            restart: Restart::Always,
            grace: Duration::from_secs(3),
            ..Defaults::default()
        };
        let specs = parse_procfile("a: x\nb: y # herd: grace=1\n", "Procfile", &defaults).unwrap();
        assert_eq!(specs[0].restart, Restart::Always);
        assert_eq!(specs[0].grace, Duration::from_secs(3));
        assert_eq!(specs[1].restart, Restart::Always);
        assert_eq!(specs[1].grace, Duration::from_secs(1));
    }

    #[test]
    fn keeps_colons_after_the_first_in_the_command() {
        let specs = procfile("web: curl http://localhost:80/\n").unwrap();
        assert_eq!(specs[0].command, "curl http://localhost:80/");
    }

    #[test]
    fn refuses_bad_procfile_lines_naming_the_line() {
        procfile_error("web: x\n\nno colon here\n", 3, "expected 'name: command'");
        procfile_error(
            "# c\nweb server: x\n",
            2,
            "'web server' is not a valid name (letters, digits, '_', '.', '-'; not '.' or '..')",
        );
        procfile_error(": x\n", 1, "'' is not a valid name");
        procfile_error("a: x\n.: y\n", 2, "'.' is not a valid name");
        procfile_error("..: y\n", 1, "'..' is not a valid name");
        procfile_error("a: x\r\nweb:   \r\n", 2, "empty command for 'web'");
        procfile_error("web: # herd: oneshot\n", 1, "empty command for 'web'");
    }

    #[test]
    fn skips_a_byte_order_mark() {
        let specs = procfile("\u{feff}web: ./serve\r\nworker: ./work\r\n").unwrap();
        assert_eq!(commands(&specs), [("web", "./serve"), ("worker", "./work")]);
        let specs = procfile("\u{feff}# comment\nweb: ./serve\n").unwrap();
        assert_eq!(commands(&specs), [("web", "./serve")]);
        procfile_error(
            "\u{feff}web: x\n\u{feff}b: y\n",
            2,
            "'\u{feff}b' is not a valid name",
        );
    }

    #[test]
    fn refuses_a_nul_byte_naming_its_line() {
        let why = "a NUL byte (column 13) cannot be in a command or a variable";
        procfile_error("a: x\nweb: ./serve\0 --port 80\n", 2, why);
        procfile_error("a: x\n# c\0\n", 2, "NUL byte (column 4)");
        procfile_error("\u{feff}\0: x\n", 1, "NUL byte (column 1)");
        procfile_error("a: x\r\nb: y\r\nc: é\0\n", 3, "NUL byte (column 5)");
    }

    #[test]
    fn refuses_a_duplicate_naming_both_lines() {
        procfile_error(
            "# c\nweb: a\nworker: b\n\nweb: c\n",
            5,
            "duplicate process name 'web' (first on line 2)",
        );
    }

    #[test]
    fn refuses_a_procfile_without_processes() {
        for text in ["", "\n\n", "# only\n  # comments\r\n"] {
            let failure = procfile(text).unwrap_err();
            assert_eq!(failure.to_string(), "Procfile: no processes defined");
        }
    }

    #[test]
    fn applies_every_annotated_setting() {
        let text = "worker: ./work --fast   # herd: restart=on-failure grace=5 stop-signal=INT \
                    ready=tcp:8080 ready-timeout=60 oneshot\n";
        let worker = &procfile(text).unwrap()[0];
        assert_eq!(worker.command, "./work --fast");
        assert_eq!(worker.restart, Restart::OnFailure);
        assert_eq!(worker.grace, Duration::from_secs(5));
        assert_eq!(worker.stop_signal, libc::SIGINT);
        let check = TcpCheck {
            host: None,
            port: TcpPort::Number(8080),
        };
        assert_eq!(worker.ready, Ready::Tcp(check));
        assert_eq!(worker.ready_timeout, Duration::from_secs(60));
        assert!(worker.oneshot);
        assert_eq!(worker.instances, 1);
        let web =
            &procfile("web: ./serve # herd: instances=4\nclock: ./tick # herd: instances=0\n")
                .unwrap();
        assert_eq!((web[0].instances, web[1].instances), (4, 0));
        assert_eq!(web[0].family, "web");
    }

    #[test]
    fn reads_annotations_only_at_the_end_after_whitespace() {
        let specs = procfile(
            "a: echo \"a#b\" # plain comment\n\
             b: ./x # herd: oneshot=no # herd: restart=always\n\
             c: echo x# herd: oneshot\n\
             d: ./y #herd: oneshot\n\
             e: ./z\t# herd:\n\
             f: ./w # herd:   \n",
        )
        .unwrap();
        assert_eq!(
            commands(&specs),
            [
                ("a", "echo \"a#b\" # plain comment"),
                ("b", "./x # herd: oneshot=no"),
                ("c", "echo x# herd: oneshot"),
                ("d", "./y #herd: oneshot"),
                ("e", "./z"),
                ("f", "./w"),
            ]
        );
        assert_eq!(specs[1].restart, Restart::Always);
        assert!(specs.iter().all(|spec| !spec.oneshot));
    }

    #[test]
    fn a_marker_in_quotes_is_part_of_the_command() {
        let specs = procfile(
            "a: echo \"x # herd: oneshot\"\n\
             b: printf '%s\\n' '# herd: no' # herd: oneshot\n\
             c: echo \\# herd: oneshot\n\
             d: echo hi # it's a comment # herd: oneshot\n\
             e: echo \"say \\\"# herd: no\\\"\" # herd: oneshot\n\
             f: true;# herd: oneshot\n",
        )
        .unwrap();
        assert_eq!(
            commands(&specs),
            [
                ("a", "echo \"x # herd: oneshot\""),
                ("b", "printf '%s\\n' '# herd: no'"),
                ("c", "echo \\# herd: oneshot"),
                ("d", "echo hi # it's a comment"),
                ("e", "echo \"say \\\"# herd: no\\\"\""),
                ("f", "true;# herd: oneshot"),
            ]
        );
        let oneshot: Vec<bool> = specs.iter().map(|spec| spec.oneshot).collect();
        assert_eq!(oneshot, [false, true, false, true, true, false]);
    }

    #[test]
    fn refuses_a_bad_annotation_on_its_line() {
        procfile_error(
            "a: x\nb: y # herd: colour=red\n",
            2,
            "unknown setting 'colour'",
        );
        procfile_error(
            "a: x\n\nb: y # herd: restart\n",
            3,
            "'restart' needs a value",
        );
        procfile_error(
            "a: x # herd: grace=soon\n",
            1,
            "'soon' is not a number of seconds",
        );
        procfile_error(
            "a: x\nb: y # herd: ready-timeout=1e19\n",
            2,
            "'1e19' is more than a year (31536000 seconds)",
        );
        procfile_error(
            "a: x # herd: grace=31536001\n",
            1,
            "'31536001' is more than a year",
        );
        procfile_error(
            "a: x\nb: y # herd: instances=1000\n",
            2,
            "'1000' is more than 100 instances",
        );
        procfile_error(
            "a: x # herd: instances=two\n",
            1,
            "'two' is not a number of instances (0 to 100)",
        );
        procfile_error(
            "a: x # herd: ready=tcp:web:80\n",
            1,
            "herd looks up no host names",
        );
    }

    fn env(text: &str) -> Vec<(String, String)> {
        parse_env_file(text, ".env").unwrap()
    }

    fn env_error(text: &str, line: usize, why: &str) {
        let failure = parse_env_file(text, ".env").unwrap_err();
        assert_eq!(failure.doing, format!(".env:{line}"), "{text:?}: {failure}");
        assert!(failure.cause.contains(why), "{text:?}: {failure}");
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(key, value)| (key.into(), value.into()))
            .collect()
    }

    #[test]
    fn reads_unquoted_values() {
        let text =
            "# settings\r\n\r\nA=1\r\n  B = two words  \nC=\nD=a#b\nE=x # comment\nF=  # only\n\
                    G=x=y\n_h9=it's\nH=#x\n";
        assert_eq!(
            env(text),
            vars(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", ""),
                ("D", "a#b"),
                ("E", "x"),
                ("F", ""),
                ("G", "x=y"),
                ("_h9", "it's"),
                ("H", "#x"),
            ])
        );
    }

    #[test]
    fn reads_quoted_values() {
        let text =
            "A='single $HOME \\n \"x\"'\nB=\"double\"\nC=\"\" # empty\nD='' \nE=\"a # b\"#c\n";
        assert_eq!(
            env(text),
            vars(&[
                ("A", "single $HOME \\n \"x\""),
                ("B", "double"),
                ("C", ""),
                ("D", ""),
                ("E", "a # b")
            ])
        );
    }

    #[test]
    fn unescapes_double_quoted_values() {
        let text = r#"A="1\n2\t3 \\ \" \$HOME \a""#;
        assert_eq!(env(text), vars(&[("A", "1\n2\t3 \\ \" $HOME \\a")]));
    }

    #[test]
    fn reads_double_quoted_values_across_lines() {
        let text = "A=\"first\r\n  second \\\"quoted\\\"\r\n\r\nlast\" # done\r\nB=2\n";
        assert_eq!(
            env(text),
            vars(&[("A", "first\n  second \"quoted\"\n\nlast"), ("B", "2")])
        );
    }

    #[test]
    fn accepts_export() {
        let text = "export A=1\nexport\tB='2'\n  export   C=\"3\"\nexport=4\nexportD=5\n";
        assert_eq!(
            env(text),
            vars(&[
                ("A", "1"),
                ("B", "2"),
                ("C", "3"),
                ("export", "4"),
                ("exportD", "5")
            ])
        );
    }

    #[test]
    fn reads_an_empty_file() {
        assert_eq!(env(""), vars(&[]));
        assert_eq!(env("# nothing\n\n"), vars(&[]));
    }

    #[test]
    fn skips_a_byte_order_mark_in_an_env_file() {
        assert_eq!(
            env("\u{feff}A=1\r\nB=2\r\n"),
            vars(&[("A", "1"), ("B", "2")])
        );
        assert_eq!(env("\u{feff}export A=1\n"), vars(&[("A", "1")]));
        assert_eq!(env("\u{feff}"), vars(&[]));
        env_error(
            "A=1\n\u{feff}B=2\n",
            2,
            "'\u{feff}B' is not a valid variable name",
        );
    }

    #[test]
    fn refuses_a_nul_byte_in_an_env_file_naming_its_line() {
        let why = "a NUL byte (column 3) cannot be in a command or a variable";
        env_error("A=1\nB\0C=2\n", 2, "NUL byte (column 2)");
        env_error("A=1\nB=\0\n", 2, why);
        env_error("A='x\0'\n", 1, "NUL byte (column 5)");
        env_error("A=\"one\ntw\0o\"\nB=1\n", 2, "NUL byte (column 3)");
        env_error("\u{feff}A=1 # \0\n", 1, "NUL byte (column 7)");
    }

    #[test]
    fn refuses_bad_env_lines_naming_the_line() {
        env_error("A=1\nJUST_A_WORD\n", 2, "expected 'KEY=VALUE'");
        env_error("A=1\nexport B\n", 2, "expected 'KEY=VALUE'");
        env_error("\n\n9LIVES=1\n", 3, "'9LIVES' is not a valid variable name");
        env_error("A-B=1\n", 1, "'A-B' is not a valid variable name");
        env_error("=1\n", 1, "'' is not a valid variable name");
        env_error("A=1\nB='open\nC=2'\n", 2, "unterminated single quote");
        env_error("A=1\nB=\"open\nC=2\n\n", 2, "unterminated double quote");
        env_error("A=\"ends\\\"\n", 1, "unterminated double quote");
        env_error("A='x' y\n", 1, "unexpected 'y' after the closing quote");
        env_error("A=\"x\"y\n", 1, "unexpected 'y' after the closing quote");
        env_error(
            "A=1\nB=\"two\nlines\" tail\n",
            3,
            "unexpected 'tail' after the closing quote",
        );
    }
}
