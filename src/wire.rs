//! The length-prefixed frame format of the control socket: encoding, an incremental decoder, and key=value bodies.
//!
//! ```text
//! frame   = length:u32 big-endian | payload[length]
//! payload = kind:u8 | body
//! ```
//!
//! `length` counts the payload only, so it is at least 1 (the kind byte); a
//! zero length is an invalid frame, and so is one over [`MAX_PAYLOAD`] bytes,
//! refused as soon as its 4 length bytes are in, before any of the payload is
//! buffered. Both end the connection. The kinds are in [`kind`]; an unknown
//! kind still decodes (it is answered with an error, not dropped). Most bodies
//! are `key=value\n` lines ([`encode_fields`], [`parse_fields`]); a `send`
//! body is a process name, one `\n`, then raw bytes for its stdin.
//!
//! Everything here is pure: bytes in, bytes or frames out. The callers do the
//! reading, and write each frame from [`encode`] with a single `write`.

use std::fmt;

/// The largest payload (kind byte and body) a frame may carry: 1 MiB.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The first byte of a payload says what the frame is.
pub mod kind {
    /// First frame in each direction. The client sends `version=1\n`; the
    /// server answers `version=1\npid=N\nname=NAME\n`.
    pub const HELLO: u8 = 1;
    /// A command as key=value lines, e.g. `command=status\n`.
    pub const REQUEST: u8 = 2;
    /// Input for a process: its name, one `\n`, then raw bytes for its stdin.
    pub const SEND: u8 = 3;
    /// A successful reply; key=value lines.
    pub const OK: u8 = 16;
    /// A failed reply: `error=<one line message>\n`.
    pub const ERROR: u8 = 17;
}

/// One decoded frame. Its body is borrowed from the decoder's buffer: a
/// frame is handled before the next one is asked for, and copying every
/// body cost a fifth of a socketpair's throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u8,
    pub body: &'a [u8],
}

/// Why a frame is invalid. Either one ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The payload length, over [`MAX_PAYLOAD`].
    TooLarge(u32),
    /// A zero length: not even a kind byte.
    Empty,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLarge(length) => write!(
                f,
                "frame of {length} bytes is over the {MAX_PAYLOAD}-byte limit"
            ),
            WireError::Empty => f.write_str("empty frame (no kind byte)"),
        }
    }
}

impl std::error::Error for WireError {}

/// A whole frame, length prefix included, in one buffer so that it can go
/// out with one `write`. Refuses a body that makes the payload larger than
/// [`MAX_PAYLOAD`].
pub fn encode(kind: u8, body: &[u8]) -> Result<Vec<u8>, WireError> {
    let length = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    check_length(length)?;
    let prefix = length.to_be_bytes();
    let mut frame = Vec::with_capacity(prefix.len() + 1 + body.len());
    frame.extend_from_slice(&prefix);
    frame.push(kind);
    frame.extend_from_slice(body);
    Ok(frame)
}

/// Checks a length prefix the moment it is read.
fn check_length(length: u32) -> Result<usize, WireError> {
    match usize::try_from(length) {
        Ok(0) => Err(WireError::Empty),
        Ok(length) if length <= MAX_PAYLOAD => Ok(length),
        _ => Err(WireError::TooLarge(length)),
    }
}

