//! The int8 path: the committed model files regenerate byte for byte, run bit-exactly like the
//! host simulation, and keep the float model's accuracy; models from other exporters
//! (BatchNorm, Gemm with transB, a final Softmax, an NHWC input) quantize too.

use std::path::{Path, PathBuf};

use mnist::{Dataset, Split};
use onnx::{floats, initializer, int_attr, ints_attr, node};
use prost::Message;
use runtime::classifier::{argmax, Classifier};
use runtime::quantize;
use tract_onnx::pb::{self, ModelProto};

mod onnx;

/// `f` of the committed model file's model.
fn with_committed<R>(f: impl FnOnce(&firmware::Model) -> R) -> R {
    let bytes = std::fs::read(root().join("models/mnist_cnn.int8")).unwrap();
    compiler::ModelBytes::new(&bytes)
        .with(|file| f(&file.model))
        .unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn test_set() -> Dataset {
    mnist::load(&root().join("data/mnist"), Split::Test).unwrap()
}

fn committed_classifier() -> Classifier {
    Classifier::load(&root().join("models/mnist_cnn.onnx")).unwrap()
}

fn default_quantization(c: &Classifier) -> quantize::QuantModel {
    quantize::quantize_mnist(
        c,
        &root().join("data/mnist"),
        quantize::DEFAULT_CALIB_COUNT,
        quantize::DEFAULT_CALIB_SEED,
    )
    .unwrap()
}

#[test]
fn regenerating_the_committed_model_files_gives_identical_bytes() {
    for name in ["mnist_cnn", "mnist_ds"] {
        let c = Classifier::load(&root().join(format!("models/{name}.onnx"))).unwrap();
        let q = default_quantization(&c);
        let from = compiler::Provenance::from_hex(&c.sha256).unwrap();
        let bytes = compiler::write(&q, &from);
        assert_eq!(
            bytes,
            compiler::write(&q, &from),
            "{name}: two writes differ"
        );
        let committed = std::fs::read(root().join(format!("models/{name}.int8"))).unwrap();
        assert!(
            bytes == committed,
            "models/{name}.int8 is stale: run `runtime quantize --model models/{name}.onnx --calib data/mnist`"
        );
    }
}

#[test]
fn committed_model_runs_bit_exactly_like_the_simulation_and_keeps_accuracy() {
    let c = committed_classifier();
    let q = default_quantization(&c);
    let test = test_set();
    let simulated = quantize::simulate(&q, &test).unwrap();
    let correct = with_committed(|model| {
        assert_eq!(model.arena_needed(), model.arena_bytes);
        assert!(model.arena_bytes <= 16 * 1024);
        assert!(q.weight_bytes() <= 64 * 1024);
        let mut arena = vec![0i8; model.arena_bytes];
        let mut correct = 0;
        for (i, expected) in simulated.iter().enumerate() {
            let out = firmware::run(model, test.image(i), &mut arena).unwrap();
            assert_eq!(&out.logits, expected, "image {i}");
            correct += usize::from(out.class == test.label(i));
        }
        correct
    });
    let cost = quantize::cost(&c, &q, &test).unwrap();
    assert_eq!(correct as f64 / test.len() as f64, cost.int8_accuracy);
    assert!(
        cost.float_accuracy - cost.int8_accuracy <= 0.003,
        "{cost:?}"
    );
    assert!(cost.agreement >= 0.995, "{cost:?}");
}

/// The compiler's fused steps are what the firmware runs: unfusing them changes no logit but
/// needs the convolutions' full outputs, and a fusion the firmware cannot run is refused.
#[test]
fn fused_steps_are_the_compilers_and_the_firmware_checks_them() {
    with_committed(|model| fused_steps_hold(*model));
}

fn fused_steps_hold(model: firmware::Model) {
    let fused: Vec<usize> = (0..model.layers.len())
        .filter(|&i| model.fused(i))
        .collect();
    assert_eq!(
        fused,
        [1, 3, 5],
        "each max pool runs inside its convolution"
    );
    let test = test_set();
    let unfused_edges: Vec<firmware::Edge> = model
        .edges
        .iter()
        .map(|e| firmware::Edge { fused: false, ..*e })
        .collect();
    // Unfused, every tensor needs its own bytes: an arena of all activations.
    let mut tensors = model.tensors.to_vec();
    let mut end = 0;
    for t in &mut tensors {
        t.offset = end;
        end += t.shape.len() as u32;
    }
    let unfused = firmware::Model {
        edges: &unfused_edges,
        tensors: &tensors,
        ..model
    };
    assert!(unfused.arena_needed() > 4 * model.arena_needed());
    let (mut small, mut large) = (vec![0i8; model.arena_needed()], vec![0i8; end as usize]);
    for i in 0..200 {
        let fast = firmware::run(&model, test.image(i), &mut small).unwrap();
        let slow = firmware::run(&unfused, test.image(i), &mut large).unwrap();
        assert_eq!(fast.logits, slow.logits, "image {i}");
    }
    // A dense layer cannot run inside the step before it.
    let mut wrong = model.edges.to_vec();
    wrong[7].fused = true;
    let wrong = firmware::Model {
        edges: &wrong,
        ..model
    };
    assert_eq!(
        firmware::run(&wrong, test.image(0), &mut small),
        Err(firmware::Error::BadLayer { index: 7 })
    );
}

/// The committed ONNX rewritten as another exporter might write it: NHWC input with a
/// Transpose, a BatchNormalization after the first Conv, the first Linear as Gemm with transB,
/// and a final Softmax.
fn foreign_variant() -> Vec<u8> {
    let mut proto =
        ModelProto::decode(&std::fs::read(root().join("models/mnist_cnn.onnx")).unwrap()[..])
            .unwrap();
    let (_, w) = initializer(&proto, "head.0.Linear.weight");
    let (_, b) = initializer(&proto, "head.0.Linear.bias");
    let g = proto.graph.as_mut().unwrap();
    let input = g.input[0].name.clone();
    // NHWC input, transposed to NCHW before the first Conv.
    if let Some(pb::type_proto::Value::TensorType(t)) =
        g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        let dims = &mut t.shape.as_mut().unwrap().dim;
        let c = dims.remove(1);
        dims.push(c);
    }
    let transpose = node(
        "Transpose",
        &[&input],
        "nchw",
        vec![ints_attr("perm", &[0, 3, 1, 2])],
    );
    for n in g.node.iter_mut() {
        for i in n.input.iter_mut().filter(|i| **i == input) {
            *i = "nchw".into();
        }
    }
    g.node.insert(0, transpose);
    // BatchNorm after the first conv: its output is renamed, the BN takes the old name.
    let conv = g.node.iter().position(|n| n.op_type == "Conv").unwrap();
    let conv_out = g.node[conv].output[0].clone();
    g.node[conv].output[0] = "conv_raw".into();
    let epsilon = pb::AttributeProto {
        name: "epsilon".into(),
        r#type: 1,
        f: 1e-5,
        ..Default::default()
    };
    let bn = node(
        "BatchNormalization",
        &["conv_raw", "bn_g", "bn_b", "bn_m", "bn_v"],
        &conv_out,
        vec![epsilon],
    );
    g.node.insert(conv + 1, bn);
    let c = 8;
    g.initializer.extend([
        floats(
            "bn_g",
            &[c],
            (0..c).map(|i| 0.8 + 0.05 * i as f32).collect(),
        ),
        floats(
            "bn_b",
            &[c],
            (0..c).map(|i| 0.02 * i as f32 - 0.05).collect(),
        ),
        floats("bn_m", &[c], (0..c).map(|i| 0.01 * i as f32).collect()),
        floats("bn_v", &[c], (0..c).map(|i| 0.9 + 0.1 * i as f32).collect()),
    ]);
    // First MatMul (+ Reshape'd bias + Add) becomes one Gemm with W transposed (transB=1).
    let mm = g.node.iter().position(|n| n.op_type == "MatMul").unwrap();
    let add = g.node.iter().position(|n| n.op_type == "Add").unwrap();
    let (x, y) = (g.node[mm].input[0].clone(), g.node[add].output[0].clone());
    let (inputs, outputs) = (288, 64);
    let wt: Vec<f32> = (0..outputs)
        .flat_map(|o| (0..inputs).map(move |i| (i, o)))
        .map(|(i, o)| w[i * outputs + o])
        .collect();
    g.initializer.extend([
        floats("gemm_w", &[outputs as i64, inputs as i64], wt),
        floats("gemm_b", &[outputs as i64], b),
    ]);
    let gemm = node(
        "Gemm",
        &[&x, "gemm_w", "gemm_b"],
        &y,
        vec![int_attr("transB", 1)],
    );
    g.node[mm] = gemm;
    g.node.remove(add);
    // A final Softmax.
    let last = g.output[0].name.clone();
    let n = g.node.len();
    g.node[n - 1].output[0] = "logits".into();
    let softmax = node("Softmax", &["logits"], &last, vec![int_attr("axis", 1)]);
    g.node.push(softmax);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        g.output[0].r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = None;
    }
    proto.encode_to_vec()
}

