//! The client side of Ember's serial protocol: requests out, replies in, matched by sequence
//! number, each with a deadline.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use firmware::protocol::{
    encode, Classification, Decoder, ErrorCode, Frame, Info, Kind, MAX_FRAME,
};

use super::link::Link;

/// What a device says about itself (its answer to `Ping`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// sha256 of the ONNX file its model was quantized from.
    pub model_sha256: String,
    /// Input height, width and channels.
    pub input: (u8, u8, u8),
    /// Classes.
    pub classes: u8,
    /// Arena bytes.
    pub arena_bytes: u32,
    /// Multiply-accumulates per inference.
    pub macs: u32,
    /// Scale of its int8 logits.
    pub output_scale: f32,
    /// Zero point of its int8 logits.
    pub output_zero_point: i8,
    /// Firmware version.
    pub firmware_version: String,
    /// Target triple it was built for.
    pub target: String,
}

impl DeviceInfo {
    fn parse(payload: &[u8]) -> Option<Self> {
        let i = Info::read(payload)?;
        Some(Self {
            model_sha256: i.model_sha256.to_string(),
            input: i.input,
            classes: i.classes,
            arena_bytes: i.arena_bytes,
            macs: i.macs,
            output_scale: i.output_scale,
            output_zero_point: i.output_zero_point,
            firmware_version: i.firmware_version.to_string(),
            target: i.target.to_string(),
        })
    }

    /// The logits dequantized.
    pub fn scores(&self, logits: &[i8; 10]) -> [f32; 10] {
        logits.map(|q| (q as i32 - self.output_zero_point as i32) as f32 * self.output_scale)
    }
}

/// An error frame from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceError {
    /// What went wrong.
    pub code: Option<ErrorCode>,
    /// The code's detail.
    pub detail: u16,
}

impl DeviceError {
    /// Parses an `Error` frame's payload.
    pub fn parse(payload: &[u8]) -> Self {
        Self {
            code: payload.first().and_then(|&b| ErrorCode::from_byte(b)),
            detail: payload
                .get(1..3)
                .map_or(0, |d| u16::from_le_bytes([d[0], d[1]])),
        }
    }
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(ErrorCode::NoModel) => write!(
                f,
                "it holds no valid model file in its MODEL flash region: {}",
                firmware::file::FileError::describe(self.detail)
            ),
            Some(code) => write!(f, "{code:?} (detail {})", self.detail),
            None => write!(f, "an unknown error code (detail {})", self.detail),
        }
    }
}

/// A connected device that answered `Ping`.
pub struct Device {
    link: Link,
    decoder: Decoder,
    seq: u8,
    timeout: Duration,
    retries: u32,
    /// Its answer to `Ping`.
    pub info: DeviceInfo,
    /// Faults recovered from by reconnecting, by kind ("device gone", "no reply", ...).
    pub recovered: std::collections::BTreeMap<String, usize>,
}

/// The device answered a request with an `Error` frame: a definite answer, never retried.
#[derive(Debug, thiserror::Error)]
#[error("{name}: the device refused the request: {error}")]
pub struct Refused {
    /// How the device is reached.
    pub name: String,
    /// What it said.
    pub error: DeviceError,
}

/// How long a freshly started device gets to answer its first `Ping` (QEMU drops what the
/// board's serial port receives before the firmware enables it, so pings are repeated).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PING_INTERVAL: Duration = Duration::from_millis(250);

impl Device {
    /// Pings the device on `link` until it answers (at most 10 s); `timeout` then bounds each
    /// request.
    pub fn connect(link: Link, timeout: Duration) -> anyhow::Result<Self> {
        let mut device = Self {
            link,
            decoder: Decoder::new(),
            seq: 0,
            timeout,
            retries: 0,
            recovered: Default::default(),
            info: DeviceInfo {
                model_sha256: String::new(),
                input: (0, 0, 0),
                classes: 0,
                arena_bytes: 0,
                macs: 0,
                output_scale: 0.0,
                output_zero_point: 0,
                firmware_version: String::new(),
                target: String::new(),
            },
        };
        let started = Instant::now();
        while started.elapsed() < CONNECT_TIMEOUT {
            let seq = device.send(Kind::Ping, &[])?;
            let frame = match device.reply_to(seq, PING_INTERVAL) {
                Ok(Some(frame)) => frame,
                Ok(None) => continue,
                Err(e) => return Err(e),
            };
            if frame.kind == Kind::Error {
                let error = DeviceError::parse(&frame.payload);
                bail!("{}: the device refused Ping: {error}", device.link.name);
            }
            device.info = DeviceInfo::parse(&frame.payload)
                .with_context(|| format!("{}: malformed Info reply", device.link.name))?;
            return Ok(device);
        }
        bail!(
            "{}: no answer to ping within {} s (is the inference service flashed, and the baud \
             rate right?)",
            device.link.name,
            CONNECT_TIMEOUT.as_secs()
        )
    }

    /// How the device is reached.
    pub fn name(&self) -> &str {
        &self.link.name
    }