/// Turns bytes read from a stream, in pieces of any size, back into frames.
///
/// Bytes are appended at the end of one buffer and frames taken from a read
/// offset; the consumed front is dropped only once it is at least half the
/// buffer, so each byte is copied a bounded number of times however the
/// frames are spread over reads. Once a frame is invalid the decoder stays
/// failed and drops whatever it is fed: the connection is to be closed.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Where the next frame starts in `buffer`.
    start: usize,
    failed: Option<WireError>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends bytes just read; a partial frame waits for the rest. Take
    /// every whole frame (until `next_frame` gives `Ok(None)`) before feeding
    /// more: then what is kept is one incomplete frame and the new bytes,
    /// plus at most as many bytes already consumed, dropped on a later feed.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let unread = self.buffer.len() - self.start;
        if self.start > 0 && self.start >= unread {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the
    /// error that ends the connection (again on every later call). A length
    /// is checked as soon as its 4 bytes are in, before waiting for the
    /// payload, so at most `MAX_PAYLOAD + 4` bytes are ever held for a frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let unread = &self.buffer[self.start..];
        let Some(&prefix) = unread.first_chunk::<4>() else {
            return Ok(None);
        };
        let length = match check_length(u32::from_be_bytes(prefix)) {
            Ok(length) => length,
            Err(error) => {
                self.failed = Some(error);
                self.buffer = Vec::new();
                self.start = 0;
                return Err(error);
            }
        };
        let payload_start = self.start + prefix.len();
        if self.buffer.len() < payload_start + length {
            return Ok(None);
        }
        self.start = payload_start + length;
        Ok(Some(Frame {
            kind: self.buffer[payload_start],
            body: &self.buffer[payload_start + 1..self.start],
        }))
    }
}

/// A body of `key=value\n` lines, in the order given; a key may repeat.
///
/// Keys are herd's own names and must be non-empty, without `=` or `\n`
/// (checked in debug builds). A value may contain `=`, but a `\n` in it
/// would end its line early, so it is written as a space: a message with
/// a line break in it still reads as one field.
pub fn encode_fields(fields: &[(&str, &str)]) -> Vec<u8> {
    let size = fields
        .iter()
        .map(|(key, value)| key.len() + value.len() + 2);
    let mut body = Vec::with_capacity(size.sum());
    for (key, value) in fields {
        debug_assert!(
            !key.is_empty() && !key.contains(['=', '\n']),
            "invalid field key {key:?}"
        );
        body.extend_from_slice(key.as_bytes());
        body.push(b'=');
        body.extend(value.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
        body.push(b'\n');
    }
    body
}

/// Reads a body of `key=value\n` lines, keeping their order and repeated
/// keys. A key runs to the first `=`, so values may contain `=`. The final
/// `\n` may be missing (a hand-written client may forget it), but every line
/// needs a `=` and a non-empty key, so a blank line is an error too; an empty
/// body is no fields. Errors are one lowercase line naming the line number.
pub fn parse_fields(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body)
        .map_err(|error| format!("body is not UTF-8 (at byte {})", error.valid_up_to()))?;
    text.split_terminator('\n')
        .zip(1..)
        .map(|(line, number)| match line.split_once('=') {
            None => Err(format!("line {number}: expected 'key=value'")),
            Some(("", _)) => Err(format!("line {number}: empty key")),
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
        })
        .collect()
}

