//! Ember's serial protocol: framed requests to the device and its replies, one implementation
//! for the firmware and the desktop client. PROTOCOL.md beside this crate describes the bytes
//! well enough to write a client in another language.
//!
//! A frame is
//!
//! ```text
//! 0xE5 0x4D | version | kind | seq | length (u16 LE) | payload (length bytes) | CRC-32 (u32 LE)
//! ```
//!
//! The CRC is zlib's CRC-32 (IEEE 802.3, reflected, init and xor-out `0xFFFF_FFFF`) over the
//! bytes from `version` to the end of the payload.

use heapless::Vec;

/// The two bytes that open every frame.
pub const START: [u8; 2] = [0xE5, 0x4D];
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Largest payload either side sends.
pub const MAX_PAYLOAD: usize = 1024;
/// Bytes before the payload: start marker, version, kind, seq, length.
pub const HEADER: usize = 7;
/// Bytes after the payload: the CRC.
pub const TRAILER: usize = 4;
/// Largest frame on the wire.
pub const MAX_FRAME: usize = HEADER + MAX_PAYLOAD + TRAILER;

/// What a frame asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Request: who are you? Empty payload; answered by `Info`.
    Ping = 0x01,
    /// Request: classify the image in the payload; answered by `Result`.
    Classify = 0x02,
    /// Reply to `Ping`: see [`Info`].
    Info = 0x81,
    /// Reply to `Classify`: see [`Classification`].
    Result = 0x82,
    /// Reply to a frame that could not be served: see [`ErrorCode`].
    Error = 0xEE,
}

impl Kind {
    /// The kind with this byte, if any.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Kind::Ping,
            0x02 => Kind::Classify,
            0x81 => Kind::Info,
            0x82 => Kind::Result,
            0xEE => Kind::Error,
            _ => return None,
        })
    }
}

/// Why a frame was refused; the payload of an `Error` frame is this byte and a `u16` LE detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The CRC did not match (detail: the kind byte received).
    BadCrc = 1,
    /// The version byte is not [`VERSION`] (detail: the version received).
    BadVersion = 2,
    /// The length exceeds [`MAX_PAYLOAD`] (detail: the length received).
    TooLong = 3,
    /// The kind is not a request this device serves (detail: the kind byte).
    UnknownKind = 4,
    /// The payload length is wrong for the kind (detail: the length received).
    BadLength = 5,
    /// The line went quiet in the middle of a frame (detail: bytes received of it).
    Truncated = 6,
    /// Bytes arrived outside any frame and were dropped (detail: how many, saturating).
    Noise = 7,
    /// The model refused to run (detail: the index of the layer at fault plus one, or 0 when
    /// no one layer is, as `firmware::Error::layer` gives it).
    ModelError = 8,
    /// The device holds no valid model file (detail: [`crate::file::FileError::code`]).
    NoModel = 9,
}

impl ErrorCode {
    /// The code with this byte, if any.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => ErrorCode::BadCrc,
            2 => ErrorCode::BadVersion,
            3 => ErrorCode::TooLong,
            4 => ErrorCode::UnknownKind,
            5 => ErrorCode::BadLength,
            6 => ErrorCode::Truncated,
            7 => ErrorCode::Noise,
            8 => ErrorCode::ModelError,
            9 => ErrorCode::NoModel,
            _ => return None,
        })
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it is.
    pub kind: Kind,
    /// The request's sequence number, echoed by the reply (0 for unsolicited errors).
    pub seq: u8,
    /// Its payload.
    pub payload: Vec<u8, MAX_PAYLOAD>,
}

/// A frame the decoder refused, with what to tell the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub code: ErrorCode,
    /// The sequence number read, if the header got that far (else 0).
    pub seq: u8,
    /// The code's detail.
    pub detail: u16,
}

/// zlib's CRC-32, four bits at a time (a 64-byte table suits a microcontroller's flash).
pub fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

/// Continues a CRC-32 whose running (not yet inverted) value is `crc`.
pub fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 16] = {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 4 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    for &b in bytes {
        crc ^= b as u32;
        crc = (crc >> 4) ^ TABLE[(crc & 0xF) as usize];
        crc = (crc >> 4) ^ TABLE[(crc & 0xF) as usize];
    }
    crc
}