    /// Classifies a 28×28 image (0 = background, 255 = ink) on the device.
    pub fn classify(&mut self, image: &[u8]) -> anyhow::Result<Classification> {
        let mut attempt = 0;
        loop {
            match self.classify_once(image) {
                Err(e) if attempt < self.retries && e.downcast_ref::<Refused>().is_none() => {
                    *self
                        .recovered
                        .entry(fault_kind(&e).to_string())
                        .or_insert(0) += 1;
                    attempt += 1;
                    self.reconnect()?;
                }
                result => return result,
            }
        }
    }

    /// After a fault, reconnects up to `retries` times per request and sends it again
    /// (`--retries`). A request refused by the device is never retried.
    pub fn set_retries(&mut self, retries: u32) {
        self.retries = retries;
    }

    /// A fresh link to the same device, checked to run the same model.
    pub fn reconnect(&mut self) -> anyhow::Result<()> {
        let fresh = Device::connect(self.link.reopen()?, self.timeout)?;
        if fresh.info.model_sha256 != self.info.model_sha256 {
            bail!("{}: came back with another model", self.link.name);
        }
        self.link = fresh.link;
        self.decoder = fresh.decoder;
        self.seq = fresh.seq;
        Ok(())
    }

    /// Kills QEMU behind the link (fault injection for the soak).
    pub fn kill(&mut self) {
        self.link.kill();
    }

    /// Sends a Classify request without waiting; returns its sequence number (pipelining).
    pub fn send_classify(&mut self, image: &[u8]) -> anyhow::Result<u8> {
        self.send(Kind::Classify, image)
    }

    /// The answer to the Classify request `seq` (skipping other frames).
    pub fn answer_to(&mut self, seq: u8) -> anyhow::Result<Classification> {
        let frame = self.reply(seq)?;
        if frame.kind != Kind::Result {
            bail!(
                "{}: answered Classify with {:?}",
                self.link.name,
                frame.kind
            );
        }
        Classification::from_bytes(&frame.payload)
            .with_context(|| format!("{}: malformed Result reply", self.link.name))
    }

    fn classify_once(&mut self, image: &[u8]) -> anyhow::Result<Classification> {
        let seq = self.send(Kind::Classify, image)?;
        self.answer_to(seq)
    }

    /// Sends a request and waits for its reply; an `Error` reply becomes an error.
    pub fn request(&mut self, kind: Kind, payload: &[u8]) -> anyhow::Result<Frame> {
        let seq = self.send(kind, payload)?;
        self.reply(seq)
    }

    /// The reply to request `seq` within the timeout; an `Error` reply becomes [`Refused`].
    fn reply(&mut self, seq: u8) -> anyhow::Result<Frame> {
        let frame = self.reply_to(seq, self.timeout)?.with_context(|| {
            format!(
                "{}: no reply within {:.1} s",
                self.link.name,
                self.timeout.as_secs_f64()
            )
        })?;
        if frame.kind == Kind::Error {
            return Err(Refused {
                name: self.link.name.clone(),
                error: DeviceError::parse(&frame.payload),
            }
            .into());
        }
        Ok(frame)
    }

    /// Sends raw bytes, for fault injection.
    pub fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.link.send(bytes)
    }

    /// The next frame from the device, or `None` after `timeout`.
    pub fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        while let Some(byte) = self.link.recv(deadline)? {
            match self.decoder.feed(byte) {
                Some(Ok(frame)) => return Ok(Some(frame)),
                Some(Err(refusal)) if refusal.code != ErrorCode::Noise => bail!(
                    "{}: garbled reply from the device ({:?})",
                    self.link.name,
                    refusal.code
                ),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Frames the request with the next sequence number (1–255) and sends it.
    fn send(&mut self, kind: Kind, payload: &[u8]) -> anyhow::Result<u8> {
        self.seq = self.seq % 255 + 1;
        let mut frame = [0u8; MAX_FRAME];
        let n = encode(kind, self.seq, payload, &mut frame)
            .with_context(|| format!("request of {} bytes is too long", payload.len()))?;
        self.link.send(&frame[..n])?;
        Ok(self.seq)
    }

    /// The reply carrying `seq`, skipping unsolicited frames (sequence 0, such as a report of
    /// noise on the line) and stale replies; `None` after `timeout`.
    fn reply_to(&mut self, seq: u8, timeout: Duration) -> anyhow::Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left)? {
                Some(frame) if frame.seq == seq => return Ok(Some(frame)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }
}

/// A fault's kind, as the soak and the retries tally them: a refusal by the device, or the
/// kind of link failure its message names.
pub fn fault_kind(e: &anyhow::Error) -> &'static str {
    if e.downcast_ref::<Refused>().is_some() {
        return "refused";
    }
    let text = e.to_string();
    [
        "device gone",
        "no reply",
        "garbled reply",
        "no answer to ping",
    ]
    .into_iter()
    .find(|k| text.contains(k))
    .unwrap_or("other")
}
