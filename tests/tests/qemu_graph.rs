//! Graph models on both Cortex-M targets in QEMU: the committed CNN with a depthwise residual
//! branch and a concatenated pointwise branch, and the trainer's `ds` model as burn-onnx
//! exported it. Each is quantized, generated, built into the firmware through `EMBER_MODEL`,
//! and run on 200 embedded digits; every logit must equal the host simulation of the same
//! int8 model.

#[path = "../../runtime/tests/onnx/mod.rs"]
mod onnx;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember_tests::{digits, figure, root, run_qemu, Board, M3, M4F};
use mnist::Split;
use runtime::classifier::Classifier;
use runtime::quantize::{self, codegen};

/// A model quantized, and its generated source written to `target/graph-model/`.
fn generated(name: &str, bytes: &[u8]) -> (quantize::QuantModel, PathBuf) {
    let c = Classifier::from_bytes(Path::new(name), bytes).unwrap();
    let q = quantize::quantize_mnist(&c, &root().join("data/mnist"), 2000, 1).unwrap();
    let dir = root().join("target/graph-model");
    std::fs::create_dir_all(&dir).unwrap();
    let source = codegen::rust_source(
        &q,
        &codegen::Provenance {
            onnx: name,
            sha256: &c.sha256,
            command: "cargo test --release -p ember-tests --test qemu_graph",
        },
    );
    // One file per test: they run at once.
    let path = dir.join(format!(
        "{}_int8_{}.rs",
        name.trim_end_matches(".onnx"),
        std::thread::current()
            .name()
            .unwrap_or("x")
            .replace("::", "_")
    ));
    std::fs::write(&path, source).unwrap();
    (q, path)
}

fn graph_model_matches_the_host(board: Board, name: &str, bytes: &[u8]) {
    let (q, source) = generated(name, bytes);
    let target = root().join("target/graph-model").join(format!(
        "{}-{}",
        name.trim_end_matches(".onnx"),
        board.machine
    ));
    let elf =
        runtime::device::qemu::build(board, "firmware", "", &target, Some(&source), Some(200))
            .unwrap();
    let run = run_qemu(board, &elf, Duration::from_secs(300)).unwrap();
    assert_eq!(
        run.code,
        Some(0),
        "{}: {}{}",
        board.target,
        run.stdout,
        run.stderr
    );
    let printed = digits(&run.stdout);
    assert_eq!(printed.len(), 200, "{}", run.stdout);
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let view = q.view();
    let model = view.model();
    let mut arena = vec![0i8; model.arena_bytes];
    for d in &printed {
        let host = firmware::run(&model, test.image(d.index), &mut arena).unwrap();
        assert_eq!(d.logits, host.logits, "{} digit {}", board.target, d.index);
    }
    let instructions = figure(&run.stdout, "instructions per inference ").unwrap();
    eprintln!(
        "{name} on {}: {} digits bit-exact, {instructions} instructions per inference ({:.2} per MAC), arena {} bytes",
        board.target,
        printed.len(),
        instructions as f64 / model.macs() as f64,
        model.arena_bytes
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