/// The value of the first field named `key`.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a seeded, repeatable source of test input.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// A number in `0..bound` (`bound` > 0).
        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// A frame copied out of the decoder, so tests can keep several.
    #[derive(Debug, PartialEq)]
    struct Owned {
        kind: u8,
        body: Vec<u8>,
    }

    fn frame(kind: u8, body: &[u8]) -> Owned {
        Owned {
            kind,
            body: body.to_vec(),
        }
    }

    fn next_owned(decoder: &mut Decoder) -> Result<Option<Owned>, WireError> {
        Ok(decoder.next_frame()?.map(|f| frame(f.kind, f.body)))
    }

    /// Feeds `bytes` to a new decoder in one piece and takes every frame.
    fn decode_all(bytes: &[u8]) -> Result<Vec<Owned>, WireError> {
        let mut decoder = Decoder::new();
        decoder.feed(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = next_owned(&mut decoder)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    fn drain(decoder: &mut Decoder, frames: &mut Vec<Owned>) {
        while let Some(frame) = next_owned(decoder).unwrap() {
            frames.push(frame);
        }
    }

    fn length_prefix(length: usize) -> [u8; 4] {
        u32::try_from(length).unwrap().to_be_bytes()
    }

    #[test]
    fn encodes_the_length_of_the_payload_then_the_kind_then_the_body() {
        assert_eq!(
            encode(kind::REQUEST, b"command=status\n").unwrap(),
            b"\0\0\0\x10\x02command=status\n"
        );
        assert_eq!(encode(kind::OK, b"").unwrap(), [0, 0, 0, 1, 16]);
    }

    #[test]
    fn round_trips_frames_of_every_kind() {
        let sent = [
            frame(kind::HELLO, b"version=1\n"),
            frame(kind::REQUEST, b"command=status\n"),
            frame(kind::SEND, b"web\n\0\xff raw\nbytes"),
            frame(kind::OK, b""),
            frame(kind::ERROR, b"error=no such process\n"),
            frame(200, b"an unknown kind decodes too"),
        ];
        for sent in &sent {
            let bytes = encode(sent.kind, &sent.body).unwrap();
            assert_eq!(decode_all(&bytes).unwrap(), std::slice::from_ref(sent));
        }
    }

    #[test]
    fn takes_several_frames_from_one_feed_one_per_call() {
        let mut bytes = encode(kind::HELLO, b"version=1\n").unwrap();
        bytes.extend(encode(kind::REQUEST, b"command=stop\n").unwrap());
        bytes.extend(encode(kind::OK, b"").unwrap());
        let mut decoder = Decoder::new();
        decoder.feed(&bytes);
        let hello = frame(kind::HELLO, b"version=1\n");
        assert_eq!(next_owned(&mut decoder), Ok(Some(hello)));
        let stop = frame(kind::REQUEST, b"command=stop\n");
        assert_eq!(next_owned(&mut decoder), Ok(Some(stop)));
        assert_eq!(next_owned(&mut decoder), Ok(Some(frame(kind::OK, b""))));
        assert_eq!(next_owned(&mut decoder), Ok(None));
    }

    #[test]
    fn keeps_a_frame_split_at_any_byte_across_two_feeds() {
        let sent = [frame(kind::SEND, b"web\nhello"), frame(kind::OK, b"a=b\n")];
        let mut bytes = Vec::new();
        for sent in &sent {
            bytes.extend(encode(sent.kind, &sent.body).unwrap());
        }
        let first_end = bytes.len() - sent[1].body.len() - 5;
        for split in 0..=bytes.len() {
            let mut decoder = Decoder::new();
            let mut frames = Vec::new();
            decoder.feed(&bytes[..split]);
            drain(&mut decoder, &mut frames);
            let whole = if split < first_end {
                0
            } else if split < bytes.len() {
                1
            } else {
                2
            };
            assert_eq!(frames, sent[..whole], "split at {split}");
            decoder.feed(&bytes[split..]);
            drain(&mut decoder, &mut frames);
            assert_eq!(frames, sent, "split at {split}");
        }
    }

    #[test]
    fn gives_a_frame_fed_one_byte_at_a_time_on_its_last_byte() {
        let bytes = encode(kind::REQUEST, b"command=status\n").unwrap();
        let mut decoder = Decoder::new();
        for (at, byte) in bytes.iter().enumerate() {
            assert_eq!(next_owned(&mut decoder), Ok(None), "before byte {at}");
            decoder.feed(&[*byte]);
        }
        let status = frame(kind::REQUEST, b"command=status\n");
        assert_eq!(next_owned(&mut decoder), Ok(Some(status)));
        assert_eq!(next_owned(&mut decoder), Ok(None));
    }

    #[test]
    fn refuses_a_zero_length_as_soon_as_it_is_read() {
        let mut decoder = Decoder::new();
        decoder.feed(&[0, 0, 0]);
        assert_eq!(next_owned(&mut decoder), Ok(None));
        decoder.feed(&[0]);
        assert_eq!(next_owned(&mut decoder), Err(WireError::Empty));
    }

    #[test]
    fn decodes_a_payload_of_exactly_the_limit() {
        let body = vec![b'x'; MAX_PAYLOAD - 1];
        let bytes = encode(kind::SEND, &body).unwrap();
        assert_eq!(bytes[..4], length_prefix(MAX_PAYLOAD));
        assert_eq!(decode_all(&bytes).unwrap(), [frame(kind::SEND, &body)]);
    }

    #[test]
    fn refuses_a_payload_over_the_limit_before_reading_it() {
        let mut decoder = Decoder::new();
        decoder.feed(&length_prefix(MAX_PAYLOAD + 1)[..3]);
        assert_eq!(next_owned(&mut decoder), Ok(None));
        decoder.feed(&length_prefix(MAX_PAYLOAD + 1)[3..]);
        let too_large = WireError::TooLarge(MAX_PAYLOAD as u32 + 1);
        assert_eq!(next_owned(&mut decoder), Err(too_large));
        assert_eq!(decode_all(&[0xff; 4]), Err(WireError::TooLarge(u32::MAX)));
    }

    #[test]
    fn stays_failed_after_an_error_and_drops_what_it_is_fed() {
        let mut decoder = Decoder::new();
        decoder.feed(&[0, 0, 0, 0]);
        assert_eq!(next_owned(&mut decoder), Err(WireError::Empty));
        decoder.feed(&encode(kind::OK, b"").unwrap());
        assert_eq!(next_owned(&mut decoder), Err(WireError::Empty));
        assert!(decoder.buffer.is_empty());
    }

    #[test]
    fn encode_refuses_a_body_over_the_limit() {
        let body = vec![0; MAX_PAYLOAD];
        let too_large = WireError::TooLarge(MAX_PAYLOAD as u32 + 1);
        assert_eq!(encode(kind::SEND, &body), Err(too_large));
    }

    #[test]
    fn errors_read_as_one_lowercase_line() {
        assert_eq!(
            WireError::TooLarge(2_000_000).to_string(),
            "frame of 2000000 bytes is over the 1048576-byte limit"
        );
        assert_eq!(WireError::Empty.to_string(), "empty frame (no kind byte)");
    }

    #[test]
    fn round_trips_fields_in_order_with_repeats_and_equals_in_values() {
        let fields = [
            ("process.0.name", "web"),
            ("process.0.command", "env A=1 B==2 ./server"),
            ("process.0.name", "again"),
            ("empty", ""),
            ("unicode", "héllo ✓"),
        ];
        let body = encode_fields(&fields);
        assert!(body.starts_with(b"process.0.name=web\nprocess.0.command=env A=1"));
        let parsed = parse_fields(&body).unwrap();
        let pairs: Vec<(&str, &str)> = parsed
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(pairs, fields);
        assert_eq!(field(&parsed, "process.0.name"), Some("web"));
        assert_eq!(field(&parsed, "empty"), Some(""));
        assert_eq!(field(&parsed, "missing"), None);
    }

    #[test]
    fn encode_fields_keeps_a_value_on_one_line() {
        let body = encode_fields(&[("error", "first\nsecond")]);
        assert_eq!(body, b"error=first second\n");
    }

    #[test]
    fn parse_fields_accepts_an_empty_body_and_a_missing_final_newline() {
        assert_eq!(parse_fields(b""), Ok(Vec::new()));
        let fields = parse_fields(b"a=1\nb=2").unwrap();
        assert_eq!(field(&fields, "b"), Some("2"));
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn parse_fields_names_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"a=1\n\xff=2\n", "body is not UTF-8 (at byte 4)"),
            (b"a=1\nno equals sign\n", "line 2: expected 'key=value'"),
            (b"a=1\n\nb=2\n", "line 2: expected 'key=value'"),
            (b"\n", "line 1: expected 'key=value'"),
            (b"=value\n", "line 1: empty key"),
            (b"a=1\n=", "line 2: empty key"),
        ];
        for (body, why) in cases {
            assert_eq!(parse_fields(body), Err(why.to_string()), "{body:?}");
        }
    }

    #[test]
    fn decodes_many_small_frames_from_one_buffer_in_linear_time() {
        const COUNT: usize = 10_000;
        let mut bytes = Vec::new();
        for n in 0..COUNT {
            bytes.extend(encode(kind::OK, format!("n={n}\n").as_bytes()).unwrap());
        }
        let frames = decode_all(&bytes).unwrap();
        assert_eq!(frames.len(), COUNT);
        assert_eq!(
            frames[COUNT - 1].body,
            format!("n={}\n", COUNT - 1).as_bytes()
        );

        // Feeding between frames is where a decoder that moves its unread
        // bytes to the front on every call would go quadratic.
        let mut decoder = Decoder::new();
        decoder.feed(&bytes);
        let mut count = 0;
        while decoder.next_frame().unwrap().is_some() {
            count += 1;
            decoder.feed(&[]);
        }
        assert_eq!(count, COUNT);
        assert_eq!(decoder.buffer.len(), decoder.start);
    }

    /// Short streams of random bytes, often built from plausible length
    /// prefixes (small, zero, at and over the limit), fed in random pieces.
    /// The decoder must never panic; the frames it gives must re-encode to
    /// exactly the bytes they came from; and what it leaves must be what
    /// it says: an incomplete frame, or one whose length is invalid.
    #[test]
    fn random_streams_decode_to_frames_that_re_encode_to_the_bytes_consumed() {
        const STREAMS: usize = 1_000_000;
        let mut rng = Rng(0x6865_7264_7769_7265);
        let (mut stream, mut consumed) = (Vec::new(), Vec::new());
        let (mut frames, mut empty, mut too_large, mut partial) = (0, 0, 0, 0);
        for _ in 0..STREAMS {
            random_stream(&mut rng, &mut stream);
            let mut decoder = Decoder::new();
            let mut error = None;
            let mut at = 0;
            consumed.clear();
            loop {
                while error.is_none() {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => {
                            consumed.extend(encode(frame.kind, frame.body).unwrap());
                            frames += 1;
                        }
                        Ok(None) => break,
                        Err(failed) => error = Some(failed),
                    }
                }
                if at == stream.len() {
                    break;
                }
                let piece = match rng.below(3) {
                    0 => rng.below(2),
                    1 => rng.below(8),
                    _ => rng.below(stream.len() - at + 1),
                }
                .min(stream.len() - at);
                decoder.feed(&stream[at..at + piece]);
                at += piece;
            }
            assert!(stream.starts_with(&consumed), "{stream:?}");
            let rest = &stream[consumed.len()..];
            let expected = rest
                .first_chunk::<4>()
                .map(|&prefix| check_length(u32::from_be_bytes(prefix)));
            match (error, expected) {
                (None, None) => partial += 1,
                (None, Some(Ok(length))) => {
                    assert!(rest.len() < 4 + length, "{stream:?}");
                    partial += 1;
                }
                (Some(error), Some(Err(expected))) => {
                    assert_eq!(error, expected, "{stream:?}");
                    assert_eq!(next_owned(&mut decoder), Err(error), "{stream:?}");
                    match error {
                        WireError::Empty => empty += 1,
                        WireError::TooLarge(_) => too_large += 1,
                    }
                }
                (error, expected) => panic!("{stream:?}: {error:?}, expected {expected:?}"),
            }
        }
        // The input reaches every outcome often, or the test proves little.
        assert!(frames > STREAMS / 2, "{frames} frames");
        for (outcome, count) in [
            ("empty", empty),
            ("too large", too_large),
            ("partial", partial),
        ] {
            assert!(count > STREAMS / 100, "{count} {outcome}");
        }
    }

    /// Fills `stream` with up to 63 bytes: a quarter of the streams are
    /// plain noise, the rest mostly frames with a biased length prefix and
    /// the odd stray byte that puts the next prefix out of place.
    fn random_stream(rng: &mut Rng, stream: &mut Vec<u8>) {
        let size = rng.below(64);
        let noise = rng.below(4) == 0;
        stream.clear();
        while stream.len() < size {
            if noise || rng.below(8) == 0 {
                stream.push(rng.next() as u8);
                continue;
            }
            let length = match rng.below(32) {
                0 => 0,
                1 => MAX_PAYLOAD,
                2 => MAX_PAYLOAD + 1,
                3 => rng.next() as u32 as usize,
                _ => 1 + rng.below(12),
            };
            stream.extend(u32::try_from(length).unwrap().to_be_bytes());
            for _ in 0..length.min(size) {
                stream.push(rng.next() as u8);
            }
        }
        stream.truncate(size);
    }
}