/// Writes a frame into `out` and returns its length, or `None` if the payload is longer than
/// [`MAX_PAYLOAD`] or `out` is too small.
pub fn encode(kind: Kind, seq: u8, payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = HEADER + payload.len() + TRAILER;
    if payload.len() > MAX_PAYLOAD || out.len() < len {
        return None;
    }
    let n = payload.len() as u16;
    out[..HEADER].copy_from_slice(&[
        START[0],
        START[1],
        VERSION,
        kind as u8,
        seq,
        n as u8,
        (n >> 8) as u8,
    ]);
    out[HEADER..HEADER + payload.len()].copy_from_slice(payload);
    let crc = crc32(&out[2..HEADER + payload.len()]);
    out[HEADER + payload.len()..len].copy_from_slice(&crc.to_le_bytes());
    Some(len)
}

/// Where the decoder is in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the first start byte.
    Hunt,
    /// Saw the first start byte.
    Start,
    /// Reading the header's remaining bytes (version, kind, seq, length).
    Header,
    /// Reading the payload.
    Payload,
    /// Reading the CRC.
    Crc,
}

/// A byte-at-a-time frame decoder with fixed buffers. It never allocates and never panics:
/// a bad frame yields a [`Refusal`] and the decoder goes back to hunting for a start marker.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    header: [u8; 5],
    header_len: usize,
    length: usize,
    payload: Vec<u8, MAX_PAYLOAD>,
    crc: [u8; 4],
    crc_len: usize,
    /// Bytes dropped while hunting since the last report.
    noise: usize,
    /// Whether the bytes being dropped are the rest of a frame already refused (not noise).
    skipping: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder hunting for a start marker.
    pub const fn new() -> Self {
        Self {
            state: State::Hunt,
            header: [0; 5],
            header_len: 0,
            length: 0,
            payload: Vec::new(),
            crc: [0; 4],
            crc_len: 0,
            noise: 0,
            skipping: false,
        }
    }

    /// Whether a frame has begun and not yet ended.
    pub fn in_frame(&self) -> bool {
        self.state != State::Hunt
    }

    /// Bytes of the current frame received so far.
    pub fn frame_bytes(&self) -> usize {
        match self.state {
            State::Hunt => 0,
            State::Start => 1,
            State::Header => 2 + self.header_len,
            State::Payload => HEADER + self.payload.len(),
            State::Crc => HEADER + self.payload.len() + self.crc_len,
        }
    }

    /// Called when the line goes quiet: a frame left half-received is refused as
    /// `Truncated`, and dropped noise is reported as `Noise`. The decoder hunts again.
    pub fn idle(&mut self) -> Option<Refusal> {
        self.skipping = false;
        if self.in_frame() {
            let r = Refusal {
                code: ErrorCode::Truncated,
                seq: self.seq(),
                detail: self.frame_bytes().min(u16::MAX as usize) as u16,
            };
            self.reset();
            return Some(r);
        }
        self.take_noise()
    }

    /// Feeds one byte. Returns a complete frame, a refusal, or nothing yet.
    pub fn feed(&mut self, byte: u8) -> Option<Result<Frame, Refusal>> {
        match self.state {
            State::Hunt => {
                if byte == START[0] {
                    self.state = State::Start;
                } else if !self.skipping {
                    self.noise += 1;
                }
                None
            }
            State::Start => {
                if byte == START[1] {
                    self.state = State::Header;
                    self.header_len = 0;
                    self.skipping = false;
                    // Noise before this frame is reported now, ahead of the frame's reply.
                    return self.take_noise().map(Err);
                }
                // The marker's first byte was noise; this one may start a marker itself.
                let dropped = if byte == START[0] { 1 } else { 2 };
                if !self.skipping {
                    self.noise += dropped;
                }
                if byte != START[0] {
                    self.state = State::Hunt;
                }
                None
            }
            State::Header => {
                self.header[self.header_len] = byte;
                self.header_len += 1;
                if self.header_len < self.header.len() {
                    return None;
                }
                self.start_payload()
            }
            State::Payload => {
                // The length was checked against MAX_PAYLOAD, so this push always fits.
                let _ = self.payload.push(byte);
                if self.payload.len() == self.length {
                    self.state = State::Crc;
                    self.crc_len = 0;
                }
                None
            }
            State::Crc => {
                self.crc[self.crc_len] = byte;
                self.crc_len += 1;
                if self.crc_len < self.crc.len() {
                    return None;
                }
                Some(self.finish())
            }
        }
    }

    /// The header is in: check it and get ready for the payload.
    fn start_payload(&mut self) -> Option<Result<Frame, Refusal>> {
        let [version, kind, seq, lo, hi] = self.header;
        let length = u16::from_le_bytes([lo, hi]);
        let refuse = |code, detail| Some(Err(Refusal { code, seq, detail }));
        // A refused header leaves the rest of its frame on the line: skip it quietly up to the
        // next start marker instead of reporting it as noise as well.
        if version != VERSION {
            self.reset();
            self.skipping = true;
            return refuse(ErrorCode::BadVersion, version as u16);
        }
        if length as usize > MAX_PAYLOAD {
            self.reset();
            self.skipping = true;
            return refuse(ErrorCode::TooLong, length);
        }
        let _ = kind;
        self.length = length as usize;
        self.payload.clear();
        self.crc_len = 0;
        self.state = if length == 0 {
            State::Crc
        } else {
            State::Payload
        };
        None
    }

    /// The CRC is in: check it and hand over the frame.
    fn finish(&mut self) -> Result<Frame, Refusal> {
        let [version, kind_byte, seq, lo, hi] = self.header;
        let running = crc32_update(!0, &[version, kind_byte, seq, lo, hi]);
        let crc = !crc32_update(running, &self.payload);
        let result = if crc != u32::from_le_bytes(self.crc) {
            Err(Refusal {
                code: ErrorCode::BadCrc,
                seq,
                detail: kind_byte as u16,
            })
        } else {
            match Kind::from_byte(kind_byte) {
                Some(kind) => Ok(Frame {
                    kind,
                    seq,
                    payload: core::mem::take(&mut self.payload),
                }),
                None => Err(Refusal {
                    code: ErrorCode::UnknownKind,
                    seq,
                    detail: kind_byte as u16,
                }),
            }
        };
        self.reset();
        result
    }

    fn seq(&self) -> u8 {
        match self.state {
            State::Payload | State::Crc => self.header[2],
            State::Header if self.header_len > 2 => self.header[2],
            _ => 0,
        }
    }

    fn take_noise(&mut self) -> Option<Refusal> {
        if self.noise == 0 {
            return None;
        }
        let detail = self.noise.min(u16::MAX as usize) as u16;
        self.noise = 0;
        Some(Refusal {
            code: ErrorCode::Noise,
            seq: 0,
            detail,
        })
    }

    fn reset(&mut self) {
        self.state = State::Hunt;
        self.header_len = 0;
        self.length = 0;
        self.payload.clear();
        self.crc_len = 0;
    }
}

