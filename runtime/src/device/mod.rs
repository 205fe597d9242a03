//! Classifying on a microcontroller: the firmware's inference service, reached over a serial
//! link, in QEMU or on a board.

mod client;
mod link;
pub mod qemu;
mod serial;

use std::path::Path;

use crate::classifier::Classifier;
use std::time::Duration;

pub use client::{fault_kind, Device, DeviceError, DeviceInfo};
pub use link::Link;
pub use qemu::{Board, M0, M3, M33, M4F, M7};

/// What runs in QEMU: a given ELF, or the service for a model (built for it unless it is the one
/// built into this runtime).
#[derive(Clone, Copy)]
pub enum Service<'a> {
    /// The one built into this runtime, for the committed model.
    BuiltIn,
    /// This ELF.
    Elf(&'a Path),
    /// The service for this model, calibrating on this MNIST folder (or the default one) if it
    /// must be built.
    For(&'a Classifier, Option<&'a Path>),
}

/// Connects to the device named on the command line: `qemu` or `qemu:BOARD` starts the
/// inference service in QEMU (`service` says which) on pipes, `qemu-pty[:BOARD]` on a
/// pseudo-terminal opened as a serial port; anything else is a serial port opened at `baud`.
pub fn open(spec: &str, baud: u32, service: Service, timeout: Duration) -> anyhow::Result<Device> {
    let qemu = |rest: &str, pty: bool| -> anyhow::Result<Link> {
        let board = match rest {
            "" => M4F,
            _ => Board::named(rest)?,
        };
        let elf = match service {
            Service::BuiltIn => qemu::service_elf(board, None)?,
            Service::Elf(path) => qemu::service_elf(board, Some(path))?,
            Service::For(c, _) if crate::embedded::int8_model(&c.sha256).is_some() => {
                qemu::service_elf(board, None)?
            }
            Service::For(c, data) => qemu::service_for(board, c, data)?,
        };
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
