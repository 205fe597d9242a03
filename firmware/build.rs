//! Picks the board's memory layout for thumb targets and embeds MNIST test digits in flash.

use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=boards");
    println!("cargo::rustc-check-cfg=cfg(ember_dsp)");
    println!("cargo::rustc-check-cfg=cfg(ember_thumb2)");
    println!("cargo::rustc-check-cfg=cfg(ember_sse2)");
    println!("cargo::rustc-check-cfg=cfg(ember_embedded_model)");
    println!(
        "cargo::rustc-check-cfg=cfg(ember_board, values(\"lm3s6965\", \"stm32f405\", \"nrf51\", \"nrf52840\", \"an500\", \"an505\"))"
    );
    // ARMv7-M, ARMv7E-M and ARMv8-M Mainline (Cortex-M3/M4/M7/M33) share Thumb-2 with SMULL
    // and BIC, which the requantization loop uses; ARMv6-M (Cortex-M0) has neither.
    let thumb2 = ["thumbv7m", "thumbv7em", "thumbv8m.main"];
    if thumb2.iter().any(|t| target.starts_with(t)) {
        println!("cargo:rustc-cfg=ember_thumb2");
    }
    // ARMv7E-M (Cortex-M4/M7) has the DSP instructions (SMLAD, SXTB16) the kernels use. On
    // ARMv8-M Mainline they are an option of the core; rustc lists no `dsp` target feature, so
    // the flags say it: the Cortex-M33 (the workspace's .cargo/config.toml) or `+dsp`.
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let v8m_dsp = flags
        .split('\x1f')
        .any(|f| f.contains("target-cpu=cortex-m33") || f.contains("+dsp"));
    if target.starts_with("thumbv7em") || (target.starts_with("thumbv8m.main") && v8m_dsp) {
        println!("cargo:rustc-cfg=ember_dsp");
    }
    // The host simulation on x86-64 runs the MAC loops in SSE2, which every x86-64 has.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        println!("cargo:rustc-cfg=ember_sse2");
    }
    // The service names the target it was built for.
    println!("cargo:rustc-env=EMBER_TARGET={target}");
    if !target.starts_with("thumb") {
        return;
    }
    let board = board(&target);
    println!("cargo:rustc-cfg=ember_board=\"{}\"", board.name);
    // EMBER_DIGITS embeds fewer digits, for quick runs and instruction traces.
    println!("cargo:rerun-if-env-changed=EMBER_DIGITS");
    let digits = match std::env::var("EMBER_DIGITS") {
        Ok(v) => v.parse().expect("EMBER_DIGITS must be a count"),
        Err(_) => board.digits,
    };
    std::fs::write(out.join("board.rs"), board.constants()).expect("write board.rs");
    std::fs::copy(
        manifest.join("boards").join(format!("{}.x", board.name)),
        out.join("memory.x"),
    )
    .expect("copy memory.x");
    embed_model(&manifest, &out);
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // defmt keeps its format strings in a section of its own linker script.
    if std::env::var_os("CARGO_FEATURE_RTT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    // The workspace's copy of MNIST, or $EMBER_DATA outside it (a packaged crate).
    println!("cargo:rerun-if-env-changed=EMBER_DATA");
    let data = std::env::var_os("EMBER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../data/mnist"));
    write_digits(&data, &out.join("digits.rs"), digits);
}

/// What the firmware's build needs to know of a board beyond its memory map
/// (`boards/NAME.x`) and its UART driver (`src/board.rs`).
struct Board {
    name: String,
    /// Test digits the demo embeds: as many as fit in the flash beside the code.
    digits: usize,
    /// The activation arena: the RAM the statics and the stack leave.
    arena: usize,
    /// Most layers (and tensors) a model file may have: their records live on the stack.
    layers: usize,
}

impl Board {
    /// `board.rs` in OUT_DIR, which `firmware::stored` includes.
    fn constants(&self) -> String {
        format!(
            "/// Bytes of the activation arena.\npub const ARENA_BYTES: usize = {};\n\
             /// Most layers and tensors a model file may have here.\npub const MAX_LAYERS: usize = {};\n",
            self.arena, self.layers
        )
    }
}

/// The board to build for: `EMBER_BOARD`, else the one QEMU machine of the target.
fn board(target: &str) -> Board {
    println!("cargo:rerun-if-env-changed=EMBER_BOARD");
    let name = std::env::var("EMBER_BOARD").unwrap_or_else(|_| {
        let default = match target {
            t if t.starts_with("thumbv7em") => "stm32f405",
            t if t.starts_with("thumbv6m") => "nrf51",
            t if t.starts_with("thumbv8m.main") => "an505",
            _ => "lm3s6965",
        };
        default.to_string()
    });
    // 784 bytes a digit. The 256 KiB chips keep 160 KiB for code and digits (96 KiB are the
    // model's); the STM32F405 768 KiB; the MPS2 images 3 MiB.
    let (digits, arena, layers) = match name.as_str() {
        "lm3s6965" => (120, 32 * 1024, 64),
        // 16 KiB of RAM: the arena takes what the stack (13.5 KiB) and the statics leave.
        "nrf51" => (120, 2400, 12),
        "stm32f405" => (800, 96 * 1024, 64),
        "nrf52840" => (800, 192 * 1024, 64),
        "an500" | "an505" => (1000, 192 * 1024, 64),
        other => panic!(
            "EMBER_BOARD={other}: unknown board (lm3s6965, stm32f405, nrf51, nrf52840, an500, an505)"
        ),
    };
    Board {
        name,
        digits,
        arena,
        layers,
    }
}

fn write_digits(data: &Path, path: &Path, count: usize) {
    println!("cargo:rerun-if-changed={}", data.display());
    let (count, test) = match mnist::load(data, mnist::Split::Test) {
        Ok(test) => (count.min(test.len()), test),
        Err(e) => {
            println!("cargo:warning=the demo embeds no digits: {e} (set EMBER_DATA)");
            (0, mnist::Dataset::default())
        }
    };
    let mut f = std::fs::File::create(path).expect("create digits.rs");
    writeln!(f, "/// MNIST test digits 0..{count}, 28×28 bytes each.").unwrap();
    writeln!(f, "pub static DIGITS: [[u8; 784]; {count}] = [").unwrap();
    for i in 0..count {
        let bytes: Vec<String> = test.image(i).iter().map(u8::to_string).collect();
        writeln!(f, "[{}],", bytes.join(",")).unwrap();
    }
    writeln!(
        f,
        "];\n/// Their labels.\npub static LABELS: [u8; {count}] = {:?};",
        &test.labels()[..count]
    )
    .unwrap();
}

/// `EMBER_MODEL=FILE.int8` (relative paths are from the workspace root) builds a
/// self-contained image, with that model file inside; without it, the firmware reads its model
/// from the board's `MODEL` flash region.
fn embed_model(manifest: &Path, out: &Path) {
    println!("cargo:rerun-if-env-changed=EMBER_MODEL");
    let Some(path) = std::env::var_os("EMBER_MODEL") else {
        return;
    };
    let model = manifest.join("..").join(path);
    println!("cargo:rerun-if-changed={}", model.display());
    if let Err(e) = std::fs::copy(&model, out.join("model.int8")) {
        panic!("EMBER_MODEL {}: cannot read: {e}", model.display());
    }
    println!("cargo:rustc-cfg=ember_embedded_model");
}