/// The payload of an `Error` frame.
pub fn error_payload(code: ErrorCode, detail: u16) -> [u8; 3] {
    let d = detail.to_le_bytes();
    [code as u8, d[0], d[1]]
}

/// A device's answer to `Ping`.
#[derive(Debug, Clone, PartialEq)]
pub struct Info<'a> {
    /// sha256 of the ONNX file the model was quantized from, 64 lowercase hex digits.
    pub model_sha256: &'a str,
    /// Input height, width and channels.
    pub input: (u8, u8, u8),
    /// Number of classes (logits per result).
    pub classes: u8,
    /// Arena bytes the model uses.
    pub arena_bytes: u32,
    /// Multiply-accumulates per inference.
    pub macs: u32,
    /// Scale of the int8 logits: a logit `q` is worth `(q - output_zero_point) · output_scale`.
    pub output_scale: f32,
    /// Zero point of the int8 logits.
    pub output_zero_point: i8,
    /// The firmware's version (its crate version).
    pub firmware_version: &'a str,
    /// The target it was built for, e.g. `thumbv7em-none-eabihf`.
    pub target: &'a str,
}

impl<'a> Info<'a> {
    /// Serializes into `out`; returns the length, or `None` if `out` is too small.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer { out, at: 0 };
        w.bytes(&[self.model_sha256.len() as u8])?;
        w.bytes(self.model_sha256.as_bytes())?;
        w.bytes(&[self.input.0, self.input.1, self.input.2, self.classes])?;
        w.bytes(&self.arena_bytes.to_le_bytes())?;
        w.bytes(&self.macs.to_le_bytes())?;
        w.bytes(&self.output_scale.to_le_bytes())?;
        w.bytes(&[self.output_zero_point as u8])?;
        for s in [self.firmware_version, self.target] {
            w.bytes(&[s.len().min(255) as u8])?;
            w.bytes(&s.as_bytes()[..s.len().min(255)])?;
        }
        Some(w.at)
    }

    /// Parses an `Info` payload; `None` if it is malformed.
    pub fn read(payload: &'a [u8]) -> Option<Self> {
        let mut r = Reader { bytes: payload };
        let sha = r.string()?;
        let [h, w, c, classes] = r.array::<4>()?;
        let arena_bytes = u32::from_le_bytes(r.array()?);
        let macs = u32::from_le_bytes(r.array()?);
        let output_scale = f32::from_le_bytes(r.array()?);
        let [output_zero_point] = r.array::<1>()?;
        let firmware_version = r.string()?;
        let target = r.string()?;
        Some(Self {
            model_sha256: sha,
            input: (h, w, c),
            classes,
            arena_bytes,
            macs,
            output_scale,
            output_zero_point: output_zero_point as i8,
            firmware_version,
            target,
        })
    }
}

