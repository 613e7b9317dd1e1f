//! The commands that talk to a running herd: status, stop, start NAME,
//! restart, signal, send and reload.

use crate::cli::{Action, ClientArgs, Probe};
use crate::control::{self, Client};
use crate::daemon::{self, Liveness, StatePaths};
use crate::error::Failure;
use crate::scoreboard;
use crate::wire;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// LSB exit codes of `status`.
const STATUS_RUNNING: u8 = 0;
const STATUS_NOT_RUNNING: u8 = 3;
const STATUS_UNKNOWN: u8 = 4;

/// How long the commands other than status, stop and send give the
/// supervisor to answer: it answers at once, between its other work.
const PATIENCE: Duration = Duration::from_secs(10);

/// How long `send` gives it: the answer comes once the process has taken
/// the bytes, up to a MiB of them.
const SEND_PATIENCE: Duration = Duration::from_secs(60);

pub fn run(args: ClientArgs) -> Result<u8, Failure> {
    let paths = daemon::resolve_target(&args.target)?.expect("client commands require a target");
    match args.action {
        Action::Status { json, timeout } => status(&paths, json, timeout),
        Action::Stop {
            timeout,
            process: None,
        } => stop(&paths, timeout),
        Action::Stop {
            process: Some(name),
            ..
        } => ask(&paths, &[("command", "stop"), ("process", &name)]),
        Action::Start { process } => ask(&paths, &[("command", "start"), ("process", &process)]),
        Action::Restart { process } => {
            ask(&paths, &[("command", "restart"), ("process", &process)])
        }
        Action::Signal { process, signal } => ask(
            &paths,
            &[
                ("command", "signal"),
                ("process", &process),
                ("signal", &signal.to_string()),
            ],
        ),
        Action::Send { process, text } => {
            // Read before connecting: a slow stdin is no reason to think the
            // supervisor slow.
            let bytes = match text {
                Some(text) => text.into_bytes(),
                None => {
                    let mut input = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut input)
                        .map_err(|e| Failure::io("reading stdin", &e))?;
                    input
                }
            };
            connected(&paths, SEND_PATIENCE)?
                .send(&process, &bytes)
                .map(|()| 0)
                .map_err(|failure| in_time(failure, SEND_PATIENCE))
        }
        Action::Reload { process, timeout } => reload(&paths, process.as_deref(), timeout),
        Action::Probe { check, timeout } => Ok(probe(&paths, check, timeout)),
    }
}

/// `status --ready` or `--live`: 0 when the supervisor is seen doing its
/// job (and, for `--ready`, every process is ready), else 1. Read from the
/// scoreboard, which never waits for the supervisor; without one, asked
/// over the socket within `timeout`. Quiet, for exec probes and Docker's
/// HEALTHCHECK, which only look at the code: a herd that is not running is
/// not ready either.
fn probe(paths: &StatePaths, check: Probe, timeout: Duration) -> u8 {
    let Liveness::Running(pid) = daemon::liveness(paths) else {
        return 1;
    };
    if let Some(Ok(snapshot)) = paths.dir.as_deref().map(|dir| current_board(dir, pid)) {
        let passed =
            snapshot.not_seen().is_none() && (check == Probe::Live || snapshot.group_ready);
        return u8::from(!passed);
    }
    let answer = Client::connect(paths, timeout).and_then(|client| match client {
        Some(mut client) => client.request(&[("command", "status")]).map(Some),
        None => Ok(None),
    });
    let passed = match (answer, check) {
        (Ok(Some(_)), Probe::Live) => true,
        (Ok(Some(fields)), Probe::Ready) => wire::field(&fields, "ready") == Some("yes"),
        _ => false,
    };
    u8::from(!passed)
}

/// One request that the supervisor answers at once.
fn ask(paths: &StatePaths, fields: &[(&str, &str)]) -> Result<u8, Failure> {
    connected(paths, PATIENCE)?
        .request(fields)
        .map(|_| 0)
        .map_err(|failure| in_time(failure, PATIENCE))
}

