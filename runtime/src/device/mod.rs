//! Classifying on a microcontroller: the firmware's inference service, reached over a serial
//! link, in QEMU or on a board.

mod client;
mod link;
pub mod qemu;
mod serial;

use std::path::Path;
use std::time::Duration;

use crate::answers::Int8File;

pub use client::{fault_kind, Device, DeviceError, DeviceInfo};
pub use link::Link;
pub use qemu::{Board, Image, M0, M3, M33, M4F, M7};

/// Connects to the device named on the command line: `qemu` or `qemu:BOARD` starts the
/// inference service in QEMU on pipes, `qemu-pty[:BOARD]` on a pseudo-terminal opened as a
/// serial port; anything else is a serial port opened at `baud`, whose board runs what was
/// flashed on it. In QEMU the service is `firmware` (default: the one built into runtime) and
/// its loader puts `model` (default: the committed model file) in the board's MODEL region.
pub fn open(
    spec: &str,
    baud: u32,
    firmware: Option<&Path>,
    model: Option<&Int8File>,
    timeout: Duration,
) -> anyhow::Result<Device> {
    let qemu = |rest: &str, pty: bool| -> anyhow::Result<Link> {
        let board = match rest {
            "" => M4F,
            _ => Board::named(rest)?,
        };
        let bytes = model.map_or(crate::embedded::INT8, |m| m.bytes.bytes());
        let image = Image {
            elf: qemu::service_elf(board, firmware)?,
            model: Some(qemu::write_once(bytes, "model", "int8")?),
        };
        match pty {
            true => Link::qemu_pty(board, &image),
            false => Link::qemu(board, &image),
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