/// Layers whose instructions a `Result` can carry.
pub const MAX_LAYER_COSTS: usize = 32;

/// A device's answer to `Classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The predicted class (the first maximum logit).
    pub class: u8,
    /// The int8 logits.
    pub logits: [i8; 10],
    /// Instructions the inference took on the device.
    pub instructions: u32,
    /// Instructions each layer took, the first [`Self::layer_count`] of them. A max pool that
    /// runs fused into the convolution before it counts only the measuring itself (a few
    /// dozen instructions): its work is in that convolution's.
    pub layer_instructions: [u32; MAX_LAYER_COSTS],
    /// Layers in [`Self::layer_instructions`] (0 from a device that does not report them).
    pub layer_count: u8,
}

impl Classification {
    /// Length of the payload without the per-layer costs.
    pub const LEN: usize = 1 + 10 + 4;
    /// Longest payload: with the layer count and [`MAX_LAYER_COSTS`] per-layer costs.
    pub const MAX_LEN: usize = Self::LEN + 1 + 4 * MAX_LAYER_COSTS;

    /// An answer without per-layer costs.
    pub fn new(class: u8, logits: [i8; 10], instructions: u32) -> Self {
        Self {
            class,
            logits,
            instructions,
            layer_instructions: [0; MAX_LAYER_COSTS],
            layer_count: 0,
        }
    }

    /// The per-layer costs reported.
    pub fn layers(&self) -> &[u32] {
        let n = (self.layer_count as usize).min(MAX_LAYER_COSTS);
        &self.layer_instructions[..n]
    }

    /// Serializes into `out`: the class, the logits and the instructions, then, when there are
    /// per-layer costs, their count (u8) and each (u32). Returns the length.
    pub fn write(&self, out: &mut [u8; Self::MAX_LEN]) -> usize {
        out[0] = self.class;
        for (d, &l) in out[1..11].iter_mut().zip(&self.logits) {
            *d = l as u8;
        }
        out[11..15].copy_from_slice(&self.instructions.to_le_bytes());
        let layers = self.layers();
        if layers.is_empty() {
            return Self::LEN;
        }
        out[Self::LEN] = layers.len() as u8;
        for (chunk, n) in out[Self::LEN + 1..].chunks_exact_mut(4).zip(layers) {
            chunk.copy_from_slice(&n.to_le_bytes());
        }
        Self::LEN + 1 + 4 * layers.len()
    }

