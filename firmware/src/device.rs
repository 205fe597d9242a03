//! The firmware's entry point on the microcontroller.

use core::fmt::Write as _;

use cortex_m_rt::entry;
use firmware::board::{fail, stack_used, Clock};
use firmware::console::{self, Console};
use firmware::stored::{self, Tables};

#[allow(dead_code)]
mod digits {
    include!(concat!(env!("OUT_DIR"), "/digits.rs"));
}

/// The activation arena. The `small-arena` feature makes it smaller than any model needs, to
/// prove that a model which does not fit is reported and the firmware exits non-zero instead
/// of hanging or corrupting memory.
const ARENA_LEN: usize = if cfg!(feature = "small-arena") {
    1024
} else {
    stored::ARENA_BYTES
};

#[entry]
fn main() -> ! {
    let Some(mut out) = Console::stdout() else {
        fail()
    };
    let Some(core) = cortex_m::Peripherals::take() else {
        fail()
    };
    let mut clock = Clock::start(core.SYST);
    let Some(arena) = cortex_m::singleton!(: [i8; ARENA_LEN] = [0; ARENA_LEN]) else {
        fail()
    };
    let mut tables = Tables::new();
    let loaded = match stored::load(&mut tables) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = writeln!(
                out,
                "error: no valid model file at {:#010x}: {e}",
                stored::model_address()
            );
            fail()
        }
    };
    let (header, model) = (loaded.file.header, loaded.file.model);
    let mut layer_ticks = [0u64; stored::MAX_LAYERS];
    let (mut total_ticks, mut correct) = (0u64, 0usize);
    let n = digits::DIGITS.len();
    let mut sha = [0u8; 64];
    let _ = writeln!(
        out,
        "ember firmware: {} digits, model {} ({} bytes), arena {} bytes",
        n,
        &header.sha256_hex(&mut sha)[..16],
        header.file_len,
        ARENA_LEN
    );
    for (i, (image, &label)) in digits::DIGITS.iter().zip(digits::LABELS.iter()).enumerate() {
        let (result, ticks) = clock.run_timed(&loaded.checked, image, arena, &mut layer_ticks);
        total_ticks += ticks;
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                let _ = writeln!(out, "error: model refused to run: {e}");
                fail()
            }
        };
        correct += usize::from(output.class == label);
        let _ = write!(
            out,
            "digit {i} label {label} predicted {} logits",
            output.class
        );
        for l in output.logits {
            let _ = write!(out, " {l}");
        }
        let _ = writeln!(out);
    }
    let per = |ticks: u64| clock.instructions(ticks) / (n as u64).max(1);
    let _ = writeln!(out, "accuracy {correct}/{n}");
    for (i, ticks) in layer_ticks.iter().enumerate().take(model.layers.len()) {
        let name = header.layer_name(i).unwrap_or("?");
        if model.fused(i) {
            let _ = writeln!(out, "layer {i} {name}: fused into layer {}", i - 1);
        } else {
            let _ = writeln!(out, "layer {i} {name}: {} instructions", per(*ticks));
        }
    }
    let _ = writeln!(
        out,
        "instructions per inference {} (MACs {})",
        per(total_ticks),
        header.macs
    );
    let _ = writeln!(out, "stack high-water {} bytes", stack_used());
    out.flush();
    console::exit(true)
}
