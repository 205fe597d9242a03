//! Graph models on both Cortex-M targets in QEMU: the committed CNN with a depthwise residual
//! branch and a concatenated pointwise branch, and the trainer's `ds` model as burn-onnx
//! exported it. Each is quantized and written as a model file, which QEMU loads into the flash
//! of the one demo firmware built for the core, and run on its embedded digits; every logit
//! must equal the host's run of the same file.

#[path = "../../runtime/tests/onnx/mod.rs"]
mod onnx;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember_tests::{build, digits, figure, image, root, run_qemu, Board, M3, M4F};
use mnist::Split;
use runtime::answers::Int8File;
use runtime::classifier::Classifier;
use runtime::quantize;

/// A model quantized, and its model file written to `target/graph-model/`.
fn compiled(name: &str, bytes: &[u8]) -> PathBuf {
    let c = Classifier::from_bytes(Path::new(name), bytes).unwrap();
    let q = quantize::quantize_mnist(&c, &root().join("data/mnist"), 2000, 1).unwrap();
    let dir = root().join("target/graph-model");
    std::fs::create_dir_all(&dir).unwrap();
    let from = compiler::Provenance::from_hex(&c.sha256).unwrap();
    // One file per test: they run at once.
    let path = dir.join(format!(
        "{}_{}.int8",
        name.trim_end_matches(".onnx"),
        std::thread::current()
            .name()
            .unwrap_or("x")
            .replace("::", "_")
    ));
    std::fs::write(&path, compiler::write(&q, &from)).unwrap();
    path
}

fn graph_model_matches_the_host(board: Board, name: &str, bytes: &[u8]) {
    let model = compiled(name, bytes);
    let elf = build(board, "", &root().join("target")).unwrap();
    let run = run_qemu(board, &image(&elf, &model), Duration::from_secs(300)).unwrap();
    assert_eq!(
        run.code,
        Some(0),
        "{}: {}{}",
        board.target,
        run.stdout,
        run.stderr
    );
    let printed = digits(&run.stdout);
    assert!(printed.len() >= 100, "{}", run.stdout);
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let file = Int8File::load(&model).unwrap().unwrap();
    let host = file
        .logits(printed.iter().map(|d| test.image(d.index)))
        .unwrap();
    for (d, host) in printed.iter().zip(&host) {
        assert_eq!(&d.logits, host, "{} digit {}", board.target, d.index);
    }
    let instructions = figure(&run.stdout, "instructions per inference ").unwrap();
    let (macs, arena) = file.with_model(|m| (m.macs(), m.arena_bytes)).unwrap();
    eprintln!(
        "{name} on {}: {} digits bit-exact, {instructions} instructions per inference ({:.2} per MAC), arena {arena} bytes",
        board.target,
        printed.len(),
        instructions as f64 / macs as f64,
    );
}

fn branched() -> Vec<u8> {
    onnx::graphs::branched()
}

/// The trainer's graph model (`trainer train --arch ds`), as burn-onnx exported it.
fn ds() -> Vec<u8> {
    std::fs::read(root().join("models/mnist_ds.onnx")).unwrap()
}

#[test]
fn cortex_m3_runs_a_graph_model_bit_exactly() {
    graph_model_matches_the_host(M3, "branched.onnx", &branched());
}

#[test]
fn cortex_m4f_runs_a_graph_model_bit_exactly() {
    graph_model_matches_the_host(M4F, "branched.onnx", &branched());
}

#[test]
fn cortex_m3_runs_the_trainers_ds_model_bit_exactly() {
    graph_model_matches_the_host(M3, "mnist_ds.onnx", &ds());
}

#[test]
fn cortex_m4f_runs_the_trainers_ds_model_bit_exactly() {
    graph_model_matches_the_host(M4F, "mnist_ds.onnx", &ds());
}
