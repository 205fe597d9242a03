//! The Cortex-M boards Ember targets, the QEMU machines that stand in for them, and building
//! the firmware for them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A Cortex-M target Ember supports and the QEMU machine that mirrors its chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Short name, as in `--device qemu:m4`.
    pub name: &'static str,
    /// Rust target triple.
    pub target: &'static str,
    /// QEMU machine.
    pub machine: &'static str,
}

/// Cortex-M3, TI LM3S6965.
pub const M3: Board = Board {
    name: "m3",
    target: "thumbv7m-none-eabi",
    machine: "lm3s6965evb",
};
/// Cortex-M4F, ST STM32F405.
pub const M4F: Board = Board {
    name: "m4",
    target: "thumbv7em-none-eabihf",
    machine: "netduinoplus2",
};

impl Board {
    /// The board called `name`: `m3`, `m4`, a target triple or a QEMU machine name.
    pub fn named(name: &str) -> anyhow::Result<Self> {
        [M3, M4F]
            .into_iter()
            .find(|b| [b.name, b.target, b.machine].contains(&name) || (name == "m4f" && *b == M4F))
            .with_context(|| {
                format!(
                    "qemu:{name}: unknown board (m3 = {}, m4 = {})",
                    M3.target, M4F.target
                )
            })
    }
}

/// The workspace this runtime was built from (where the firmware's sources and QEMU live).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds firmware binary `bin` for `board` with `features` into `target_dir` (quietly; a no-op
/// when it is up to date) and returns the ELF's path.
pub fn build(
    board: Board,
    bin: &str,
    features: &str,
    target_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args(["build", "-q", "-p", "firmware", "--release", "--bin", bin])
        .args(["--target", board.target])
        .env("CARGO_TARGET_DIR", target_dir);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let status = cmd
        .status()
        .context("cannot start cargo to build the firmware")?;
    if !status.success() {
        bail!("building the firmware ({bin}) for {} failed", board.target);
    }
    Ok(target_dir.join(board.target).join("release").join(bin))
}

/// The inference service's ELF for `board`: `firmware` if given, else the workspace's build,
/// brought up to date first (a no-op taking half a second when it is), so that the device
/// never runs a stale model or protocol.
pub fn service_elf(board: Board, firmware: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = firmware {
        if !path.is_file() {
            bail!("{}: no such firmware file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    build(board, "serve", "", &workspace().join("target"))
}
