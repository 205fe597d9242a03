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
    fails_with(
        &out,
        "error: no MNIST files in --data /nonexistent/mnist; put the four files",
    );
}

/// From a folder outside the workspace, `trainer` looks in `$EMBER_DATA`, then `./data/mnist`.
#[test]
fn data_is_found_through_ember_data_from_any_folder() {
    let work = std::env::temp_dir().join(format!("ember-trainer-anywhere-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let run = |data: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
        cmd.args(["show", "--count", "4", "grid.png"])
            .current_dir(&work)
            .env_remove("EMBER_DATA");
        if let Some(data) = data {
            cmd.env("EMBER_DATA", data);
        }
        cmd.output().unwrap()
    };
    fails_with(
        &run(None),
        "no MNIST files in $EMBER_DATA (not set), ./data/mnist;",
    );
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
    let out = run(Some(&data));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.join("grid.png").is_file());
    std::fs::remove_dir_all(&work).unwrap();
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

/// Trains a tiny run twice with the same seed and exports each: the model and its card come
/// out byte for byte the same, since the card holds no timings; a figure from a later stage
/// survives an export of the same model and is dropped for another model.
#[test]
fn exporting_the_same_model_leaves_its_card_unchanged() {
    let dir = std::env::temp_dir().join(format!("ember-trainer-card-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.join(name);
        let args = [
            "train",
            "--epochs",
            "1",
            "--train-limit",
            "512",
            "--test-limit",
            "200",
        ];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["--seed", seed, "--out", out.to_str().unwrap()]);
        assert!(trainer(&args).status.success());
        out.join("last.bpk")
    };
    let export = |checkpoint: &Path| {
        let onnx = dir.join("m.onnx");
        let out = trainer(&[
            "export",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            onnx.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            std::fs::read(&onnx).unwrap(),
            std::fs::read_to_string(dir.join("m.json")).unwrap(),
        )
    };
    let (a, b) = (run("a", "3"), run("b", "3"));
    let (onnx_a, card_a) = export(&a);
    assert!(
        !card_a.contains("seconds") && !card_a.contains("images_per_sec"),
        "{card_a}"
    );
    // A later stage's figures for this very model...
    let mut card: card::ModelCard = serde_json::from_str(&card_a).unwrap();
    card.int8 = Some(serde_json::from_value(serde_json::json!({
        "output": "m_int8.rs", "calibration_images": 1, "seed": 1, "params": 1, "macs": 1,
        "weight_bytes": 1, "arena_bytes": 1, "float_accuracy": 0.5, "int8_accuracy": 0.5, "agreement": 1.0
    })).unwrap());
    card.write(&dir.join("m.json")).unwrap();
    let (onnx_b, card_b) = export(&b);
    assert_eq!(onnx_a, onnx_b);
    // ...are kept by the export of the same model, and the rest is unchanged.
    assert_eq!(card_b, card.to_json());
    let (_, card_c) = export(&run("c", "4"));
    assert!(!card_c.contains("int8"), "{card_c}");
}
