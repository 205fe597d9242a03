//! The Ember firmware as a serial inference service: it waits on the board's first serial port
//! for framed requests (see `firmware::protocol` and PROTOCOL.md), classifies each image it is
//! sent with the model file in the board's MODEL flash region (`firmware::stored`), and answers
//! with the class, the ten logits and the instructions the inference took. A bad frame gets an
//! error reply and the service goes on; without a valid model file, every request is answered
//! with that error.
//!
//! `runtime classify --device qemu digit.png` starts it in QEMU with the serial port on a pipe
//! and the model file loaded at its address; on a board, flash it and the model file and use
//! `--device /dev/ttyACM0`. On the host this binary only explains
//! that.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod service {
    use cortex_m_rt::entry;
    use firmware::board::{fail, Clock, Serial};
    use firmware::file::FileError;
    use firmware::protocol::{
        encode, error_payload, Classification, Decoder, ErrorCode, Frame, Info, Kind, Refusal,
        HEADER, MAX_LAYER_COSTS, TRAILER,
    };
    use firmware::stored::{self, Loaded, Tables, ARENA_BYTES};

    /// The longest reply payload: an Info (its two strings short) or a Result with every
    /// layer's cost. Replies are small; a request-sized buffer would cost the Cortex-M0 a KiB
    /// of its stack.
    const MAX_REPLY: usize = if INFO_LEN > Classification::MAX_LEN {
        INFO_LEN
    } else {
        Classification::MAX_LEN
    };
    const INFO_LEN: usize = 160;

    /// A frame left unfinished this long (in instructions, or cycles on a board) is refused as
    /// truncated: 4 ms at 1 instruction per nanosecond (QEMU's `-icount shift=0`), 24 ms on a
    /// 168 MHz STM32F405, some 45 byte-times at 115200 baud. (Polling the UART is slow in
    /// QEMU, so each virtual millisecond takes several real ones.)
    const IDLE_INSTRUCTIONS: u64 = 4_000_000;

    /// The service's state: the port, the clock, the model (opened and checked once at start),
    /// the arena and a reply buffer.
    struct Service<'a> {
        serial: Serial,
        model: Result<Loaded<'a>, FileError>,
        clock: Clock,
        arena: &'static mut [i8; ARENA_BYTES],
        reply: [u8; HEADER + MAX_REPLY + TRAILER],
    }

    impl Service<'_> {
        fn send(&mut self, kind: Kind, seq: u8, payload: &[u8]) {
            if let Some(n) = encode(kind, seq, payload, &mut self.reply) {
                self.serial.write(&self.reply[..n]);
            }
        }

        fn refuse(&mut self, r: Refusal) {
            self.send(Kind::Error, r.seq, &error_payload(r.code, r.detail));
        }

        fn serve(&mut self, frame: &Frame) {
            let (seq, len) = (frame.seq, frame.payload.len());
            let input_len = match &self.model {
                Ok(m) => Ok(m.file.header.input.len()),
                Err(e) => Err(e.code()),
            };
            match (frame.kind, input_len) {
                (Kind::Ping | Kind::Classify, Err(e)) => self.refuse(Refusal {
                    code: ErrorCode::NoModel,
                    seq,
                    detail: e,
                }),
                (Kind::Ping, _) if len == 0 => self.info(seq),
                (Kind::Classify, Ok(n)) if len == n => self.classify(seq, &frame.payload),
                (Kind::Ping | Kind::Classify, _) => self.refuse(Refusal {
                    code: ErrorCode::BadLength,
                    seq,
                    detail: len as u16,
                }),
                (other, _) => self.refuse(Refusal {
                    code: ErrorCode::UnknownKind,
                    seq,
                    detail: other as u16,
                }),
            }
        }

        fn info(&mut self, seq: u8) {
            let Ok(loaded) = &self.model else { return };
            let header = &loaded.file.header;
            let mut sha = [0u8; 64];
            let info = Info {
                model_sha256: header.sha256_hex(&mut sha),
                input: (
                    header.input.h as u8,
                    header.input.w as u8,
                    header.input.c as u8,
                ),
                classes: header.output.len().min(255) as u8,
                arena_bytes: header.arena_bytes as u32,
                macs: header.macs as u32,
                output_scale: header.output_quant.0,
                output_zero_point: header.output_quant.1,
                firmware_version: env!("CARGO_PKG_VERSION"),
                target: env!("EMBER_TARGET"),
            };
            let mut payload = [0u8; INFO_LEN];
            if let Some(n) = info.write(&mut payload) {
                self.send(Kind::Info, seq, &payload[..n]);
            }
        }

        fn classify(&mut self, seq: u8, image: &[u8]) {
            let Ok(loaded) = &self.model else { return };
            let mut ticks = [0u64; MAX_LAYER_COSTS];
            let (result, total) =
                self.clock
                    .run_timed(&loaded.checked, image, &mut self.arena[..], &mut ticks);
            let count = loaded.file.model.layers.len().min(MAX_LAYER_COSTS);
            match result {
                Ok(out) => {
                    let clock = &self.clock;
                    let mut reply =
                        Classification::new(out.class, out.logits, instructions(clock, total));
                    reply.layer_instructions = ticks.map(|t| instructions(clock, t));
                    reply.layer_count = count as u8;
                    let mut payload = [0u8; Classification::MAX_LEN];
                    let n = reply.write(&mut payload);
                    self.send(Kind::Result, seq, &payload[..n]);
                }
                Err(e) => self.refuse(Refusal {
                    code: ErrorCode::ModelError,
                    seq,
                    detail: e
                        .layer()
                        .map_or(0, |i| i.saturating_add(1).min(u16::MAX as usize) as u16),
                }),
            }
        }
    }

    /// Clock ticks as instructions, saturated to the protocol's u32.
    fn instructions(clock: &Clock, ticks: u64) -> u32 {
        clock.instructions(ticks).min(u32::MAX as u64) as u32
    }

    #[entry]
    fn main() -> ! {
        let Some(core) = cortex_m::Peripherals::take() else {
            fail()
        };
        let (Some(serial), Some(arena)) = (
            Serial::take(),
            cortex_m::singleton!(: [i8; ARENA_BYTES] = [0; ARENA_BYTES]),
        ) else {
            fail()
        };
        let mut tables = Tables::new();
        let mut service = Service {
            serial,
            model: stored::load(&mut tables),
            clock: Clock::start(core.SYST),
            arena,
            reply: [0; HEADER + MAX_REPLY + TRAILER],
        };
        let idle = service.clock.ticks(IDLE_INSTRUCTIONS);
        let mut decoder = Decoder::new();
        let mut last_byte = service.clock.now();
        loop {
            let now = service.clock.now();
            match service.serial.read() {
                Some(byte) => {
                    last_byte = now;
                    match decoder.feed(byte) {
                        Some(Ok(frame)) => service.serve(&frame),
                        Some(Err(refusal)) => service.refuse(refusal),
                        None => {}
                    }
                }
                None if now - last_byte > idle => {
                    if let Some(refusal) = decoder.idle() {
                        service.refuse(refusal);
                    }
                    last_byte = now;
                }
                None => {}
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the inference service runs on a Cortex-M: runtime classify --device qemu digit.png starts it in QEMU"
    );
    std::process::exit(2);
}
