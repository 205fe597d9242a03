//! The `runtime` binary on good and bad pictures: every refusal is one line naming the file,
//! the other files are still classified, and the exit code tells that something failed.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{DynamicImage, GrayImage, ImageFormat};

mod onnx;

fn runtime(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-runtime-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn png(img: GrayImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::ImageLuma8(img)
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

/// A real test digit (index 0 is a 7) drawn dark on white at 4× size.
fn good_digit() -> Vec<u8> {
    let test = mnist::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist"),
        mnist::Split::Test,
    )
    .unwrap();
    let digit = GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([255 - test.image(0)[(y * 28 + x) as usize]])
    });
    png(image::imageops::resize(
        &digit,
        112,
        112,
        image::imageops::FilterType::Triangle,
    ))
}

#[test]
fn each_bad_picture_gets_one_line_and_the_rest_are_classified() {
    let dir = scratch("bad");
    let good = good_digit();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("good.png", good.clone()),
        ("truncated.png", good[..good.len() / 3].to_vec()),
        (
            "notes.png",
            b"this is a text file, not a picture\n".to_vec(),
        ),
        ("empty.png", Vec::new()),
        (
            "blank.png",
            png(GrayImage::from_pixel(64, 64, image::Luma([250]))),
        ),
        (
            "dot.png",
            png(GrayImage::from_pixel(1, 1, image::Luma([0]))),
        ),
        (
            "huge.png",
            png(GrayImage::from_pixel(20_000, 8, image::Luma([255]))),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let args: Vec<String> = files
        .iter()
        .map(|(n, _)| dir.join(n).display().to_string())
        .collect();
    let mut argv = vec!["classify"];
    argv.extend(args.iter().map(String::as_str));
    let out = runtime(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("good.png: 7 ("), "{stdout}");
    let expect = [
        ("truncated.png", "not a readable image"),
        ("notes.png", "not a readable image"),
        ("empty.png", "empty file"),
        ("blank.png", "no digit found"),
        ("dot.png", "image is 1×1 pixels, too small"),
        ("huge.png", "image too large"),
    ];
    assert_eq!(stderr.lines().count(), expect.len(), "{stderr}");
    for (file, message) in expect {
        let line = stderr
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("no line for {file}: {stderr}"));
        assert!(
            line.starts_with("error: ") && line.contains(message),
            "{line}"
        );
    }
    assert!(!stderr.contains("panicked"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn classify_json_and_save_input() {
    let dir = scratch("json");
    std::fs::write(dir.join("seven.png"), good_digit()).unwrap();
    let seen = dir.join("seen.png");
    let out = runtime(&[
        "classify",
        "--json",
        "--save-input",
        seen.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["digit"], 7);
    assert!(doc[0]["probability"].as_f64().unwrap() > 0.9);
    assert_eq!(doc[0]["top3"].as_array().unwrap().len(), 3);
    let saved = image::open(&seen).unwrap();
    assert_eq!((saved.width(), saved.height()), (28, 28));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_model_and_missing_picture_are_named() {
    let out = runtime(&["classify", "--model", "/nonexistent/m.onnx", "x.png"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.trim()
            == "error: /nonexistent/m.onnx: cannot read: No such file or directory (os error 2)",
        "{stderr}"
    );
    let out = runtime(&["classify", "/nonexistent/digit.png"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr
            .trim()
            .starts_with("error: /nonexistent/digit.png: cannot read"),
        "{stderr}"
    );
}

/// `quantize -o elsewhere` writes there and nowhere else: the committed card and int8 model
/// keep their bytes.
#[test]
fn quantize_to_another_file_leaves_the_committed_files_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = ["models/mnist_cnn.json", "models/mnist_cnn.int8"];
    let committed = files.map(|f| std::fs::read(root.join(f)).unwrap());
    let out = scratch("quantize").join("x.int8");
    let run = runtime(&[
        "quantize",
        "--calib-count",
        "200",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(std::fs::read(&out)
        .unwrap()
        .starts_with(&firmware::file::MAGIC));
    for (f, bytes) in files.iter().zip(committed) {
        assert!(
            std::fs::read(root.join(f)).unwrap() == bytes,
            "{f} was rewritten"
        );
    }
}

/// `quantize` writes a model file; `eval` and `classify` run it on the firmware's kernels with
/// no calibration, and a corrupt one is refused in one line.
#[test]
fn a_model_file_is_written_and_run_without_calibration() {
    let dir = scratch("model-file");
    let file = dir.join("cnn.int8");
    let file = file.to_str().unwrap();
    let run = runtime(&["quantize", "--calib-count", "200", "-o", file]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = dir.join("eval");
    let eval = runtime(&["eval", "--model", file, "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(
        stdout.starts_with("cnn.int8, int8 model file (firmware kernels): 99."),
        "{stdout}"
    );
    let classify = runtime(&["classify", "--model", file, "docs/digit_7.png"]);
    let stdout = String::from_utf8_lossy(&classify.stdout);
    assert!(
        classify.status.success(),
        "{}",
        String::from_utf8_lossy(&classify.stderr)
    );
    assert!(stdout.contains(": 7 "), "{stdout}");
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let bad = dir.join("bad.int8");
    std::fs::write(&bad, bytes).unwrap();
    let refused = runtime(&["eval", "--model", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.int8: corrupt: CRC-32"), "{stderr}");
}

/// Runs inspect, classify and quantize on a fuzz finding checked in under `tests/findings/`:
/// each must exit 1 with one line ending in `reason`.
fn refused_in_one_line(finding: &str, reason: &str) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/findings")
        .join(finding);
    let model = model.to_str().unwrap();
    for args in [
        vec!["inspect", "--model", model],
        vec!["classify", "--model", model, "docs/digit_7.png"],
        vec!["quantize", "--model", model, "-o", "/dev/null"],
    ] {
        let out = runtime(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.ends_with(&format!("{reason}\n")),
            "{args:?}: {stderr}"
        );
    }
}

/// ONNX case 79: a Conv's stride set to 0 made tract divide by zero. Now refused by the checks.
#[test]
fn finding_conv_stride_zero() {
    refused_in_one_line(
        "conv_stride_zero.onnx",
        "node \"node_1\" (Conv): strides [0, 1]: 0 is out of range",
    );
}

/// ONNX case 1410: a node's output renamed, so the graph's output is made by nothing; tract
/// panicked on the missing key. Now refused by the checks.
#[test]
fn finding_output_made_by_no_node() {
    refused_in_one_line(
        "output_made_by_no_node.onnx",
        "output \"t17\" is made by no node",
    );
}

/// ONNX case 1645: a Gather index in the flatten's shape chain set to 2^36; tract indexes out
/// of bounds. Contained: the panic becomes the usual one-line error.
#[test]
fn finding_gather_index_out_of_bounds() {
    refused_in_one_line(
        "gather_index_2_pow_36.onnx",
        "tract failed on it: index out of bounds: the len is 4 but the index is 68719476736",
    );
}

/// A model tract runs but the int8 compiler refuses (a Sigmoid head) still gets tract's
/// figures from `bench`, with one line saying why there is no int8 figure; a profile batch
/// larger than the test set is one line of error, not a panic.
#[test]
fn bench_times_a_model_int8_refuses_and_bounds_the_profile() {
    use onnx::{encode, floats, int_attr, node, value};
    let graph = tract_onnx::pb::GraphProto {
        node: vec![
            node("Flatten", &["x"], "f", vec![int_attr("axis", 1)]),
            node("MatMul", &["f", "w"], "m", vec![]),
            node("Sigmoid", &["m"], "y", vec![]),
        ],
        initializer: vec![floats(
            "w",
            &[784, 10],
            (0..7840).map(|i| (i % 13) as f32 / 1000.0).collect(),
        )],
        input: vec![value("x", &[None, Some(1), Some(28), Some(28)])],
        output: vec![value("y", &[None, Some(10)])],
        ..Default::default()
    };
    let path = scratch("bench").join("sigmoid.onnx");
    std::fs::write(&path, encode(graph, "cli test", 17)).unwrap();
    let model = path.to_str().unwrap();
    let out = runtime(&["bench", "--model", model, "--batch", "1", "--runs", "1000"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("single image, 1000 runs: p50 "),
        "{stdout}"
    );
    assert!(!stdout.contains("host int8"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("host int8 not measured: ") && stderr.contains("Sigmoid"),
        "{stderr}"
    );

    let out = runtime(&[
        "bench",
        "--model",
        model,
        "--profile",
        "20000",
        "--runs",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("error: {model}: cannot profile a batch of 20000: there are 10000 images")
    );
}
