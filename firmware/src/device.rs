//! The firmware's entry point on the microcontroller.

use core::fmt::Write as _;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};

#[allow(dead_code)]
mod model {
    include!("../../models/mnist_cnn_int8.rs");
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
const MAX_TICKS: u32 = 0x00ff_ffff;
/// Iterations of the calibration loop; each is two instructions (`subs`, `bne`).
const CALIBRATION_ITERATIONS: u32 = 1_000_000;

/// SysTick ticks elapsed since `start` (a down-counter; one wrap at most between reads).
fn elapsed(start: u32) -> u32 {
    start.wrapping_sub(SYST::get_current()) & MAX_TICKS
}

#[entry]
fn main() -> ! {
    let mut out = match hio::hstdout() {
        Ok(out) => out,
        Err(()) => fail(),
    };
    let Some(mut core) = cortex_m::Peripherals::take() else {
        fail()
    };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(MAX_TICKS);
    core.SYST.clear_current();
    core.SYST.enable_counter();
    // Under `qemu -icount shift=0` SysTick counts instructions at a fixed ratio; a loop of known
    // length gives that ratio (in 1/1000 instructions per tick).
    let t = SYST::get_current();
    count_down(CALIBRATION_ITERATIONS);
    let ticks = elapsed(t).max(1);
    let milli_per_tick = (2 * CALIBRATION_ITERATIONS as u64 * 1000 / ticks as u64) as u32;
    let Some(arena) = cortex_m::singleton!(: [i8; ARENA_LEN] = [0; ARENA_LEN]) else {
        fail()
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
        let start = SYST::get_current();
        let mut last = start;
        let result = firmware::model::run_with(&model::MODEL, image, arena, |layer, _| {
            let now = SYST::get_current();
            if let Some(t) = layer_ticks.get_mut(layer) {
                *t += (last.wrapping_sub(now) & MAX_TICKS) as u64;
            }
            last = now;
        });
        total_ticks += elapsed(start) as u64;
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                let _ = writeln!(out, "error: model refused to run: {e:?}");
                debug::exit(debug::EXIT_FAILURE);
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
    let per = |ticks: u64| ticks * milli_per_tick as u64 / 1000 / n as u64;
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
    debug::exit(debug::EXIT_SUCCESS);
    fail()
}

/// Executes exactly `2 · iterations` instructions. Our own loop rather than
/// `cortex_m::asm::delay`, whose iterations per requested cycle are an implementation detail
/// (0.7.10 runs `cycles + 1` of them, so calibrating against it once halved every figure).
fn count_down(iterations: u32) {
    // SAFETY: a register-only countdown loop; it touches no memory and only the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, #1",
            "bne 2b",
            n = inout(reg) iterations.max(1) => _,
            options(nomem, nostack),
        );
    }
}

/// Bytes of stack ever used: the painted region (`paint-stack`) no longer holding the paint.
fn stack_used() -> usize {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: [_stack_end, _stack_start) is this program's stack region in RAM, word aligned
        // (the linker script asserts it); reading it is always valid, and volatile because the
        // compiler cannot know the stack's contents.
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    top - addr
}

fn fail() -> ! {
    loop {
        debug::exit(debug::EXIT_FAILURE);
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstderr() {
        let _ = writeln!(out, "panic: {info}");
    }
    fail()
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    if let Ok(mut out) = hio::hstderr() {
        let _ = writeln!(out, "hard fault");
    }
    fail()
}