#[test]
fn other_exporters_models_quantize_and_agree_with_tract() {
    let bytes = foreign_variant();
    let c = Classifier::from_bytes(Path::new("foreign.onnx"), &bytes).unwrap();
    assert_eq!(c.layout, runtime::classifier::Layout::Nhwc);
    assert_eq!(c.scores, runtime::classifier::Scores::Probabilities);
    let q = default_quantization(&c);
    let test = test_set().take(2000);
    let cost = quantize::cost(&c, &q, &test).unwrap();
    assert!(
        cost.float_accuracy >= 0.95,
        "the rewritten model still classifies: {cost:?}"
    );
    assert!(cost.agreement >= 0.99, "{cost:?}");
    assert!(
        (cost.float_accuracy - cost.int8_accuracy).abs() <= 0.005,
        "{cost:?}"
    );
    // And the int8 argmax matches the simulation's own classes.
    let sim = quantize::simulate(&q, &test.take(10)).unwrap();
    assert!(sim.iter().all(|l| argmax(l) < 10));
}

#[test]
fn unsupported_operators_are_named() {
    let mut proto =
        ModelProto::decode(&std::fs::read(root().join("models/mnist_cnn.onnx")).unwrap()[..])
            .unwrap();
    let g = proto.graph.as_mut().unwrap();
    let relu = g.node.iter().position(|n| n.op_type == "Relu").unwrap();
    g.node[relu].op_type = "Sigmoid".into();
    let c = Classifier::from_bytes(Path::new("sigmoid.onnx"), &proto.encode_to_vec()).unwrap();
    let err = quantize::quantize_mnist(&c, &root().join("data/mnist"), 100, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sigmoid.onnx: node ")
            && err.contains("(Sigmoid): operator Sigmoid is not supported"),
        "{err}"
    );
}
