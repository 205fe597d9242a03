//! Classifying on a microcontroller: the firmware's inference service, reached over a serial
//! link, in QEMU or on a board.

mod client;
mod link;
pub mod qemu;
mod serial;

use std::path::Path;
use std::time::Duration;

pub use client::{fault_kind, Device, DeviceError, DeviceInfo};
pub use link::Link;
pub use qemu::{Board, M3, M4F};

/// Connects to the device named on the command line: `qemu` or `qemu:BOARD` starts the
/// inference service in QEMU (`firmware` overrides its ELF) on pipes, `qemu-pty[:BOARD]` on a
/// pseudo-terminal opened as a serial port; anything else is a serial port opened at `baud`.
pub fn open(
    spec: &str,
    baud: u32,
    firmware: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Device> {
    let qemu = |rest: &str, pty: bool| -> anyhow::Result<Link> {
        let board = match rest {
            "" => M4F,
            _ => Board::named(rest)?,
        };
        let elf = qemu::service_elf(board, firmware)?;
        match pty {
            true => Link::qemu_pty(board, &elf),
            false => Link::qemu(board, &elf),
        }
    };
    let link = if let Some(rest) = spec.strip_prefix("qemu-pty") {
        qemu(rest.trim_start_matches(':'), true)?
    } else if let Some(rest) = spec
        .strip_prefix("qemu")
        .filter(|r| r.is_empty() || r.starts_with(':'))
    {
        qemu(rest.trim_start_matches(':'), false)?
    } else {
        Link::serial(Path::new(spec), baud)?
    };
    Device::connect(link, timeout)
}
