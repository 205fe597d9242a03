//! The Cortex-M boards Ember targets, the QEMU machines that stand in for them, and building
//! the firmware for them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::classifier::Classifier;
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
    /// QEMU CPU model.
    pub cpu: &'static str,
    /// The firmware's name for the board (`EMBER_BOARD`: its memory map and drivers).
    pub board: &'static str,
    /// Flash, bytes (as the board's memory.x).
    pub flash: usize,
    /// RAM, bytes.
    pub ram: usize,
    /// Flash the inference service takes besides the model's parameters: code, tables,
    /// vectors. An upper bound, checked against the real ELF by `runtime/tests/device.rs`.
    pub code_bytes: usize,
    /// RAM it takes besides the arena: stack and statics. An upper bound, checked likewise
    /// against the stack high-water mark measured in QEMU.
    pub reserved_ram: usize,
}

/// Cortex-M3, TI LM3S6965.
pub const M3: Board = Board {
    name: "m3",
    target: "thumbv7m-none-eabi",
    machine: "lm3s6965evb",
    cpu: "cortex-m3",
    board: "lm3s6965",
    flash: 256 * 1024,
    ram: 64 * 1024,
    code_bytes: 40 * 1024,
    reserved_ram: 16 * 1024,
};
/// Cortex-M4F, ST STM32F405.
pub const M4F: Board = Board {
    name: "m4",
    target: "thumbv7em-none-eabihf",
    machine: "netduinoplus2",
    cpu: "cortex-m4",
    board: "stm32f405",
    flash: 1024 * 1024,
    ram: 128 * 1024,
    code_bytes: 40 * 1024,
    reserved_ram: 20 * 1024,
};

/// Cortex-M0, Nordic nRF51822 (the BBC micro:bit): ARMv6-M, no DSP, 16 KiB of RAM, of which
/// the stack may take 13.5 KiB (`boards/nrf51.x`). The inference service runs here over the
/// UART, built from the workspace (the runtime ships ELFs for [`Board::ALL`] only).
pub const M0: Board = Board {
    name: "m0",
    target: "thumbv6m-none-eabi",
    machine: "microbit",
    cpu: "cortex-m0",
    board: "nrf51",
    flash: 256 * 1024,
    ram: 16 * 1024,
    code_bytes: 40 * 1024,
    reserved_ram: 13824,
};
/// Cortex-M33 with the DSP extension, Arm's MPS2+ image AN505 (the service built from the
/// workspace, as for [`M0`]).
pub const M33: Board = Board {
    name: "m33",
    target: "thumbv8m.main-none-eabihf",
    machine: "mps2-an505",
    cpu: "cortex-m33",
    board: "an505",
    flash: 4 * 1024 * 1024,
    ram: 256 * 1024,
    code_bytes: 40 * 1024,
    reserved_ram: 20 * 1024,
};
/// Cortex-M7, Arm's MPS2+ image AN500 (the service built from the workspace, as for [`M0`]).
pub const M7: Board = Board {
    name: "m7",
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an500",
    cpu: "cortex-m7",
    board: "an500",
    flash: 4 * 1024 * 1024,
    ram: 256 * 1024,
    code_bytes: 40 * 1024,
    reserved_ram: 20 * 1024,
};

/// What a model needs of a board, against what the board has.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Fit {
    /// The board's short name.
    pub board: &'static str,
    /// Flash needed: parameters plus the service's code.
    pub flash_needed: usize,
    /// Flash the board has.
    pub flash: usize,
    /// RAM needed: the arena plus stack and statics.
    pub ram_needed: usize,
    /// RAM the board has.
    pub ram: usize,
}

impl Fit {
    /// Whether both fit.
    pub fn fits(&self) -> bool {
        self.flash_needed <= self.flash && self.ram_needed <= self.ram
    }
}

impl Board {
    /// The boards the inference service runs on (`--device qemu:NAME`).
    pub const ALL: [Board; 2] = [M3, M4F];