/// Asks for a reload and waits for its end: the supervisor answers once the
/// new generation is serving, or has failed, which its ready timeout bounds.
/// A failed reload exits 1; a supervisor that does not answer within
/// `timeout` too.
fn reload(
    paths: &StatePaths,
    process: Option<&str>,
    timeout: Option<Duration>,
) -> Result<u8, Failure> {
    let mut fields = vec![("command", "reload")];
    if let Some(name) = process {
        fields.push(("process", name));
    }
    let patience = timeout.unwrap_or(Duration::MAX);
    let answer = connected(paths, patience).and_then(|mut client| client.request(&fields));
    answer.map(|_| 0).map_err(|failure| {
        // A supervisor that stops during the reload fails it; its answer may
        // not be written before it exits.
        if failure.cause == control::CLOSED {
            return Failure::new("reload", "herd is stopping: the reload did not end")
                .with_exit_code(1);
        }
        // The supervisor's own answer (a failed reload, nothing to reload)
        // or its silence: not herd's failure.
        let code = if failure.doing.is_empty() || failure.cause == control::NO_ANSWER {
            1
        } else {
            failure.exit_code
        };
        in_time(failure, patience).with_exit_code(code)
    })
}

fn connected(paths: &StatePaths, patience: Duration) -> Result<Client, Failure> {
    Client::connect(paths, patience)
        .map_err(|failure| in_time(failure, patience))?
        .ok_or_else(|| not_running(paths))
}

fn not_running(paths: &StatePaths) -> Failure {
    Failure::message(format!("no herd is running as {}", paths.name))
}

/// Says how long the supervisor had, when it did not answer in time.
fn in_time(failure: Failure, patience: Duration) -> Failure {
    if failure.cause != control::NO_ANSWER {
        return failure;
    }
    Failure::new(
        failure.doing,
        format!("it did not answer within {}s", patience.as_secs_f64()),
    )
}

/// Asks the supervisor to stop the group and waits until it has exited, all
/// within `timeout`.
fn stop(paths: &StatePaths, timeout: Duration) -> Result<u8, Failure> {
    let asked = Instant::now();
    let mut supervisor = None;
    let answer = Client::connect(paths, timeout).and_then(|client| match client {
        Some(mut client) => {
            let answer = client.request(&[("command", "stop")]);
            supervisor = client.pid();
            answer
        }
        None => Err(not_running(paths)),
    });
    match answer {
        Ok(_) => {}
        // The supervisor may be gone before its reply is written: that is
        // the stop, done.
        Err(failure) if failure.cause == control::CLOSED => {}
        // One that did not answer in time is still running when the time is
        // up, as one that answered and is slow to exit is.
        Err(failure) if failure.cause == control::NO_ANSWER => {}
        Err(failure) => return Err(in_time(failure, timeout)),
    }
    let left = timeout.saturating_sub(asked.elapsed());
    wait_until_gone(paths, supervisor, left, timeout)
}

/// Waits until the `supervisor` asked to stop (by its pid, when its hello
/// gave it) has let go of its lock (it has exited), for what is `left` of
/// the `timeout`. Ctrl-C ends the wait, not the stop.
fn wait_until_gone(
    paths: &StatePaths,
    supervisor: Option<i32>,
    left: Duration,
    timeout: Duration,
) -> Result<u8, Failure> {
    let name = paths.name.clone();
    let _ = ctrlc::set_handler(move || {
        crate::log::line(format_args!("stop: interrupted; {name} goes on stopping"));
        std::process::exit(130);
    });
    if daemon::wait_for_exit(paths, supervisor, left) {
        return Ok(0);
    }
    crate::log::line(format_args!(
        "stop: {} still running after {}s",
        paths.name,
        timeout.as_secs_f64()
    ));
    Ok(1)
}

/// How long `status` waits for the supervisor when it asks it only because
/// the scoreboard cannot be read.
const STATUS_PATIENCE: Duration = Duration::from_secs(5);

