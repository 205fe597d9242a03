//! The firmware's entry point on the microcontroller.

use core::fmt::Write as _;

use cortex_m_rt::entry;
use firmware::board::{fail, stack_used, Clock};
use firmware::console::{self, Console};

#[allow(dead_code)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

#[allow(dead_code)]
mod digits {
    include!(concat!(env!("OUT_DIR"), "/digits.rs"));
}

/// The activation arena. The `small-arena` feature halves it, to prove that a model which does
/// not fit is reported and the firmware exits non-zero instead of hanging or corrupting memory.
const ARENA_LEN: usize = if cfg!(feature = "small-arena") {
    model::ARENA_BYTES / 2
} else {
    model::ARENA_BYTES
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
    let checked = match model::MODEL.check::<model::Used>() {
        Ok(checked) => checked,
        Err(e) => {
            let _ = writeln!(out, "error: model refused to run: {e}");
            fail()
        }
    };
    let layers = model::MODEL.layers.len();
    let mut layer_ticks = [0u64; 16];
    let (mut total_ticks, mut correct) = (0u64, 0usize);
    let n = digits::DIGITS.len();
    let _ = writeln!(
        out,
        "ember firmware: {} digits, model {}, arena {} bytes",
        n,
        &model::ONNX_SHA256[..16],
        ARENA_LEN
    );
    for (i, (image, &label)) in digits::DIGITS.iter().zip(digits::LABELS.iter()).enumerate() {
        let (result, ticks) = clock.run_timed(&checked, image, arena, &mut layer_ticks);
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
    for (i, name) in model::LAYER_NAMES.iter().enumerate().take(layers) {
        if model::MODEL.fused(i) {
            let _ = writeln!(out, "layer {i} {name}: fused into layer {}", i - 1);
        } else {
            let _ = writeln!(
                out,
                "layer {i} {name}: {} instructions",
                per(layer_ticks[i])
            );
        }
    }
    let _ = writeln!(
        out,
        "instructions per inference {} (MACs {})",
        per(total_ticks),
        model::MACS
    );
    let _ = writeln!(out, "stack high-water {} bytes", stack_used());
    out.flush();
    console::exit(true)
}
