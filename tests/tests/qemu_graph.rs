//! A graph model on both Cortex-M targets in QEMU: the committed CNN with a depthwise residual
//! branch and a concatenated pointwise branch, quantized, generated, built into the firmware
//! through `EMBER_MODEL`, and run on 200 embedded digits (the M3's flash holds no more beside
//! this model). Each logit must equal the host
//! simulation of the same int8 model.

#[path = "../../runtime/tests/onnx/mod.rs"]
mod onnx;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember_tests::{digits, figure, root, run_qemu, Board, M3, M4F};
use mnist::Split;
use runtime::classifier::Classifier;
use runtime::quantize::{self, codegen};

/// The branched model quantized, and its generated source written to `target/graph-model/`.
fn generated() -> (quantize::QuantModel, PathBuf) {
    let bytes = onnx::graphs::branched();
    let c = Classifier::from_bytes(Path::new("branched.onnx"), &bytes).unwrap();
    let q = quantize::quantize_mnist(&c, &root().join("data/mnist"), 2000, 1).unwrap();
    let dir = root().join("target/graph-model");
    std::fs::create_dir_all(&dir).unwrap();
    let source = codegen::rust_source(
        &q,
        &codegen::Provenance {
            onnx: "branched.onnx (tests/tests/qemu_graph.rs)",
            sha256: &c.sha256,
            command: "cargo test --release -p ember-tests --test qemu_graph",
        },
    );
    // One file per board: the two tests run at once.
    let path = dir.join(format!(
        "branched_int8_{}.rs",
        std::thread::current()
            .name()
            .unwrap_or("x")
            .replace("::", "_")
    ));
    std::fs::write(&path, source).unwrap();
    (q, path)
}

fn graph_model_matches_the_host(board: Board) {
    let (q, source) = generated();
    let target = root().join("target/graph-model").join(board.machine);
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
        "{}: {} digits bit-exact, {instructions} instructions per inference ({:.2} per MAC), arena {} bytes",
        board.target,
        printed.len(),
        instructions as f64 / model.macs() as f64,
        model.arena_bytes
    );
}

#[test]
fn cortex_m3_runs_a_graph_model_bit_exactly() {
    graph_model_matches_the_host(M3);
}

#[test]
fn cortex_m4f_runs_a_graph_model_bit_exactly() {
    graph_model_matches_the_host(M4F);
}
