//! Builds the firmware for every core (`Board::CORES`), runs it in QEMU, and reports its cost: flash and RAM
//! by section, stack high-water mark, instructions per inference (per layer too). Writes the
//! figures into the model's card (`models/NAME.json`) under `firmware`.
//!
//! Run: `cargo run --release -p ember-tests --bin firmware-report [-- NAME]`, where NAME is a
//! committed model (default `mnist_cnn`): QEMU loads its `models/NAME.int8` into the flash of
//! the one demo firmware per core. The flash figures are the firmware's, without the model
//! file and without the test digits.

use std::time::Duration;

use anyhow::Context;
use card::{Firmware, LayerCost, ModelCard};
use ember_tests::{build, digits, figure, image, root, run_qemu, sizes, Board};
use runtime::answers::Int8File;

fn report(board: Board, model: &std::path::Path) -> anyhow::Result<Firmware> {
    let elf = build(board, "", &root().join("target"))?;
    let run = run_qemu(board, &image(&elf, model), Duration::from_secs(300))?;
    if run.code != Some(0) {
        anyhow::bail!(
            "{}: firmware exited with {:?}: {}",
            board.target,
            run.code,
            run.stderr
        );
    }
    let s = sizes(&elf)?;
    let n = digits(&run.stdout).len() as u64;
    let digit_bytes = n * 785; // 784 pixels and a label each, in .rodata
    let stack = figure(&run.stdout, "stack high-water ").context("no stack figure")?;
    let instructions =
        figure(&run.stdout, "instructions per inference ").context("no instruction count")?;
    let layers: Vec<LayerCost> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("layer "))
        .filter_map(|rest| {
            let (head, count) = rest.rsplit_once(": ")?;
            let name = head.split_once(' ')?.1;
            let (instructions, fused_into) = match count.strip_prefix("fused into layer ") {
                Some(into) => (None, Some(into.parse().ok()?)),
                None => (Some(count.split_whitespace().next()?.parse().ok()?), None),
            };
            Some(LayerCost {
                layer: name.to_string(),
                instructions,
                fused_into,
            })
        })
        .collect();
    let accuracy = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("accuracy "))
        .unwrap_or("?")
        .to_string();
    Ok(Firmware {
        target: board.target.to_string(),
        qemu_machine: board.machine.to_string(),
        text: s.text,
        rodata: s.rodata,
        data: s.data,
        bss: s.bss,
        embedded_digits: n,
        digit_bytes,
        flash_without_digits: s.text + s.rodata + s.data - digit_bytes,
        ram: s.data + s.bss + stack,
        stack_high_water: stack,
        instructions_per_inference: instructions,
        layers,
        accuracy_on_embedded_digits: accuracy,
    })
}

fn main() -> anyhow::Result<()> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mnist_cnn".to_string());
    let card_path = root().join(format!("models/{name}.json"));
    let mut card = ModelCard::read(&card_path)?.with_context(|| {
        format!(
            "{}: no model card (trainer export writes it)",
            card_path.display()
        )
    })?;
    let macs = card.macs.max(1);
    println!(
        "{:<36} {:>7} {:>8} {:>5} {:>6} {:>14} {:>6} {:>6} {:>13} {:>8}",
        "target",
        "text",
        "rodata",
        "data",
        "bss",
        "flash-digits",
        "stack",
        "RAM",
        "instr/infer",
        "÷MACs"
    );
    let model = root().join(format!("models/{name}.int8"));
    let file = Int8File::load(&model)?
        .with_context(|| format!("{}: not a model file", model.display()))?;
    let (arena, layers) =
        file.with_model(|m| (m.arena_bytes, m.layers.len().max(m.tensors.len())))?;
    for board in Board::CORES {
        let fit = board.fit(file.bytes.bytes().len(), arena, layers);
        if !fit.fits() {
            println!("{:<36} does not fit: {}", board.card_key(), fit.describe());
            card.firmware.remove(&board.card_key());
            continue;
        }
        let r = report(board, &model)?;
        println!(
            "{:<36} {:>7} {:>8} {:>5} {:>6} {:>14} {:>6} {:>6} {:>13} {:>8.2}",
            board.card_key(),
            r.text,
            r.rodata,
            r.data,
            r.bss,
            r.flash_without_digits,
            r.stack_high_water,
            r.ram,
            r.instructions_per_inference,
            r.instructions_per_inference as f64 / macs as f64
        );
        for layer in &r.layers {
            match (layer.fused_into, layer.instructions) {
                (Some(into), _) => println!("    {:<28} fused into layer {into}", layer.layer),
                (None, n) => println!(
                    "    {:<28} {:>10} instructions",
                    layer.layer,
                    n.unwrap_or(0)
                ),
            }
        }
        card.firmware.insert(board.card_key(), r);
    }
    card.write(&card_path)?;
    println!("wrote the figures to {}", card_path.display());
    Ok(())
}
