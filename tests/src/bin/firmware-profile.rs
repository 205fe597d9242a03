//! Where the firmware's instructions go: runs the demo on one digit in QEMU with a full
//! execution trace (`-d in_asm,exec,nochain`), and counts every executed instruction against
//! the function it belongs to. The counts cover the whole run (start-up, one inference, the
//! printout); the inference is most of it.
//!
//! Run: `cargo run --release -p ember-tests --bin firmware-profile -- [m3|m4] [NAME] [FUNCTION]`,
//! where NAME is a committed model (default `mnist_cnn`). With FUNCTION (part of a function's
//! name), it also lists that function's hottest blocks of code with their instructions.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{bail, Context};
use ember_tests::{root, Board, M3, M4F};

/// A translated block: its instructions and its function.
struct Block {
    instructions: u64,
    function: String,
    text: String,
}

/// Instructions per translated block, by its first address, and each block's function.
#[derive(Default)]
struct Trace {
    blocks: HashMap<u64, Block>,
    runs: HashMap<u64, u64>,
}

impl Trace {
    /// Reads QEMU's log: `IN: function` headers with one line per instruction, and one
    /// `Trace N: HOST [CS_BASE/PC/FLAGS/CFLAGS] function` line per block executed.
    fn read(log: impl BufRead) -> anyhow::Result<Trace> {
        let mut t = Trace::default();
        let mut block: Option<(u64, Block)> = None;
        for line in log.lines() {
            let line = line?;
            if let Some(name) = line.strip_prefix("IN: ") {
                t.close(block.take());
                let function = name.trim().to_string();
                let (instructions, text) = (0, String::new());
                block = Some((
                    u64::MAX,
                    Block {
                        instructions,
                        function,
                        text,
                    },
                ));
            } else if let (Some(b), Some(pc)) = (block.as_mut(), instruction_address(&line)) {
                b.0 = b.0.min(pc);
                b.1.instructions += 1;
                b.1.text.push_str(&line);
                b.1.text.push('\n');
            } else if let Some(pc) = executed_block(&line) {
                t.close(block.take());
                *t.runs.entry(pc).or_default() += 1;
            }
        }
        t.close(block);
        Ok(t)
    }

    fn close(&mut self, block: Option<(u64, Block)>) {
        if let Some((pc, b)) = block.filter(|b| b.1.instructions > 0) {
            self.blocks.insert(pc, b);
        }
    }

    /// Instructions executed per function, most first.
    fn by_function(&self) -> Vec<(String, u64)> {
        let mut totals: HashMap<&str, u64> = HashMap::new();
        for (pc, runs) in &self.runs {
            if let Some(b) = self.blocks.get(pc) {
                *totals.entry(&b.function).or_default() += b.instructions * runs;
            }
        }
        let mut rows: Vec<(String, u64)> = totals
            .into_iter()
            .map(|(name, n)| (demangle(name), n))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rows
    }

    /// The blocks of functions whose name contains `part`, with the instructions they ran
    /// in all, most first.
    fn hot_blocks(&self, part: &str) -> Vec<(u64, u64, &Block)> {
        let mut rows: Vec<(u64, u64, &Block)> = self
            .runs
            .iter()
            .filter_map(|(pc, runs)| Some((*pc, *runs, self.blocks.get(pc)?)))
            .filter(|(_, _, b)| demangle(&b.function).contains(part))
            .collect();
        rows.sort_by_key(|(pc, runs, b)| (std::cmp::Reverse(runs * b.instructions), *pc));
        rows
    }
}

/// `0x0800053c:  b580  push {r7, lr}` → 0x0800053c.
fn instruction_address(line: &str) -> Option<u64> {
    let (addr, _) = line.split_once(':')?;
    u64::from_str_radix(addr.strip_prefix("0x")?, 16).ok()
}

/// `Trace 0: 0x7f… [00000000/0800053c/…] f` → 0x0800053c.
fn executed_block(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Trace ")?;
    let fields = rest.split_once('[')?.1.split_once(']')?.0;
    u64::from_str_radix(fields.split('/').nth(1)?, 16).ok()
}

/// A Rust symbol's path without its hash: `_ZN8firmware7kernels4conv4conv17h…E` →
/// `firmware::kernels::conv::conv`. Other names are kept as they are.
fn demangle(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts = Vec::new();
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&d| d > 0) {
        let Ok(len) = rest[..digits].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(digits..digits + len) else {
            break;
        };
        rest = &rest[digits + len..];
        if !(part.starts_with('h') && part.len() == 17) {
            parts.push(
                part.replace("$LT$", "<")
                    .replace("$GT$", ">")
                    .replace("..", "::"),
            );
        }
    }
    parts.join("::")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let board: Board = match args.first().map(String::as_str) {
        None | Some("m4") => M4F,
        Some("m3") => M3,
        Some(other) => bail!("{other}: the board is m3 or m4"),
    };
    let name = args.get(1).map_or("mnist_cnn", String::as_str);
    let function = args.get(2);
    let model = root().join(format!("models/{name}.int8"));
    if !model.is_file() {
        bail!("{}: no such committed model file", model.display());
    }
    let dir = root().join("target/profile");
    let elf = ember_tests::build_bin(board, "firmware", "", &dir, Some(1), None)?;
    let log = dir.join(format!("{name}-{}.trace", board.machine));
    let status = runtime::device::qemu::command(board, &ember_tests::image(&elf, &model), "none")?
        .args(["-d", "in_asm,exec,nochain", "-D"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("cannot start QEMU")?;
    if !status.success() {
        bail!("{}: the firmware failed ({status})", elf.display());
    }
    let file = std::fs::File::open(&log).with_context(|| format!("{}", log.display()))?;
    let trace = Trace::read(BufReader::new(file))?;
    let rows = trace.by_function();
    std::fs::remove_file(&log)?;
    let total: u64 = rows.iter().map(|r| r.1).sum();
    println!(
        "{name} on {} ({}): {total} instructions executed in all (one digit)",
        board.target, board.machine
    );
    for (function, n) in rows.iter().take_while(|r| r.1 * 200 >= total) {
        println!(
            "{n:>10} {:>5.1}%  {function}",
            100.0 * *n as f64 / total as f64
        );
    }
    if let Some(part) = function {
        for (pc, runs, b) in trace.hot_blocks(part).iter().take(40) {
            let all = runs * b.instructions;
            println!(
                "\n{pc:#x}: {runs} runs × {} = {all}\n{}",
                b.instructions, b.text
            );
        }
    }
    Ok(())
}
