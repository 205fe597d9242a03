//! Models fed their pixels another way than Ember's: built here as tf2onnx writes them (NHWC
//! input, Shape → Slice → Cast → Concat → Reshape around the flatten), one per preset, each
//! the same real classifier rescaled to its convention. Every preset must feed its model as a
//! direct computation does, the wrong one must be noticed, `annotate` must change only the
//! metadata, the quantizer must fold the convention into the int8 input, and the chip must
//! run a raw-pixel model bit-exact with the host.

mod onnx;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mnist::{Dataset, Split, PIXELS};
use onnx::{
    data_dir, encode, floats, int_attr, ints, ints_attr, node, template_scores, templates, value,
};
use prost::Message;
use runtime::classifier::{argmax, Classifier};
use runtime::convention::{self, Convention, Source, PRESETS};
use runtime::device::{qemu, Device, Image, Link, M3, M4F};
use runtime::quantize;
use tract_onnx::pb::{GraphProto, ModelProto};

/// The template classifier as a model fed `pixel × scale + offset`, written as tf2onnx writes a
/// Keras Flatten → Dense: its logits equal the template's on the pixels.
fn model_for(scale: f32, offset: f32) -> Vec<u8> {
    let (w, b) = templates();
    // template: b + Σ (p/255)·w, and p/255 = (v − offset)/(255·scale) for v = scale·p + offset.
    let k = 1.0 / (255.0 * scale);
    let w2: Vec<f32> = w.iter().map(|x| x * k).collect();
    let b2: Vec<f32> = (0..10)
        .map(|c| b[c] - offset * k * (0..PIXELS).map(|p| w[p * 10 + c]).sum::<f32>())
        .collect();
    let graph = GraphProto {
        name: "tf2onnx".into(),
        node: vec![
            node("Shape", &["input"], "shape", vec![]),
            node("Slice", &["shape", "zero", "one"], "batch", vec![]),
            node("Cast", &["batch"], "batch64", vec![int_attr("to", 7)]),
            node(
                "Concat",
                &["batch64", "features"],
                "flat_shape",
                vec![int_attr("axis", 0)],
            ),
            node("Reshape", &["input", "flat_shape"], "flat", vec![]),
            node("MatMul", &["flat", "w"], "mm", vec![]),
            node("Add", &["mm", "b"], "logits", vec![]),
        ],
        initializer: vec![
            ints("zero", &[0]),
            ints("one", &[1]),
            ints("features", &[PIXELS as i64]),
            floats("w", &[PIXELS as i64, 10], w2),
            floats("b", &[10], b2),
        ],
        input: vec![value("input", &[None, Some(28), Some(28), Some(1)])],
        output: vec![value("logits", &[None, Some(10)])],
        ..Default::default()
    };
    encode(graph, "tf2onnx-like", 17)
}

fn preset(name: &str) -> Convention {
    Convention::preset(name).unwrap()
}

fn load(bytes: &[u8], input: Option<Convention>) -> Classifier {
    let mut c = Classifier::from_bytes(Path::new("theirs.onnx"), bytes).unwrap();
    if let Some(input) = input {
        c.input = input;
    }
    c
}

fn test_digits(n: usize) -> Dataset {
    mnist::load(&data_dir(), Split::Test).unwrap().take(n)
}

#[test]
fn each_preset_feeds_its_model_as_the_direct_computation_does() {
    let test = test_digits(200);
    for (name, scale, offset, _) in PRESETS {
        let c = load(&model_for(scale, offset), Some(preset(name)));
        let plan = c.plan(1).unwrap();
        for i in 0..test.len() {
            let got = plan.run(c.scale_pixels(test.image(i))).unwrap();
            let want = template_scores(test.image(i));
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-3 * (1.0 + w.abs()),
                    "{name} digit {i}: {got:?} vs {want:?}"
                );
            }
            assert_eq!(argmax(&got), argmax(&want));
        }
    }
}

#[test]
fn the_wrong_convention_gives_degenerate_answers_and_the_right_one_does_not() {
    let test = test_digits(1000);
    let raw = model_for(1.0, 0.0);
    let fed_unit = runtime::eval::predict_all(&load(&raw, None), &test).unwrap();
    let accuracy = |p: &[u8]| runtime::eval::Report::new(test.labels(), p).accuracy();
    let why = runtime::eval::degenerate(&fed_unit, Some(accuracy(&fed_unit)));
    assert!(
        why.is_some(),
        "raw model fed pixel/255: {:.3}",
        accuracy(&fed_unit)
    );
    let fed_raw = runtime::eval::predict_all(&load(&raw, Some(preset("raw"))), &test).unwrap();
    assert!(accuracy(&fed_raw) > 0.75, "{}", accuracy(&fed_raw));
    assert_eq!(
        runtime::eval::degenerate(&fed_raw, Some(accuracy(&fed_raw))),
        None
    );
    let mut c = load(&raw, None);
    let probed = runtime::eval::probe_conventions(&mut c, &test).unwrap();
    assert_eq!(probed[0].0, "raw", "{probed:?}");
    assert_eq!(
        c.input,
        Convention::default_unit(),
        "the probe restores the convention"
    );
}

