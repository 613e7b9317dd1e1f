//! Benchmark: the control socket's frame codec (src/wire.rs) against raw
//! bytes, between two processes.
//!
//!   cargo bench --bench codec                          # from the repository root
//!   CODEC_RUNS=5 CODEC_ROUND_TRIPS=5000 cargo bench --bench codec   # quicker
//!
//! Settings (environment): CODEC_RUNS (11) runs of each baseline and each
//! candidate; CODEC_ROUND_TRIPS (20000) timed round trips per latency run,
//! after CODEC_WARMUP (2000) untimed ones; CODEC_MIB (512) MiB per
//! throughput run; CODEC_CPUS (0,1) the parent's CPU and the peer's.
//!
//! The bench binary re-executes itself as the peer (`--peer MODE`), under
//! `taskset -c CPU` when taskset is there, with one end of a socketpair (or
//! the read end of a pipe) as its stdin and a pipe as its stdout, on which it
//! says `ready` before anything is timed and, for the sinks, what it received.
//! The parent pins itself with `taskset -p`. Two placements are measured:
//! "split" (parent on one CPU, peer on the other: every wake-up crosses
//! cores) and "same" (both on one CPU: every wake-up is a context switch).
//!
//! Measured, each candidate beside its baseline in the same invocation:
//!   (a) round-trip latency of a 64-byte request and reply over a socketpair:
//!       baseline: 64 raw bytes written, read back with read_exact by both
//!       sides; candidate: a REQUEST frame with a 64-byte body built by
//!       wire::encode and sent with one write_all, decoded by the peer with a
//!       wire::Decoder (8 KiB reads, as src/control.rs does), answered with an
//!       encoded OK frame with a 64-byte body, decoded by the parent;
//!   (b) one-way throughput of 64 KiB frames (4-byte length, kind, 65531-byte
//!       body), one write per frame, over a socketpair and over a pipe:
//!       baseline: the same bytes written 64 KiB at a time, read and dropped
//!       with 64 KiB reads; candidate: wire::encode for every frame, then
//!       one write_all; the peer feeds 64 KiB reads to a Decoder and takes
//!       every frame.
//! Every run starts a fresh peer; baseline and candidate alternate (ABBA) run
//! by run, and each table cell is the median over the runs. Beside (b) it
//! shows how the runs went (bytes per read of the reader, and how often per
//! frame each side slept, from voluntary_ctxt_switches in /proc/self/status):
//! with the peer on another, idle vCPU, throughput follows the wake-ups more
//! than the copies. (c) is the codec's CPU cost per 64 KiB frame in one
//! process, next to one memcpy of 64 KiB. It is a report: it never fails
//! because a goal is missed.
//!
//! Without `--bench` (as under `cargo test --benches`) it does a short smoke
//! run so that the code paths are exercised, not measured.

#[allow(dead_code)]
#[path = "../src/wire.rs"]
mod wire;

use std::error::Error;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Body size of the latency request and reply.
const SMALL: usize = 64;
/// Whole frame size (prefix, kind, body) in the throughput runs.
const FRAME: usize = 64 * 1024;
/// Read size of the throughput sinks, baseline and candidate alike.
const SINK_READ: usize = 64 * 1024;
/// Read size of the framed latency peer and client, as in src/control.rs.
const CONTROL_READ: usize = 8192;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--peer") {
        let mode = args.get(at + 1).ok_or("--peer needs a mode")?;
        return peer(mode);
    }
    let smoke = !args.iter().any(|a| a == "--bench");
    let config = Config::from_env(smoke)?;
    bench(&config)
}

// --- the peer ---------------------------------------------------------------