    /// Parses; `None` unless `payload` is exactly [`Self::LEN`] bytes, or that plus a count
    /// and as many per-layer costs (at most [`MAX_LAYER_COSTS`]).
    pub fn from_bytes(payload: &[u8]) -> Option<Self> {
        let (head, tail) = payload.split_at_checked(Self::LEN)?;
        let mut logits = [0i8; 10];
        for (l, &b) in logits.iter_mut().zip(&head[1..11]) {
            *l = b as i8;
        }
        let mut c = Self::new(
            head[0],
            logits,
            u32::from_le_bytes([head[11], head[12], head[13], head[14]]),
        );
        if let Some((&count, costs)) = tail.split_first() {
            let n = count as usize;
            if n > MAX_LAYER_COSTS || costs.len() != 4 * n {
                return None;
            }
            for (d, b) in c.layer_instructions.iter_mut().zip(costs.chunks_exact(4)) {
                *d = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            c.layer_count = count;
        }
        Some(c)
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        let end = self.at.checked_add(b.len())?;
        self.out.get_mut(self.at..end)?.copy_from_slice(b);
        self.at = end;
        Some(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn string(&mut self) -> Option<&'a str> {
        let n = self.take(1)?[0] as usize;
        core::str::from_utf8(self.take(n)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(kind: Kind, seq: u8, payload: &[u8]) -> std::vec::Vec<u8> {
        let mut out = [0u8; MAX_FRAME];
        let n = encode(kind, seq, payload, &mut out).unwrap();
        out[..n].to_vec()
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> std::vec::Vec<Result<Frame, Refusal>> {
        bytes.iter().filter_map(|&b| d.feed(b)).collect()
    }

    #[test]
    fn crc_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_frame_round_trips() {
        let bytes = frame(Kind::Classify, 7, &[1, 2, 3]);
        assert_eq!(&bytes[..7], &[0xE5, 0x4D, 1, 2, 7, 3, 0]);
        let got = decode_all(&mut Decoder::new(), &bytes);
        assert_eq!(got.len(), 1);
        let f = got[0].clone().unwrap();
        assert_eq!(
            (f.kind, f.seq, &f.payload[..]),
            (Kind::Classify, 7, &[1u8, 2, 3][..])
        );
    }

    #[test]
    fn faults_are_refused_and_the_next_frame_is_served() {
        let good = frame(Kind::Ping, 9, &[]);
        let mut corrupt = frame(Kind::Classify, 3, &[0; 784]);
        corrupt[100] ^= 0x10;
        let mut wrong_version = frame(Kind::Ping, 4, &[]);
        wrong_version[2] = 2;
        let oversized = [0xE5, 0x4D, 1, 2, 5, 0xFF, 0xFF];
        let noise = [0x00, 0x13, 0xE5, 0x37, 0xFF];
        let cases: [(&[u8], ErrorCode); 4] = [
            (&corrupt, ErrorCode::BadCrc),
            (&wrong_version, ErrorCode::BadVersion),
            (&oversized, ErrorCode::TooLong),
            (&noise, ErrorCode::Noise),
        ];
        for (bad, code) in cases {
            let mut d = Decoder::new();
            let mut stream = bad.to_vec();
            stream.extend_from_slice(&good);
            let got = decode_all(&mut d, &stream);
            assert_eq!(got.len(), 2, "{code:?}: {got:?}");
            assert_eq!(got[0].as_ref().unwrap_err().code, code);
            assert_eq!(got[1].as_ref().unwrap().seq, 9);
        }
        // A truncated frame is refused when the line goes quiet.
        let mut d = Decoder::new();
        assert!(decode_all(&mut d, &corrupt[..50]).is_empty());
        let r = d.idle().unwrap();
        assert_eq!((r.code, r.seq, r.detail), (ErrorCode::Truncated, 3, 50));
        assert_eq!(decode_all(&mut d, &good)[0].as_ref().unwrap().seq, 9);
        assert_eq!(d.idle(), None);
    }

    #[test]
    fn unknown_kinds_are_refused_after_their_crc() {
        let mut bytes = frame(Kind::Ping, 1, &[]);
        bytes[3] = 0x55;
        let crc = crc32(&bytes[2..7]);
        bytes[7..].copy_from_slice(&crc.to_le_bytes());
        let got = decode_all(&mut Decoder::new(), &bytes);
        assert_eq!(got[0].as_ref().unwrap_err().code, ErrorCode::UnknownKind);
    }

    #[test]
    fn info_and_results_round_trip() {
        let info = Info {
            model_sha256: "ab",
            input: (28, 28, 1),
            classes: 10,
            arena_bytes: 7840,
            macs: 527_104,
            output_scale: 0.125,
            output_zero_point: -3,
            firmware_version: "0.1.0",
            target: "thumbv7em-none-eabihf",
        };
        let mut buf = [0u8; 128];
        let n = info.write(&mut buf).unwrap();
        assert_eq!(Info::read(&buf[..n]), Some(info));
        assert_eq!(Info::read(&buf[..n - 1]), None);
        let mut c = Classification::new(3, [-128, 127, 0, 5, -5, 1, 2, 3, 4, 9], 966_505);
        let mut buf = [0u8; Classification::MAX_LEN];
        let n = c.write(&mut buf);
        assert_eq!(n, Classification::LEN);
        assert_eq!(Classification::from_bytes(&buf[..n]), Some(c));
        c.layer_count = 3;
        c.layer_instructions[..3].copy_from_slice(&[322_413, 0, 644_092]);
        let n = c.write(&mut buf);
        assert_eq!(n, Classification::LEN + 1 + 12);
        assert_eq!(Classification::from_bytes(&buf[..n]), Some(c));
        assert_eq!(c.layers(), &[322_413, 0, 644_092]);
        // A count that the costs do not match, or a stray byte, is refused.
        assert_eq!(Classification::from_bytes(&buf[..n - 1]), None);
        assert_eq!(
            Classification::from_bytes(&buf[..Classification::LEN + 1]),
            None
        );
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder, and whatever it accepts has a valid CRC.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut d = Decoder::new();
            for r in decode_all(&mut d, &bytes).into_iter().flatten() {
                let reencoded = frame(r.kind, r.seq, &r.payload);
                prop_assert!(bytes.windows(reencoded.len()).any(|w| w == &reencoded[..]));
            }
            let _ = d.idle();
            prop_assert!(!d.in_frame());
        }

        /// Frames separated by noise without a start marker all come through, in order.
        #[test]
        fn frames_survive_noise(
            frames in proptest::collection::vec((0u8..2, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..900)), 1..6),
            noise in proptest::collection::vec(proptest::collection::vec(0u8..0xE5, 0..20), 6),
        ) {
            let mut stream = std::vec::Vec::new();
            for ((k, seq, payload), junk) in frames.iter().zip(&noise) {
                stream.extend_from_slice(junk);
                let kind = if *k == 0 { Kind::Ping } else { Kind::Classify };
                stream.extend(frame(kind, *seq, payload));
            }
            let got: std::vec::Vec<Frame> =
                decode_all(&mut Decoder::new(), &stream).into_iter().filter_map(Result::ok).collect();
            prop_assert_eq!(got.len(), frames.len());
            for (f, (_, seq, payload)) in got.iter().zip(&frames) {
                prop_assert_eq!(f.seq, *seq);
                prop_assert_eq!(&f.payload[..], &payload[..]);
            }
        }

        /// Any single flipped bit in a frame is caught: no frame comes out with other content.
        #[test]
        fn a_flipped_bit_never_passes(payload in proptest::collection::vec(any::<u8>(), 0..200), at in any::<usize>(), bit in 0u8..8) {
            let mut bytes = frame(Kind::Classify, 1, &payload);
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            let mut d = Decoder::new();
            let got = decode_all(&mut d, &bytes);
            prop_assert!(got.iter().all(|r| r.is_err()));
        }
    }
}
