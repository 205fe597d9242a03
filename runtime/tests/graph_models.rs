//! Graph models from outside the chain: the committed CNN rewritten with a depthwise branch
//! (channel multiplier 2, stride 2, Relu6) joined to the main path by a residual Add, and a
//! pointwise branch concatenated on channels. The branches' weights are small, so the float
//! model stays accurate, and the int8 model must agree with it.

mod onnx;

use std::path::{Path, PathBuf};

use mnist::Split;
use onnx::graphs::branched;
use prost::Message;
use runtime::classifier::Classifier;
use runtime::quantize;
use tract_onnx::pb::ModelProto;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_branched_model_quantizes_and_agrees_with_tract() {
    let c = Classifier::from_bytes(Path::new("branched.onnx"), &branched()).unwrap();
    assert_eq!(quantize::refusal(&c), None);
    let q = quantize::quantize_mnist(&c, &root().join("data/mnist"), 2000, 1).unwrap();
    let names = q.names();
    for want in [
        "dwconv 8→16 3×3 s2×2",
        "add",
        "conv 16→4 1×1",
        "concat 2→20",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let test = mnist::load(&root().join("data/mnist"), Split::Test)
        .unwrap()
        .take(2000);
    let cost = quantize::cost(&c, &q, &test).unwrap();
    eprintln!(
        "{names:?}\n{cost:?}, arena {} of {} bytes",
        q.arena_bytes,
        q.activation_bytes()
    );
    assert!(cost.float_accuracy >= 0.98, "{cost:?}");
    assert!(cost.agreement >= 0.99, "{cost:?}");
    assert!(
        (cost.float_accuracy - cost.int8_accuracy).abs() <= 0.005,
        "{cost:?}"
    );
    // The plan reuses memory: well below every activation at once.
    assert!(
        2 * q.arena_bytes < q.activation_bytes(),
        "arena {} for {} bytes of activations",
        q.arena_bytes,
        q.activation_bytes()
    );
}

#[test]
fn a_branch_is_no_longer_refused_but_an_unknown_operator_still_is() {
    let mut proto = ModelProto::decode(&branched()[..]).unwrap();
    let g = proto.graph.as_mut().unwrap();
    let add = g
        .node
        .iter()
        .position(|n| n.op_type == "Add" && n.output[0] == "residual")
        .unwrap();
    g.node[add].op_type = "Mul".into();
    let c = Classifier::from_bytes(Path::new("mul.onnx"), &proto.encode_to_vec()).unwrap();
    let why = quantize::refusal(&c).unwrap();
    assert!(
        why.contains("(Mul): operator Mul is not supported"),
        "{why}"
    );
}