fn peer(mode: &str) -> Result<()> {
    // A duplicate of fd 0 as an owned descriptor: no unsafe, and no Stdin
    // buffering between the bench and the socket or pipe.
    let fd: OwnedFd = io::stdin().as_fd().try_clone_to_owned()?;
    let mut out = io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let summary = match mode {
        "echo-raw" => echo_raw(UnixStream::from(fd))?,
        "echo-frame" => echo_frame(UnixStream::from(fd))?,
        "sink-raw" => sink(File::from(fd), false)?,
        "sink-frame" => sink(File::from(fd), true)?,
        other => return Err(format!("unknown peer mode {other:?}").into()),
    };
    writeln!(out, "{summary}")?;
    out.flush()?;
    Ok(())
}

/// Fills `buf` completely; `false` on a clean end of stream before any byte.
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err("end of stream inside a message".into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn echo_raw(mut stream: UnixStream) -> Result<String> {
    let mut buf = [0u8; SMALL];
    let reply = [b'r'; SMALL];
    let mut count = 0u64;
    while read_full(&mut stream, &mut buf)? {
        stream.write_all(&reply)?;
        count += 1;
    }
    Ok(format!("messages={count}"))
}

fn echo_frame(mut stream: UnixStream) -> Result<String> {
    let mut decoder = wire::Decoder::new();
    let mut buf = [0u8; CONTROL_READ];
    let reply = [b'r'; SMALL];
    let mut count = 0u64;
    loop {
        match decoder.next_frame()? {
            Some(frame) => {
                if frame.kind != wire::kind::REQUEST || frame.body.len() != SMALL {
                    return Err("unexpected request frame".into());
                }
                let encoded = wire::encode(wire::kind::OK, &reply)?;
                stream.write_all(&encoded)?;
                count += 1;
            }
            None => match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => decoder.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    Ok(format!("messages={count}"))
}

/// This process's voluntary context switches so far (times it slept).
fn sleeps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|count| count.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn sink(mut input: File, framed: bool) -> Result<String> {
    let mut buf = vec![0u8; SINK_READ];
    let mut decoder = wire::Decoder::new();
    let (mut bytes, mut frames, mut body_bytes, mut reads) = (0u64, 0u64, 0u64, 0u64);
    let slept = sleeps();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        bytes += n as u64;
        reads += 1;
        if framed {
            decoder.feed(&buf[..n]);
            while let Some(frame) = decoder.next_frame()? {
                frames += 1;
                body_bytes += frame.body.len() as u64;
            }
        }
    }
    let slept = sleeps() - slept;
    Ok(format!(
        "bytes={bytes} frames={frames} body={body_bytes} reads={reads} sleeps={slept}"
    ))
}

// --- the parent -------------------------------------------------------------

struct Config {
    smoke: bool,
    runs: usize,
    round_trips: usize,
    warmup: usize,
    frames: usize,
    /// (label, parent CPU, peer CPU); empty CPUs when taskset is missing.
    placements: Vec<(&'static str, String, String)>,
    pinned: bool,
}

fn env_number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(text) => Ok(text.parse().map_err(|_| format!("{name}={text:?}"))?),
        Err(_) => Ok(default),
    }
}

impl Config {
    fn from_env(smoke: bool) -> Result<Config> {
        let (runs, round_trips, warmup, mib) = if smoke {
            (1, 200, 20, 4)
        } else {
            (
                env_number("CODEC_RUNS", 11)?,
                env_number("CODEC_ROUND_TRIPS", 20_000)?,
                env_number("CODEC_WARMUP", 2_000)?,
                env_number("CODEC_MIB", 512)?,
            )
        };
        let cpus = std::env::var("CODEC_CPUS").unwrap_or_else(|_| "0,1".to_string());
        let (a, b) = cpus
            .split_once(',')
            .ok_or("CODEC_CPUS is two CPUs: PARENT,PEER")?;
        let pinned = Command::new("taskset")
            .args(["-p", "-c", a, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let placements = if !pinned {
            eprintln!("codec: taskset is missing or failed: nothing is pinned");
            vec![("unpinned", String::new(), String::new())]
        } else {
            vec![
                ("split", a.to_string(), b.to_string()),
                ("same", a.to_string(), a.to_string()),
            ]
        };
        Ok(Config {
            smoke,
            runs: runs.max(1),
            round_trips: round_trips.max(1),
            warmup,
            frames: (mib * 1024 * 1024 / FRAME).max(1),
            placements,
            pinned,
        })
    }
}

struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts the peer with `stdin` as its fd 0 and waits for its `ready`.
    fn start(mode: &str, cpu: &str, stdin: Stdio) -> Result<Peer> {
        let exe = std::env::current_exe()?;
        let mut command = if cpu.is_empty() {
            Command::new(&exe)
        } else {
            let mut command = Command::new("taskset");
            command.args(["-c", cpu]).arg(&exe);
            command
        };
        let mut child = command
            .args(["--peer", mode])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut peer_line = String::new();
        out.read_line(&mut peer_line)?;
        if peer_line != "ready\n" {
            return Err(format!("peer {mode}: {peer_line:?} instead of ready").into());
        }
        Ok(Peer { child, out })
    }

    /// Its summary line, once it has read to the end of its input.
    fn summary(&mut self) -> Result<String> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }

    fn finish(mut self) -> Result<()> {
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("peer exited with {status}").into());
        }
        Ok(())
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// One latency run: (p50, p99) of the round trips in nanoseconds.
fn latency(config: &Config, framed: bool, peer_cpu: &str) -> Result<(f64, f64)> {
    let (mut stream, theirs) = UnixStream::pair()?;
    let mode = if framed { "echo-frame" } else { "echo-raw" };
    let mut peer = Peer::start(mode, peer_cpu, Stdio::from(OwnedFd::from(theirs)))?;
    let request = [b'q'; SMALL];
    let mut reply = [0u8; SMALL];
    let mut decoder = wire::Decoder::new();
    let mut buf = [0u8; CONTROL_READ];
    let total = config.warmup + config.round_trips;
    let mut samples = Vec::with_capacity(config.round_trips);
    for i in 0..total {
        let start = Instant::now();
        if framed {
            let encoded = wire::encode(wire::kind::REQUEST, &request)?;
            stream.write_all(&encoded)?;
            let frame = loop {
                if let Some(frame) = decoder.next_frame()? {
                    break frame;
                }
                match stream.read(&mut buf)? {
                    0 => return Err("peer closed the socket".into()),
                    n => decoder.feed(&buf[..n]),
                }
            };
            if frame.kind != wire::kind::OK || frame.body.len() != SMALL {
                return Err("unexpected reply frame".into());
            }
        } else {
            stream.write_all(&request)?;
            if !read_full(&mut stream, &mut reply)? {
                return Err("peer closed the socket".into());
            }
        }
        let elapsed = start.elapsed().as_nanos() as u64;
        if i >= config.warmup {
            samples.push(elapsed);
        }
    }
    drop(stream);
    let summary = peer.summary()?;
    if summary != format!("messages={total}") {
        return Err(format!("peer {mode}: {summary}").into());
    }
    peer.finish()?;
    samples.sort_unstable();
    Ok((
        percentile(&samples, 0.50) as f64,
        percentile(&samples, 0.99) as f64,
    ))
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Socket,
    Pipe,
}

/// What one throughput run saw.
struct Flow {
    /// MB/s (10^6 bytes) delivered to the peer.
    rate: f64,
    /// Bytes per read(2) of the peer.
    read_size: f64,
    /// Times per frame the writer (this process) and the reader slept.
    writer_sleeps: f64,
    reader_sleeps: f64,
}

/// The number after `key=` in a summary line.
fn summary_field(summary: &str, key: &str) -> Option<u64> {
    summary
        .split(' ')
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// One throughput run, timed from the first write until the peer says it
/// has read everything.
fn throughput(config: &Config, framed: bool, transport: Transport, peer_cpu: &str) -> Result<Flow> {
    let mode = if framed { "sink-frame" } else { "sink-raw" };
    let (mut peer, mut writer): (Peer, Box<dyn Write>) = match transport {
        Transport::Socket => {
            let (ours, theirs) = UnixStream::pair()?;
            let peer = Peer::start(mode, peer_cpu, Stdio::from(OwnedFd::from(theirs)))?;
            (peer, Box::new(ours))
        }
        Transport::Pipe => {
            let mut peer = Peer::start(mode, peer_cpu, Stdio::piped())?;
            let stdin = peer.child.stdin.take().ok_or("no stdin pipe")?;
            (peer, Box::new(stdin))
        }
    };
    let body: Vec<u8> = (0..FRAME - 5).map(|i| (i % 251) as u8).collect();
    let encoded = wire::encode(wire::kind::SEND, &body)?;
    assert_eq!(encoded.len(), FRAME);
    let slept = sleeps();
    let start = Instant::now();
    for _ in 0..config.frames {
        if framed {
            let frame = wire::encode(wire::kind::SEND, &body)?;
            writer.write_all(&frame)?;
        } else {
            writer.write_all(&encoded)?;
        }
    }
    drop(writer);
    let summary = peer.summary()?;
    let seconds = start.elapsed().as_secs_f64();
    let writer_sleeps = sleeps() - slept;
    let bytes = (config.frames * FRAME) as u64;
    let (frames, body_bytes) = if framed {
        (
            config.frames as u64,
            config.frames as u64 * (FRAME as u64 - 5),
        )
    } else {
        (0, 0)
    };
    let expected = format!("bytes={bytes} frames={frames} body={body_bytes} ");
    if !summary.starts_with(&expected) {
        return Err(format!("peer {mode}: {summary}, expected {expected}...").into());
    }
    peer.finish()?;
    let per_frame = |count: u64| count as f64 / config.frames as f64;
    Ok(Flow {
        rate: bytes as f64 / seconds / 1e6,
        read_size: bytes as f64 / summary_field(&summary, "reads").unwrap_or(0).max(1) as f64,
        writer_sleeps: per_frame(writer_sleeps),
        reader_sleeps: per_frame(summary_field(&summary, "sleeps").unwrap_or(0)),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Measure {
    Latency,
    Socket,
    Pipe,
}

/// The per-run values of one table cell, for baseline (`[0]`) and
/// candidate (`[1]`).
#[derive(Default)]
struct Cell {
    p50: [Vec<f64>; 2],
    p99: [Vec<f64>; 2],
    rate: [Vec<f64>; 2],
    read_size: [Vec<f64>; 2],
    writer_sleeps: [Vec<f64>; 2],
    reader_sleeps: [Vec<f64>; 2],
}

fn measure(
    config: &Config,
    what: Measure,
    framed: bool,
    placement: &(&str, String, String),
    cell: &mut Cell,
) -> Result<()> {
    let side = usize::from(framed);
    let label = if framed { "frame" } else { "raw" };
    match what {
        Measure::Latency => {
            let (p50, p99) = latency(config, framed, &placement.2)?;
            eprintln!(
                "  latency {} {label}: p50 {:.1} µs, p99 {:.1} µs",
                placement.0,
                p50 / 1e3,
                p99 / 1e3
            );
            cell.p50[side].push(p50);
            cell.p99[side].push(p99);
        }
        Measure::Socket | Measure::Pipe => {
            let transport = if what == Measure::Socket {
                Transport::Socket
            } else {
                Transport::Pipe
            };
            let flow = throughput(config, framed, transport, &placement.2)?;
            eprintln!(
                "  {} {} {label}: {:.0} MB/s, {:.0} bytes/read, sleeps/frame writer {:.2} reader {:.2}",
                if transport == Transport::Socket { "socketpair" } else { "pipe" },
                placement.0,
                flow.rate,
                flow.read_size,
                flow.writer_sleeps,
                flow.reader_sleeps
            );
            cell.rate[side].push(flow.rate);
            cell.read_size[side].push(flow.read_size);
            cell.writer_sleeps[side].push(flow.writer_sleeps);
            cell.reader_sleeps[side].push(flow.reader_sleeps);
        }
    }
    Ok(())
}

/// Nanoseconds per call of `f`, the median of 5 timings of `n` calls each.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let mut timings = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        timings.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    median(&timings)
}

/// CPU cost per 64 KiB frame of the codec alone, in this process (no I/O,
/// caches warm): what the candidates add to each frame.
fn in_process(config: &Config) -> Result<Vec<(&'static str, f64)>> {
    let n = if config.smoke { 100 } else { 20_000 };
    let body: Vec<u8> = (0..FRAME - 5).map(|i| (i % 251) as u8).collect();
    let encoded = wire::encode(wire::kind::SEND, &body)?;
    let mut copy = vec![0u8; FRAME];
    // 16 frames back to back, handed to a Decoder over and over in reads of
    // SINK_READ bytes: on frame boundaries (offset 0), or with the first read
    // `offset` bytes long, so that every later read splits a frame.
    let stream: Vec<u8> = encoded.iter().copied().cycle().take(16 * FRAME).collect();
    let stream = &stream;
    let decode = |offset: usize| {
        let mut decoder = wire::Decoder::new();
        let (mut at, mut pending) = (0, 0);
        move || {
            while pending == 0 {
                let to = if at == 0 && offset > 0 {
                    offset
                } else {
                    (at + SINK_READ).min(stream.len())
                };
                decoder.feed(std::hint::black_box(&stream[at..to]));
                at = if to == stream.len() { 0 } else { to };
                while let Some(frame) = decoder.next_frame().expect("valid frames") {
                    std::hint::black_box(&frame);
                    pending += 1;
                }
            }
            pending -= 1;
        }
    };
    Ok(vec![
        (
            "memcpy of 64 KiB into a reused buffer (one copy)",
            per_call(n, || {
                copy.copy_from_slice(std::hint::black_box(&encoded));
                std::hint::black_box(&copy);
            }),
        ),
        (
            "`wire::encode` of a 64 KiB frame, then its drop",
            per_call(n, || {
                std::hint::black_box(
                    wire::encode(wire::kind::SEND, std::hint::black_box(&body)).ok(),
                );
            }),
        ),
        (
            "`Decoder::feed` + `next_frame` per frame, 64 KiB reads on frame boundaries",
            per_call(n, decode(0)),
        ),
        (
            "`Decoder::feed` + `next_frame` per frame, 64 KiB reads across frame boundaries",
            per_call(n, decode(1000)),
        ),
    ])
}

/// The 1, 5 and 15-minute load averages, to show whether something else ran.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

fn bench(config: &Config) -> Result<()> {
    let load_before = load();
    let measures = [Measure::Latency, Measure::Socket, Measure::Pipe];
    let mut cells: Vec<Vec<Cell>> = config
        .placements
        .iter()
        .map(|_| measures.iter().map(|_| Cell::default()).collect())
        .collect();
    eprintln!(
        "codec: {} runs; {} round trips (+{} warm-up) per latency run; {} frames of {} bytes per throughput run",
        config.runs, config.round_trips, config.warmup, config.frames, FRAME
    );
    for run in 0..config.runs {
        eprintln!("codec: run {} of {} ...", run + 1, config.runs);
        // ABBA: the baseline goes first in even runs, second in odd ones.
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for (placement, row) in config.placements.iter().zip(cells.iter_mut()) {
            for (what, cell) in measures.iter().zip(row.iter_mut()) {
                for framed in order {
                    measure(config, *what, framed, placement, cell)?;
                }
            }
        }
    }
    let costs = in_process(config)?;
    let loads = format!("load average {load_before} before, {} after", load());
    report(config, &measures, &cells, &costs, &loads);
    Ok(())
}

fn report(
    config: &Config,
    measures: &[Measure],
    cells: &[Vec<Cell>],
    costs: &[(&str, f64)],
    loads: &str,
) {
    let met = |ok: bool| match (config.smoke, ok) {
        (true, _) => "—",
        (false, true) => "met",
        (false, false) => "**not met**",
    };
    if config.smoke {
        println!("(smoke run: numbers are not measurements; use `cargo bench --bench codec`)\n");
    }
    let (first, _, peer) = &config.placements[0];
    let cpus = if config.pinned {
        format!(
            "\"{first}\": parent on CPU {}, peer on CPU {peer}; \"same\": both on CPU {}",
            config.placements[0].1, config.placements[0].1
        )
    } else {
        "taskset missing: nothing pinned".to_string()
    };
    println!(
        "Medians over {} runs each, baseline and candidate alternating, a fresh peer process \
         per run; {cpus}; {loads}.\n",
        config.runs
    );
    println!(
        "### (a) Round trip of a 64-byte request and reply over a socketpair ({} per run)\n",
        config.round_trips
    );
    println!("| placement | raw p50 µs | frame p50 µs | ratio p50 | goal ≤ 1.15 | raw p99 µs | frame p99 µs | ratio p99 | goal ≤ 1.5 |");
    println!("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |");
    for (placement, row) in config.placements.iter().zip(cells) {
        let cell = &row[0];
        let (b50, c50) = (median(&cell.p50[0]), median(&cell.p50[1]));
        let (b99, c99) = (median(&cell.p99[0]), median(&cell.p99[1]));
        let (r50, r99) = (c50 / b50, c99 / b99);
        println!(
            "| {} | {:.1} | {:.1} | {:.3} | {} | {:.1} | {:.1} | {:.3} | {} |",
            placement.0,
            b50 / 1e3,
            c50 / 1e3,
            r50,
            met(r50 <= 1.15),
            b99 / 1e3,
            c99 / 1e3,
            r99,
            met(r99 <= 1.5)
        );
    }
    println!(
        "\n### (b) One-way throughput of 64 KiB frames, one write per frame ({} MiB per run)\n",
        config.frames * FRAME / (1024 * 1024)
    );
    println!("| transport | placement | raw MB/s | frames MB/s | ratio | goal ≥ 0.8 | per-run ratios: median (min–max) |");
    println!("| --- | --- | ---: | ---: | ---: | --- | ---: |");
    let name = |what: &Measure| {
        if *what == Measure::Socket {
            "socketpair"
        } else {
            "pipe"
        }
    };
    for (index, what) in measures.iter().enumerate().skip(1) {
        for (placement, row) in config.placements.iter().zip(cells) {
            let cell = &row[index];
            let (b, c) = (median(&cell.rate[0]), median(&cell.rate[1]));
            let ratios: Vec<f64> = cell.rate[1]
                .iter()
                .zip(&cell.rate[0])
                .map(|(c, b)| c / b)
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(0.0, f64::max);
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.3} | {} | {:.2} ({low:.2}–{high:.2}) |",
                name(what),
                placement.0,
                b,
                c,
                c / b,
                met(c / b >= 0.8),
                median(&ratios)
            );
        }
    }
    println!("\nHow the throughput runs went (medians; raw / frames):\n");
    println!("| transport | placement | bytes per read of the reader | writer sleeps per frame | reader sleeps per frame |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (index, what) in measures.iter().enumerate().skip(1) {
        for (placement, row) in config.placements.iter().zip(cells) {
            let cell = &row[index];
            let pair = |values: &[Vec<f64>; 2], digits: usize| {
                format!(
                    "{:.digits$} / {:.digits$}",
                    median(&values[0]),
                    median(&values[1])
                )
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                name(what),
                placement.0,
                pair(&cell.read_size, 0),
                pair(&cell.writer_sleeps, 2),
                pair(&cell.reader_sleeps, 2)
            );
        }
    }
    println!(
        "\n### (c) CPU cost of the codec per 64 KiB frame, in one process (no I/O, warm caches)\n"
    );
    println!("| operation | ns per frame |");
    println!("| --- | ---: |");
    for (what, ns) in costs {
        println!("| {what} | {ns:.0} |");
    }
}
