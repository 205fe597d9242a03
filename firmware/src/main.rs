//! The Ember firmware: classifies MNIST test digits embedded in flash with the generated int8
//! model and reports, over semihosting (or defmt over RTT with `--features rtt`, on a board),
//! every digit's logits, the accuracy, the instructions per inference (per layer too) and the
//! stack high-water mark.
//!
//! Run in QEMU: `cargo run-m3`, `run-m4`, `run-m0` or `run-m33` (see .cargo/config.toml). On
//! the host this binary only explains that.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod device;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the firmware runs on a Cortex-M: cargo run -p ember-firmware --release --target thumbv7m-none-eabi (QEMU lm3s6965evb)"
    );
    std::process::exit(2);
}
