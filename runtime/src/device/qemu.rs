//! The Cortex-M boards Ember targets, the QEMU machines that stand in for them, and running
//! the firmware there with a model file in the board's flash.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A Cortex-M target Ember supports and the QEMU machine that mirrors its chip. The model
/// region and the arena are the firmware's (`boards/NAME.x`, `firmware/build.rs`); the QEMU
/// tests check them against the ELF and what the firmware prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Short name, as in `--device qemu:m4`.
    pub name: &'static str,
    /// Rust target triple.
    pub target: &'static str,
    /// QEMU machine.
    pub machine: &'static str,
    /// QEMU CPU model.
    pub cpu: &'static str,
    /// The firmware's name for the board (`EMBER_BOARD`: its memory map and drivers).
    pub board: &'static str,
    /// Flash address of the MODEL region, where the firmware reads its model file.
    pub model_at: u32,
    /// Bytes of the MODEL region: the largest model file the board takes.
    pub model_room: usize,
    /// Bytes of the firmware's activation arena.
    pub arena: usize,
    /// Most layers (and tensors) the firmware holds.
    pub max_layers: usize,
}

/// Cortex-M3, TI LM3S6965.
pub const M3: Board = Board {
    name: "m3",
    target: "thumbv7m-none-eabi",
    machine: "lm3s6965evb",
    cpu: "cortex-m3",
    board: "lm3s6965",
    model_at: 0x0002_8000,
    model_room: 96 * 1024,
    arena: 32 * 1024,
    max_layers: 64,
};
/// Cortex-M4F, ST STM32F405.
pub const M4F: Board = Board {
    name: "m4",
    target: "thumbv7em-none-eabihf",
    machine: "netduinoplus2",
    cpu: "cortex-m4",
    board: "stm32f405",
    model_at: 0x080C_0000,
    model_room: 256 * 1024,
    arena: 96 * 1024,
    max_layers: 64,
};

/// Cortex-M0, Nordic nRF51822 (the BBC micro:bit): ARMv6-M, no DSP, 16 KiB of RAM, of which
/// the stack may take 13.5 KiB (`boards/nrf51.x`).
pub const M0: Board = Board {
    name: "m0",
    target: "thumbv6m-none-eabi",
    machine: "microbit",
    cpu: "cortex-m0",
    board: "nrf51",
    model_at: 0x0002_8000,
    model_room: 96 * 1024,
    arena: 2400,
    max_layers: 12,
};
/// Cortex-M33 with the DSP extension, Arm's MPS2+ image AN505.
pub const M33: Board = Board {
    name: "m33",
    target: "thumbv8m.main-none-eabihf",
    machine: "mps2-an505",
    cpu: "cortex-m33",
    board: "an505",
    model_at: 0x1030_0000,
    model_room: 1024 * 1024,
    arena: 192 * 1024,
    max_layers: 64,
};
/// Cortex-M7, Arm's MPS2+ image AN500.
pub const M7: Board = Board {
    name: "m7",
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an500",
    cpu: "cortex-m7",
    board: "an500",
    model_at: 0x0030_0000,
    model_room: 1024 * 1024,
    arena: 192 * 1024,
    max_layers: 64,
};

/// What a model needs of a board, against what the board has.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Fit {
    /// The board's short name.
    pub board: &'static str,
    /// Bytes of the model file.
    pub file_bytes: usize,
    /// Bytes of the board's MODEL region.
    pub model_room: usize,
    /// Arena the model needs.
    pub arena_needed: usize,
    /// The firmware's arena on the board.
    pub arena: usize,
    /// The model's layers (or tensors, if more).
    pub layers: usize,
    /// Most the firmware holds.
    pub max_layers: usize,
}

impl Fit {
    /// Whether the model runs there.
    pub fn fits(&self) -> bool {
        self.file_bytes <= self.model_room
            && self.arena_needed <= self.arena
            && self.layers <= self.max_layers
    }

    /// What it needs of what the board has.
    pub fn describe(&self) -> String {
        format!(
            "model file {} of {} bytes, arena {} of {}, layers or tensors {} of {}",
            self.file_bytes,
            self.model_room,
            self.arena_needed,
            self.arena,
            self.layers,
            self.max_layers
        )
    }
}

impl Board {
    /// Every core the firmware runs on in QEMU, bit-exact with the host.
    pub const CORES: [Board; 5] = [M3, M4F, M0, M33, M7];

    /// The key of this board's figures in a model card: its target, or target and machine
    /// when the target has another board first (the M7 shares the M4F's target).
    pub fn card_key(&self) -> String {
        match Board::CORES.iter().find(|b| b.target == self.target) {
            Some(first) if first != self => format!("{}/{}", self.target, self.machine),
            _ => self.target.to_string(),
        }
    }

    /// What a model file of `file_bytes` with an arena of `arena_bytes` and `layers` layers or
    /// tensors needs here.
    pub fn fit(&self, file_bytes: usize, arena_bytes: usize, layers: usize) -> Fit {
        Fit {
            board: self.name,
            file_bytes,
            model_room: self.model_room,
            arena_needed: arena_bytes,
            arena: self.arena,
            layers,
            max_layers: self.max_layers,
        }
    }