    /// Every core the demo runs on in QEMU, bit-exact with the host.
    pub const CORES: [Board; 5] = [M3, M4F, M0, M33, M7];

    /// The key of this board's figures in a model card: its target, or target and machine
    /// when the target has another board first (the M7 shares the M4F's target).
    pub fn card_key(&self) -> String {
        match Board::CORES.iter().find(|b| b.target == self.target) {
            Some(first) if first != self => format!("{}/{}", self.target, self.machine),
            _ => self.target.to_string(),
        }
    }

    /// What a model with `weight_bytes` of parameters and an arena of `arena_bytes` needs here.
    pub fn fit(&self, weight_bytes: usize, arena_bytes: usize) -> Fit {
        Fit {
            board: self.name,
            flash_needed: weight_bytes + self.code_bytes,
            flash: self.flash,
            ram_needed: arena_bytes + self.reserved_ram,
            ram: self.ram,
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

/// The workspace this runtime was built from (where the firmware's sources and QEMU live).
pub fn workspace() -> PathBuf {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"));
    runtime.parent().unwrap_or(runtime).to_path_buf()
}

/// Builds firmware binary `bin` for `board` with `features` into `target_dir` (quietly; a no-op
/// when it is up to date) and returns the ELF's path. `model` is a generated int8 model to
/// embed instead of the committed one (the firmware's `EMBER_MODEL`); `digits` is how many test
/// digits the demo embeds instead of its board's default (`EMBER_DIGITS`).
pub fn build(
    board: Board,
    bin: &str,
    features: &str,
    target_dir: &Path,
    model: Option<&Path>,
    digits: Option<usize>,
) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args([
            "build",
            "-q",
            "-p",
            "ember-firmware",
            "--release",
            "--bin",
            bin,
        ])
        .args(["--target", board.target])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("EMBER_BOARD", board.board)
        .env_remove("EMBER_MODEL")
        .env_remove("EMBER_DIGITS");
    if let Some(model) = model {
        cmd.env("EMBER_MODEL", std::path::absolute(model)?);
    }
    if let Some(digits) = digits {
        cmd.env("EMBER_DIGITS", digits.to_string());
    }
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
        return write_once(elf, board);
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
    // Boards whose service is not built in (the M0, M7, M33): built from the workspace this
    // runtime came from, once, when it is there.
    let firmware = workspace().join("firmware/Cargo.toml");
    if !Board::ALL.contains(&board) && firmware.is_file() {
        eprintln!(
            "the inference service for {} is not built into runtime: built from Ember's clone, in {}",
            board.name,
            workspace().join("target/ember-serve").display()
        );
        return build(
            board,
            "serve",
            "",
            &workspace().join("target/ember-serve"),
            None,
            None,
        );
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

/// The inference service for `classifier`'s model when it is not the one built in: quantized
/// with the defaults (calibrating on the MNIST folder `data`), generated, and built from the
/// workspace this runtime came from. The generated model is kept under the workspace's
/// `target/ember-models/SHA256/`, named by the ONNX's hash, and made once; cargo rebuilds the
/// service there only when the firmware's sources changed.
pub fn service_for(
    board: Board,
    classifier: &Classifier,
    data: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let model = classifier.path().display().to_string();
    let dir = workspace()
        .join("target/ember-models")
        .join(&classifier.sha256[..16]);
    if !workspace().join("firmware/Cargo.toml").is_file() {
        bail!(
            "{model}: building the inference service for this model needs Ember's sources, which are \
             not at {} any more: in a clone, run `runtime quantize --model {model} -o m.rs` and \
             `EMBER_MODEL=m.rs cargo build -p ember-firmware --release --bin serve --target {}`, \
             then pass --firmware",
            workspace().display(),
            board.target
        );
    }
    let source = dir.join("model_int8.rs");
    // The generated code is the compiler's as much as the model's: a runtime built from other
    // sources makes it again (a file whose bytes do not change is not rewritten, so cargo
    // rebuilds only when they do).
    let stamp = dir.join("made-by");
    let compiler = compiler_identity();
    let made_by = std::fs::read_to_string(&stamp).unwrap_or_default();
    if !source.is_file() || made_by != compiler {
        generate(board, classifier, data, &source)?;
        std::fs::write(&stamp, &compiler)
            .with_context(|| format!("{}: cannot write", stamp.display()))?;
    }
    eprintln!(
        "the inference service for {model} on {}: built in {} (again only when the firmware changes)",
        board.name,
        dir.display()
    );
    build(board, "serve", "", &dir.join("target"), Some(&source), None)
}

/// This runtime's version, commit and executable (size and modification time): what made a
/// generated model.
fn compiler_identity() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let at = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{} bytes, modified {:?}", m.len(), at.unwrap_or_default())
        })
        .unwrap_or_default();
    format!("runtime {}; {exe}\n", env!("EMBER_VERSION"))
}

/// Quantizes `classifier` with the defaults and writes its generated model to `source`, once
/// it is known to fit `board`.
fn generate(
    board: Board,
    classifier: &Classifier,
    data: Option<&Path>,
    source: &Path,
) -> anyhow::Result<()> {
    let model = classifier.path().display().to_string();
    let data = mnist::data_dir(data)?;
    let (count, seed) = (
        crate::quantize::DEFAULT_CALIB_COUNT,
        crate::quantize::DEFAULT_CALIB_SEED,
    );
    let q = crate::quantize::quantize_mnist(classifier, &data, count, seed)?;
    let fit = board.fit(q.weight_bytes(), q.arena_bytes);
    if !fit.fits() {
        bail!(
            "{model}: does not fit {} ({}): flash needs {} of {} bytes, RAM {} of {}",
            board.name,
            board.target,
            fit.flash_needed,
            fit.flash,
            fit.ram_needed,
            fit.ram
        );
    }
    let dir = source.parent().unwrap_or(source);
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let command =
        crate::quantize::codegen::command_line(Some(classifier.path()), &data, count, seed, source);
    let provenance = crate::quantize::codegen::Provenance {
        onnx: &model,
        sha256: &classifier.sha256,
        command: &command,
    };
    let text = crate::quantize::codegen::rust_source(&q, &provenance);
    if std::fs::read_to_string(source).is_ok_and(|old| old == text) {
        return Ok(());
    }
    crate::write::whole(source, text.as_bytes())
        .with_context(|| format!("{}: cannot write", source.display()))
}

/// Writes `elf` to a file in the temporary folder named by its hash, unless it is there.
fn write_once(elf: &[u8], board: Board) -> anyhow::Result<PathBuf> {
    let hash = card::sha256_hex(elf);
    let path = std::env::temp_dir().join(format!("ember-serve-{}-{}.elf", board.name, &hash[..16]));
    if std::fs::read(&path).is_ok_and(|b| b == elf) {
        return Ok(path);
    }
    crate::write::whole(&path, elf)
        .with_context(|| format!("{}: cannot write the inference service", path.display()))?;
    Ok(path)
}

/// A QEMU command running `elf` on `board` with semihosting and a deterministic instruction
/// clock (`-icount shift=0`). `serial` is where the board's first UART goes: `stdio`, `pty` or
/// `none`.
pub fn command(board: Board, elf: &Path, serial: &str) -> anyhow::Result<Command> {
    let (program, libraries) = find_qemu()?;
    let mut cmd = Command::new(program);
    if let Some(libraries) = libraries {
        cmd.env("LD_LIBRARY_PATH", libraries);
    }
    cmd.args(["-machine", board.machine, "-cpu", board.cpu])
        .args(["-nographic", "-monitor", "none", "-serial", serial])
        .args(["-icount", "shift=0"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(elf);
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
