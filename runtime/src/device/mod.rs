//! Classifying on a microcontroller: the firmware's inference service, reached over a serial
//! link, in QEMU or on a board.

mod client;
mod link;
pub mod qemu;
mod serial;

use std::path::Path;
use std::time::Duration;

pub use client::{Device, DeviceError, DeviceInfo};
pub use link::Link;
pub use qemu::{Board, M3, M4F};

/// Connects to the device named on the command line: `qemu` or `qemu:BOARD` starts the
/// inference service in QEMU (`firmware` overrides its ELF); anything else is a serial port
/// opened at `baud`.
pub fn open(
    spec: &str,
    baud: u32,
    firmware: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Device> {
    let link = match spec.strip_prefix("qemu") {
        Some("") => Link::qemu(M4F, &qemu::service_elf(M4F, firmware)?)?,
        Some(rest) if rest.starts_with(':') => {
            let board = Board::named(&rest[1..])?;
            Link::qemu(board, &qemu::service_elf(board, firmware)?)?
        }
        _ => Link::serial(Path::new(spec), baud)?,
    };
    Device::connect(link, timeout)
}