#[test]
fn annotate_changes_only_the_metadata() {
    let original = model_for(1.0, 0.0);
    let annotated = convention::annotate(&original, &preset("raw")).unwrap();
    assert_eq!(
        &annotated[..original.len()],
        &original[..],
        "every original byte kept"
    );
    let c = load(&annotated, None);
    assert_eq!(
        (c.input.scale, c.input.offset, &c.input.source),
        (1.0, 0.0, &Source::Metadata)
    );
    // Annotating again replaces the entries instead of adding more.
    let again = convention::annotate(&annotated, &preset("mnist-norm")).unwrap();
    assert_eq!(&again[..original.len()], &original[..]);
    let proto = ModelProto::decode(&again[..]).unwrap();
    assert_eq!(proto.metadata_props.len(), 2, "{:?}", proto.metadata_props);
    assert_eq!(load(&again, None).input.name(), Some("mnist-norm"));
    let truncated = convention::annotate(&original[..original.len() - 7], &preset("raw"));
    assert!(truncated.is_err());
}

#[test]
fn the_quantizer_folds_each_convention_into_the_int8_input() {
    // The template classifier has many near ties, which int8 may flip: the convention must
    // not move accuracy, and agreement stays that of any int8 model of it.
    let test = test_digits(1000);
    for (name, scale, offset, _) in PRESETS {
        let c = load(&model_for(scale, offset), Some(preset(name)));
        let q = quantize::quantize_mnist(&c, &data_dir(), 500, 1).unwrap();
        let cost = quantize::cost(&c, &q, &test).unwrap();
        eprintln!("{name}: {cost:?}");
        assert!(
            cost.agreement >= 0.97,
            "{name}: agreement {}",
            cost.agreement
        );
        assert!(
            (cost.float_accuracy - cost.int8_accuracy).abs() <= 0.01,
            "{name}: {cost:?}"
        );
        assert!(cost.float_accuracy > 0.75, "{name}: {cost:?}");
    }
}