    /// The board called `name`: `m0`, `m3`, `m4`, `m7`, `m33`, a QEMU machine name, or a
    /// target triple (the first core with it: the M4F for `thumbv7em-none-eabihf`).
    pub fn named(name: &str) -> anyhow::Result<Self> {
        Board::CORES
            .into_iter()
            .find(|b| [b.name, b.target, b.machine].contains(&name) || (name == "m4f" && *b == M4F))
            .with_context(|| {
                let names: Vec<String> = Board::CORES
                    .iter()
                    .map(|b| format!("{} = {}", b.name, b.machine))
                    .collect();
                format!("qemu:{name}: unknown board ({})", names.join(", "))
            })
    }
}

/// The workspace this runtime was built from (where QEMU may be unpacked).
pub fn workspace() -> PathBuf {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"));
    runtime.parent().unwrap_or(runtime).to_path_buf()
}

/// The inference service's ELF for `board`, the first of: `firmware` if given; the one built
/// into this binary (written to a temporary file named by its hash); `ember-serve-BOARD.elf`
/// beside the binary. Otherwise one line says what to pass.
pub fn service_elf(board: Board, firmware: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = firmware {
        if !path.is_file() {
            bail!("{}: no such firmware file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    if let Some(elf) = crate::embedded::service_elf(board.name) {
        return write_once(elf, &format!("serve-{}", board.name), "elf");
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .map(|dir| dir.join(format!("ember-serve-{}.elf", board.name)))
        })
        .filter(|p| p.is_file());
    if let Some(elf) = beside {
        return Ok(elf);
    }
    None.with_context(|| {
        format!(
            "no inference service for {} is built into this runtime ({} was not installed when it \
             was built): run `bash firmware/setup.sh` in Ember's clone and build it again, or pass \
             --firmware SERVE.elf",
            board.name, board.target
        )
    })
}

/// Writes `bytes` to a file in the temporary folder named `ember-KIND-HASH.EXT` by their
/// hash, unless it is there, and returns its path.
pub fn write_once(bytes: &[u8], kind: &str, ext: &str) -> anyhow::Result<PathBuf> {
    let hash = card::sha256_hex(bytes);
    let path = std::env::temp_dir().join(format!("ember-{kind}-{}.{ext}", &hash[..16]));
    if std::fs::read(&path).is_ok_and(|b| b == bytes) {
        return Ok(path);
    }
    crate::write::whole(&path, bytes)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

/// What QEMU runs: a firmware ELF, and the model file its loader puts at the start of the
/// board's MODEL region (none: the region stays empty).
#[derive(Debug, Clone)]
pub struct Image {
    /// The firmware.
    pub elf: PathBuf,
    /// The model file.
    pub model: Option<PathBuf>,
}

/// A QEMU command running `image` on `board` with semihosting and a deterministic instruction
/// clock (`-icount shift=0`). `serial` is where the board's first UART goes: `stdio`, `pty` or
/// `none`.
pub fn command(board: Board, image: &Image, serial: &str) -> anyhow::Result<Command> {
    let (program, libraries) = find_qemu()?;
    let mut cmd = Command::new(program);
    if let Some(libraries) = libraries {
        cmd.env("LD_LIBRARY_PATH", libraries);
    }
    cmd.args(["-machine", board.machine, "-cpu", board.cpu])
        .args(["-nographic", "-monitor", "none", "-serial", serial])
        .args(["-icount", "shift=0"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(&image.elf);
    if let Some(model) = &image.model {
        // QEMU splits a device's options at commas.
        let path = model.to_str().filter(|p| !p.contains(','));
        let path = path.with_context(|| {
            format!("{}: QEMU cannot load a path with a comma", model.display())
        })?;
        cmd.arg("-device").arg(format!(
            "loader,file={path},addr={:#x},force-raw=on",
            board.model_at
        ));
    }
    Ok(cmd)
}

const QEMU: &str = "qemu-system-arm";

/// `qemu-system-arm` on PATH, else the copy `firmware/install-qemu.sh` unpacked into the
/// workspace this runtime was built from (with the library path it needs).
fn find_qemu() -> anyhow::Result<(PathBuf, Option<OsString>)> {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(QEMU))
        .find(|p| p.is_file());
    if let Some(program) = on_path {
        return Ok((program, None));
    }
    let local = workspace().join("target/qemu");
    let program = local.join("usr/bin").join(QEMU);
    if !program.is_file() {
        bail!(
            "{QEMU} not found on PATH nor in {}: run `bash firmware/setup.sh` in Ember's clone, \
             or install QEMU 7.2 or later (Debian: apt install qemu-system-arm)",
            local.display()
        );
    }
    let mut libraries = std::env::join_paths([
        local.join("usr/lib/x86_64-linux-gnu"),
        local.join("lib/x86_64-linux-gnu"),
    ])?;
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        libraries.push(":");
        libraries.push(existing);
    }
    Ok((program, Some(libraries)))
}