fn status(paths: &StatePaths, json: bool, timeout: Option<Duration>) -> Result<u8, Failure> {
    let pid = match daemon::liveness(paths) {
        Liveness::NotRunning => {
            crate::log::line(format_args!("{} is not running", paths.name));
            return Ok(STATUS_NOT_RUNNING);
        }
        Liveness::Unknown(why) => {
            crate::log::line(format_args!("reading {}: {why}", paths.pid.display()));
            return Ok(STATUS_UNKNOWN);
        }
        Liveness::Running(pid) => pid,
    };
    let board = match (&paths.dir, timeout) {
        (Some(dir), None) => {
            let path = dir.join(scoreboard::FILE);
            match current_board(dir, pid) {
                Ok(snapshot) => return Ok(status_from_board(paths, pid, json, &snapshot)),
                Err(why) => Some(format!("reading {}: {why}", path.display())),
            }
        }
        _ => None,
    };
    let timeout = timeout.unwrap_or(STATUS_PATIENCE);
    let fields = match Client::connect(paths, timeout).and_then(|client| match client {
        Some(mut client) => client.request(&[("command", "status")]),
        None => Err(Failure::message("its control socket does not answer")),
    }) {
        Ok(fields) => fields,
        Err(failure) => {
            let pid = pid.map_or(String::new(), |pid| format!(" (pid {pid})"));
            let board = board.map_or(String::new(), |why| format!("{why}; "));
            crate::log::line(format_args!(
                "status of {}{pid}: {board}{}",
                paths.name,
                in_time(failure, timeout)
            ));
            return Ok(STATUS_UNKNOWN);
        }
    };
    let processes = read_status(&fields);
    let text = if json {
        status_json(&paths.name, pid, &processes)
    } else {
        status_table(&processes)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if let Some(why) = board {
        crate::log::line(format_args!("{why}: the supervisor answered instead"));
    }
    Ok(STATUS_RUNNING)
}

/// `herd status` from the scoreboard: the same rows as the supervisor
/// would give, and a note when it has not been seen doing its job.
/// The scoreboard of `dir` if it is the one of supervisor `pid` (the pid
/// file's): one a killed supervisor left is still there while the next one
/// takes the directory over.
fn current_board(dir: &std::path::Path, pid: Option<i32>) -> Result<scoreboard::Snapshot, String> {
    let snapshot = scoreboard::read(dir).map_err(|why| why.to_string())?;
    match pid {
        Some(pid) if i64::from(pid) != i64::from(snapshot.supervisor) => Err(format!(
            "it is the one of the last supervisor (pid {}), not of this one",
            snapshot.supervisor
        )),
        _ => Ok(snapshot),
    }
}

fn status_from_board(
    paths: &StatePaths,
    pid: Option<i32>,
    json: bool,
    snapshot: &scoreboard::Snapshot,
) -> u8 {
    let processes = read_status(&control::status_fields(&snapshot.processes));
    let text = if json {
        status_json(&paths.name, pid, &processes)
    } else {
        status_table(&processes)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    match snapshot.not_seen() {
        None => STATUS_RUNNING,
        Some((why, ago)) => {
            crate::log::line(format_args!(
                "{}: the supervisor (pid {}) {why}: not seen for {:.1}s",
                paths.name,
                snapshot.supervisor,
                ago.as_secs_f64()
            ));
            STATUS_UNKNOWN
        }
    }
}

/// One row of a status reply, as text.
struct Row {
    name: String,
    state: String,
    pid: String,
    uptime: String,
    restarts: String,
    last_exit: String,
    /// `-` when no reload is under way or has failed.
    reload: String,
    /// Its `STATUS=` text, `-` when it said none.
    status: String,
    /// Seconds since its last `WATCHDOG=1`, `-` when it sent none.
    watchdog: String,
}

fn read_status(fields: &[(String, String)]) -> Vec<Row> {
    // One pass over the fields: a lookup per field of each row would make
    // a thousand rows cost a million comparisons.
    let by_key: std::collections::HashMap<&str, &str> = fields
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let count: usize = by_key
        .get("processes")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // No more rows than the reply could describe, whatever it claims.
    (0..count.min(fields.len()))
        .map(|index| {
            let get = |key: &str| {
                by_key
                    .get(format!("process.{index}.{key}").as_str())
                    .copied()
                    .unwrap_or("-")
                    .to_string()
            };
            Row {
                name: get("name"),
                state: get("state"),
                pid: get("pid"),
                uptime: get("uptime"),
                restarts: get("restarts"),
                last_exit: get("last_exit"),
                reload: get("reload"),
                status: get("status"),
                watchdog: get("watchdog"),
            }
        })
        .collect()
}

/// The RELOAD and STATUS columns are there only while some row has
/// something in them.
fn status_table(rows: &[Row]) -> String {
    let header = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "RELOAD",
        "STATUS",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            let uptime = row.uptime.parse::<f64>().map_or("-".to_string(), |secs| {
                if row.pid == "-" {
                    "-".to_string()
                } else {
                    format!("{}s", secs.round())
                }
            });
            [
                row.name.clone(),
                row.state.clone(),
                row.pid.clone(),
                uptime,
                row.restarts.clone(),
                row.last_exit.clone(),
                row.reload.clone(),
                row.status.clone(),
            ]
        })
        .collect();
    let shown: Vec<usize> = (0..header.len())
        .filter(|&column| column < 6 || cells.iter().any(|cell| cell[column] != "-"))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            cells
                .iter()
                .map(|cell| cell[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 8]| {
        let padded: Vec<String> = shown
            .iter()
            .map(|&column| format!("{:width$}", cells[column], width = widths[column]))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(header);
    for cell in &cells {
        text.push_str(&line(cell.each_ref().map(String::as_str)));
    }
    text
}

fn status_json(name: &str, pid: Option<i32>, rows: &[Row]) -> String {
    let processes: Vec<String> = rows
        .iter()
        .map(|row| {
            let number_or_null = |text: &str| {
                if text.parse::<f64>().is_ok() {
                    text.to_string()
                } else {
                    "null".to_string()
                }
            };
            let text_or_null = |text: &str| match text {
                "-" => "null".to_string(),
                text => json_string(text),
            };
            format!(
                "{{\"name\":{},\"state\":{},\"pid\":{},\"uptime\":{},\"restarts\":{},\"last_exit\":{},\"reload\":{},\"status\":{},\"watchdog\":{}}}",
                json_string(&row.name),
                json_string(&row.state),
                number_or_null(&row.pid),
                if row.pid == "-" { "null".to_string() } else { number_or_null(&row.uptime) },
                number_or_null(&row.restarts),
                text_or_null(&row.last_exit),
                text_or_null(&row.reload),
                text_or_null(&row.status),
                number_or_null(&row.watchdog)
            )
        })
        .collect();
    let pid = pid.map_or("null".to_string(), |pid| pid.to_string());
    format!(
        "{{\"name\":{},\"pid\":{pid},\"processes\":[{}]}}\n",
        json_string(name),
        processes.join(",")
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, pid: &str) -> Row {
        Row {
            name: name.into(),
            state: "running".into(),
            pid: pid.into(),
            uptime: "12.400".into(),
            restarts: "2".into(),
            last_exit: "-".into(),
            reload: "-".into(),
            status: "-".into(),
            watchdog: "-".into(),
        }
    }

    #[test]
    fn the_reload_column_shows_only_while_a_row_has_one() {
        let mut reloading = row("web", "120");
        reloading.reload = "generation 3 starting".into();
        let text = status_table(&[reloading, row("db", "121")]);
        assert_eq!(
            text,
            "NAME  STATE    PID  UPTIME  RESTARTS  LAST EXIT  RELOAD\n\
             web   running  120  12s     2         -          generation 3 starting\n\
             db    running  121  12s     2         -          -\n"
        );
    }

    #[test]
    fn a_reply_claiming_more_rows_than_it_holds_gives_only_what_it_could_hold() {
        let fields = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let rows = read_status(&fields(&[
            ("processes", "18446744073709551615"),
            ("process.0.name", "web"),
        ]));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].name.as_str(), rows[1].name.as_str()), ("web", "-"));
    }

    #[test]
    fn the_status_column_shows_only_while_a_row_has_one() {
        let mut web = row("web", "120");
        web.status = "serving 3 clients".into();
        let text = status_table(&[row("db", "121"), web]);
        assert_eq!(
            text,
            "NAME  STATE    PID  UPTIME  RESTARTS  LAST EXIT  STATUS\n\
             db    running  121  12s     2         -          -\n\
             web   running  120  12s     2         -          serving 3 clients\n"
        );
    }

    #[test]
    fn the_table_lines_up() {
        let text = status_table(&[row("web", "120"), row("worker-long", "-")]);
        assert_eq!(
            text,
            "NAME         STATE    PID  UPTIME  RESTARTS  LAST EXIT\n\
             web          running  120  12s     2         -\n\
             worker-long  running  -    -       2         -\n"
        );
    }

    #[test]
    fn json_is_escaped_and_typed() {
        let text = status_json("g\"1", Some(7), &[row("web", "120")]);
        assert_eq!(
            text,
            "{\"name\":\"g\\\"1\",\"pid\":7,\"processes\":[{\"name\":\"web\",\"state\":\"running\",\
             \"pid\":120,\"uptime\":12.400,\"restarts\":2,\"last_exit\":null,\"reload\":null,\
             \"status\":null,\"watchdog\":null}]}\n"
        );
    }
}
