//! Builds the firmware for both targets, runs it in QEMU, and reports its cost: flash and RAM
//! by section, stack high-water mark, instructions per inference (per layer too). Writes the
//! figures into `models/mnist_cnn.json` under `firmware`.
//!
//! Run: `cargo run --release -p ember-tests --bin firmware-report`

use std::time::Duration;

use anyhow::Context;
use ember_tests::{build, digits, figure, root, run_qemu, sizes, Board, M3, M4F};
use serde_json::json;

fn report(board: Board) -> anyhow::Result<serde_json::Value> {
    let elf = build(board, "", &root().join("target"))?;
    let run = run_qemu(board, &elf, Duration::from_secs(300))?;
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
    let layers: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("layer "))
        .filter_map(|rest| {
            let (head, count) = rest.rsplit_once(": ")?;
            let name = head.split_once(' ')?.1;
            if let Some(into) = count.strip_prefix("fused into layer ") {
                return Some(json!({"layer": name, "fused_into": into.parse::<u64>().ok()?}));
            }
            Some(json!({"layer": name, "instructions": count.split_whitespace().next()?.parse::<u64>().ok()?}))
        })
        .collect();
    let accuracy = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("accuracy "))
        .unwrap_or("?")
        .to_string();
    Ok(json!({
        "target": board.target, "qemu_machine": board.machine,
        "text": s.text, "rodata": s.rodata, "data": s.data, "bss": s.bss,
        "embedded_digits": n, "digit_bytes": digit_bytes,
        "flash_without_digits": s.text + s.rodata + s.data - digit_bytes,
        "ram": s.data + s.bss + stack, "stack_high_water": stack,
        "instructions_per_inference": instructions, "layers": layers, "accuracy_on_embedded_digits": accuracy,
    }))
}

fn main() -> anyhow::Result<()> {
    let card_path = root().join("models/mnist_cnn.json");
    let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card_path)?)?;
    let macs = card["macs"].as_u64().unwrap_or(1);
    println!(
        "{:<22} {:>7} {:>8} {:>5} {:>6} {:>14} {:>6} {:>6} {:>13} {:>8}",
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
    let mut firmware = serde_json::Map::new();
    for board in [M3, M4F] {
        let r = report(board)?;
        let v = |k: &str| r[k].as_u64().unwrap_or(0);
        println!(
            "{:<22} {:>7} {:>8} {:>5} {:>6} {:>14} {:>6} {:>6} {:>13} {:>8.2}",
            board.target,
            v("text"),
            v("rodata"),
            v("data"),
            v("bss"),
            v("flash_without_digits"),
            v("stack_high_water"),
            v("ram"),
            v("instructions_per_inference"),
            v("instructions_per_inference") as f64 / macs as f64
        );
        for layer in r["layers"].as_array().into_iter().flatten() {
            let name = layer["layer"].as_str().unwrap_or("");
            match layer["fused_into"].as_u64() {
                Some(into) => println!("    {name:<28} fused into layer {into}"),
                None => println!("    {name:<28} {:>10} instructions", layer["instructions"]),
            }
        }
        firmware.insert(board.target.to_string(), r);
    }
    card["firmware"] = serde_json::Value::Object(firmware);
    std::fs::write(&card_path, serde_json::to_string_pretty(&card)? + "\n")?;
    println!("wrote the figures to {}", card_path.display());
    Ok(())
}
