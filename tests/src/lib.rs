//! Building the firmware for a Cortex-M target, running it in QEMU, and reading what it says.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub mod mutate;
pub mod photos;

pub use runtime::device::{Board, Image, M0, M3, M33, M4F, M7};

/// The committed model file.
pub fn committed_model() -> PathBuf {
    root().join("models/mnist_cnn.int8")
}

/// Builds the demo firmware for `board` (with `features`) into `target_dir`; returns the ELF.
/// A board that shares its target with another (the M7 the M4F's) builds in a folder of its
/// own, so that neither overwrites the other's ELF while it runs.
pub fn build(board: Board, features: &str, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = match board.card_key() == board.target {
        true => target_dir.to_path_buf(),
        false => target_dir.join(board.machine),
    };
    build_bin(board, "firmware", features, &dir, None, None)
}

/// Builds firmware binary `bin` for `board` with `features` into `target_dir` (quietly; a no-op
/// when it is up to date) and returns the ELF's path. `digits` is how many test digits the
/// demo embeds instead of its board's default (`EMBER_DIGITS`). No model is built in (QEMU
/// loads one: [`Image`]) unless `embed` names a model file to build into the image
/// (`EMBER_MODEL`).
pub fn build_bin(
    board: Board,
    bin: &str,
    features: &str,
    target_dir: &Path,
    digits: Option<usize>,
    embed: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root())
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
    if let Some(digits) = digits {
        cmd.env("EMBER_DIGITS", digits.to_string());
    }
    if let Some(model) = embed {
        cmd.env("EMBER_MODEL", std::path::absolute(model)?);
    }
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let status = cmd
        .status()
        .context("cannot start cargo to build the firmware")?;
    anyhow::ensure!(
        status.success(),
        "building the firmware ({bin}) for {} failed",
        board.target
    );
    Ok(target_dir.join(board.target).join("release").join(bin))
}

/// `elf` with `model` loaded into the board's MODEL region.
pub fn image(elf: &Path, model: &Path) -> Image {
    Image {
        elf: elf.to_path_buf(),
        model: Some(model.to_path_buf()),
    }
}

/// What a QEMU run printed and how it ended.
pub struct Run {
    /// Semihosting output.
    pub stdout: String,
    /// Errors printed by the firmware or QEMU.
    pub stderr: String,
    /// Exit code (None when killed at the timeout).
    pub code: Option<i32>,
}

/// Runs `image` in QEMU on `board`, killing it after `timeout`.
pub fn run_qemu(board: Board, image: &Image, timeout: Duration) -> anyhow::Result<Run> {
    // Tests run in parallel, two of them on the same machine: each run gets its own folder.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "ember-qemu-{}-{}-{run}",
        board.machine,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = runtime::device::qemu::command(board, image, "none")?
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .context("cannot start QEMU")?;
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if started.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        stdout: std::fs::read_to_string(&out_path)?,
        stderr: std::fs::read_to_string(&err_path)?,
        code,
    };
    std::fs::remove_dir_all(&dir)?;
    Ok(run)
}

/// One classified digit as the firmware printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digit {
    /// Index in the MNIST test set.
    pub index: usize,
    /// True label.
    pub label: u8,
    /// Predicted class.
    pub predicted: u8,
    /// The int8 logits.
    pub logits: [i8; 10],
}

/// Parses `digit I label L predicted P logits a b ...` lines.
pub fn digits(stdout: &str) -> Vec<Digit> {
    stdout
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 17
                || f[0] != "digit"
                || f[2] != "label"
                || f[4] != "predicted"
                || f[6] != "logits"
            {
                return None;
            }
            let mut logits = [0i8; 10];
            for (l, s) in logits.iter_mut().zip(&f[7..]) {
                *l = s.parse().ok()?;
            }
            Some(Digit {
                index: f[1].parse().ok()?,
                label: f[3].parse().ok()?,
                predicted: f[5].parse().ok()?,
                logits,
            })
        })
        .collect()
}

/// The number after `prefix` on the line that starts with it.
pub fn figure(stdout: &str, prefix: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Section sizes of a firmware ELF, bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Code (`.text` and the vector table).
    pub text: u64,
    /// Read-only data (`.rodata`): the model's weights and the embedded digits.
    pub rodata: u64,
    /// Initialised data (`.data`), in flash and RAM.
    pub data: u64,
    /// Zeroed data (`.bss` and `.uninit`), in RAM: the arena among it.
    pub bss: u64,
}

/// Reads the section sizes of the ELF at `path`.
pub fn sizes(path: &Path) -> anyhow::Result<Sizes> {
    use object::{Object, ObjectSection};
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let elf = object::File::parse(&*bytes)
        .with_context(|| format!("{}: not an ELF file", path.display()))?;
    let size = |names: &[&str]| -> u64 {
        elf.sections()
            .filter(|s| s.name().is_ok_and(|n| names.contains(&n)))
            .map(|s| s.size())
            .sum()
    };
    Ok(Sizes {
        text: size(&[".vector_table", ".text"]),
        rodata: size(&[".rodata"]),
        data: size(&[".data"]),
        bss: size(&[".bss", ".uninit"]),
    })
}

/// The address of symbol `name` in the ELF at `path`.
pub fn symbol(path: &Path, name: &str) -> anyhow::Result<u64> {
    use object::{Object, ObjectSymbol};
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let elf = object::File::parse(&*bytes)
        .with_context(|| format!("{}: not an ELF file", path.display()))?;
    let found = elf.symbols().find(|s| s.name() == Ok(name));
    found
        .map(|s| s.address())
        .with_context(|| format!("{}: no symbol {name}", path.display()))
}
