//! The `trainer` binary: every mistake a user can make gets one clear line and a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .unwrap()
}

fn fails_with(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "more than one line: {stderr}");
    assert!(stderr.contains(message), "{message:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_data_directory() {
    let out = trainer(&["train", "--data", "/nonexistent/mnist", "--epochs", "1"]);
    fails_with(&out, "/nonexistent/mnist: no train-images-idx3-ubyte.gz");
}

#[test]
fn missing_checkpoint() {
    let out = trainer(&[
        "export",
        "--checkpoint",
        "/nonexistent/last.bpk",
        "/tmp/x.onnx",
    ]);
    fails_with(&out, "/nonexistent/last.bpk: checkpoint not found");
    let out = trainer(&[
        "predict",
        "--checkpoint",
        "/nonexistent/best.bpk",
        "--index",
        "3",
    ]);
    fails_with(&out, "/nonexistent/best.bpk: checkpoint not found");
}

#[test]
fn unwritable_output() {
    let out = trainer(&["show", "--count", "4", "/nonexistent/dir/grid.png"]);
    fails_with(&out, "/nonexistent/dir/grid.png: cannot write picture");
    let out = trainer(&[
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "10",
        "--out",
        "/proc/ember-run",
    ]);
    fails_with(&out, "/proc/ember-run: cannot create output folder");
}

#[test]
fn show_draws_a_grid_and_summary_prints_the_network() {
    let png = std::env::temp_dir().join(format!("ember-show-{}.png", std::process::id()));
    let out = trainer(&["show", "--count", "20", png.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    std::fs::remove_file(&png).unwrap();
    let out = trainer(&["summary", "--arch", "mlp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("linear 784→100") && text.contains("79510"),
        "{text}"
    );
}