fn runtime_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .env("EMBER_DATA", data_dir())
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-conventions-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_cli_warns_probes_and_annotates() {
    let dir = scratch("cli");
    let raw = dir.join("raw.onnx");
    std::fs::write(&raw, model_for(1.0, 0.0)).unwrap();
    let raw = raw.to_str().unwrap();
    let out = runtime_cli(&["eval", "--model", raw, "--out", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("--probe-input"),
        "{stderr}"
    );
    let out = runtime_cli(&[
        "eval",
        "--model",
        raw,
        "--input",
        "raw",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = runtime_cli(&["inspect", "--model", raw, "--probe-input"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(unit, Ember's default: the model states none)"),
        "{text}"
    );
    assert!(text.contains("\nbest        --input raw;"), "{text}");
    assert!(text.contains("firmware    yes"), "{text}");
    let annotated = dir.join("annotated.onnx");
    let out = runtime_cli(&[
        "annotate",
        "--model",
        raw,
        "--input",
        "raw",
        "-o",
        annotated.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = runtime_cli(&["inspect", "--model", annotated.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("value = pixel × 1 + 0 (raw, from the model's metadata)"),
        "{text}"
    );
    let out = runtime_cli(&[
        "eval",
        "--model",
        annotated.to_str().unwrap(),
        "--input-offset",
        "3",
    ]);
    assert!(!out.status.success(), "--input-offset needs --input-scale");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The raw-pixel model quantized, written as a model file, loaded into the flash of the
/// inference service built into runtime and run in QEMU on both boards: the chip takes the 784
/// raw bytes and answers as the host simulation does.
#[test]
fn the_chip_runs_a_raw_pixel_model_bit_exact_with_the_host() {
    let dir = scratch("device");
    let bytes = model_for(1.0, 0.0);
    let annotated = convention::annotate(&bytes, &preset("raw")).unwrap();
    let c = load(&annotated, None);
    let q = quantize::quantize_mnist(&c, &data_dir(), 500, 1).unwrap();
    let from = compiler::Provenance::from_hex(&c.sha256).unwrap();
    let model = dir.join("raw.int8");
    std::fs::write(&model, compiler::write(&q, &from)).unwrap();
    let view = q.view();
    let host = view.model();
    let test = test_digits(40);
    for board in [M3, M4F] {
        let image = Image {
            elf: qemu::service_elf(board, None).unwrap(),
            model: Some(model.clone()),
        };
        let link = Link::qemu(board, &image).unwrap();
        let mut device = Device::connect(link, Duration::from_secs(10)).unwrap();
        assert_eq!(device.info.model_sha256, c.sha256);
        let mut arena = vec![0i8; host.arena_bytes];
        for i in 0..test.len() {
            let answer = device.classify(test.image(i)).unwrap();
            let want = firmware::run(&host, test.image(i), &mut arena).unwrap();
            assert_eq!(answer.logits, want.logits, "{} digit {i}", board.target);
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Keras's Conv2D → Flatten through tf2onnx: the input relabelled NCHW, a Conv, a Transpose
/// back to channels last, then the flatten and the Dense. Two channels (the pixel and half of
/// it) whose dense weights, in HWC order, add up to the template classifier: any mix-up of the
/// flatten order would scramble the pixels.
fn channels_last_model() -> Vec<u8> {
    let (w, b) = templates();
    let mut dense = vec![0f32; 2 * PIXELS * 10];
    for p in 0..PIXELS {
        for c in 0..10 {
            dense[(p * 2) * 10 + c] = 0.5 * w[p * 10 + c] / 255.0;
            dense[(p * 2 + 1) * 10 + c] = w[p * 10 + c] / 255.0;
        }
    }
    let graph = GraphProto {
        name: "keras-conv".into(),
        node: vec![
            node("Reshape", &["input", "nchw"], "x", vec![]),
            node("Conv", &["x", "k", "kb"], "conv", vec![]),
            node("Relu", &["conv"], "relu", vec![]),
            node(
                "Transpose",
                &["relu"],
                "nhwc",
                vec![ints_attr("perm", &[0, 2, 3, 1])],
            ),
            node("Reshape", &["nhwc", "flat_shape"], "flat", vec![]),
            node("MatMul", &["flat", "w"], "mm", vec![]),
            node("Add", &["mm", "b"], "logits", vec![]),
        ],
        initializer: vec![
            ints("nchw", &[-1, 1, 28, 28]),
            floats("k", &[2, 1, 1, 1], vec![1.0, 0.5]),
            floats("kb", &[2], vec![0.0, 0.0]),
            ints("flat_shape", &[-1, 2 * PIXELS as i64]),
            floats("w", &[2 * PIXELS as i64, 10], dense),
            floats("b", &[10], b),
        ],
        input: vec![value("input", &[None, Some(28), Some(28), Some(1)])],
        output: vec![value("logits", &[None, Some(10)])],
        ..Default::default()
    };
    encode(graph, "keras-conv-like", 17)
}

#[test]
fn a_transpose_to_channels_last_before_the_flatten_quantizes() {
    let c = load(&channels_last_model(), Some(preset("raw")));
    let test = test_digits(1000);
    let template: Vec<u8> = (0..test.len())
        .map(|i| argmax(&template_scores(test.image(i))) as u8)
        .collect();
    assert_eq!(runtime::eval::predict_all(&c, &test).unwrap(), template);
    let q = quantize::quantize_mnist(&c, &data_dir(), 500, 1).unwrap();
    let cost = quantize::cost(&c, &q, &test).unwrap();
    assert!(
        cost.agreement >= 0.97 && (cost.float_accuracy - cost.int8_accuracy).abs() <= 0.01,
        "{cost:?}"
    );
}

/// A dense 784→1400→10 network: 1.1 M int8 parameters, more than any board's MODEL region.
fn too_big_model() -> Vec<u8> {
    let hidden = 1400;
    let graph = GraphProto {
        name: "too-big".into(),
        node: vec![
            node("Reshape", &["input", "flat_shape"], "flat", vec![]),
            node("MatMul", &["flat", "w1"], "h", vec![]),
            node("MatMul", &["h", "w2"], "logits", vec![]),
        ],
        initializer: vec![
            ints("flat_shape", &[-1, PIXELS as i64]),
            floats(
                "w1",
                &[PIXELS as i64, hidden],
                vec![0.001; PIXELS * hidden as usize],
            ),
            floats(
                "w2",
                &[hidden, 10],
                (0..hidden * 10).map(|i| (i % 7) as f32 * 0.01).collect(),
            ),
        ],
        input: vec![value("input", &[None, Some(1), Some(28), Some(28)])],
        output: vec![value("logits", &[None, Some(10)])],
        ..Default::default()
    };
    encode(graph, "ember-test", 17)
}

#[test]
fn quantize_target_refuses_a_model_the_board_cannot_hold_before_writing() {
    let dir = scratch("budget");
    let model = dir.join("big.onnx");
    std::fs::write(&model, too_big_model()).unwrap();
    let out = dir.join("big.int8");
    let run = |target: &str| {
        runtime_cli(&[
            "quantize",
            "--model",
            model.to_str().unwrap(),
            "--calib-count",
            "50",
            "--target",
            target,
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let refused = run("m4");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("big.onnx: does not fit m4 (thumbv7em-none-eabihf): model file ")
            && stderr.contains(" of 262144 bytes, arena "),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "nothing is written for a model that does not fit"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
